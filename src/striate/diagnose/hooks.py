"""Taps on a model's forward and backward passes, through the modules' own hooks (`nn/hooks.py`).

A tap registers, on chosen module instances, hooks that call `on_forward(name, module, x, y)` /
`on_backward(name, module, dy, dx)`; leaving the `with` block (or `remove()`) unregisters them. Used to record
per-layer inputs, activations and output gradients only on the passes that are sampled, so the other passes
cost nothing extra."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ..nn.module import Module


def leaf_modules(model: Module) -> list[tuple[str, Module]]:
    """(dotted name, module) of every module without children, in registration (= forward) order."""
    return [(name, m) for name, m in model.named_modules() if not m._modules]


class Tap:
    """Hooks on `modules`, each call passed on with the module's dotted name; `remove()` unregisters them.
    Never deep-copy a model while a tap is installed (the copy would call back into this tap)."""

    def __init__(self, modules: list[tuple[str, Module]], on_forward: Callable | None = None,
                 on_backward: Callable | None = None):
        self.handles = []
        for name, m in modules:
            if on_forward is not None:
                self.handles.append(m.register_forward_hook(_named(name, on_forward)))
            if on_backward is not None:
                self.handles.append(m.register_backward_hook(_named(name, on_backward)))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _named(name: str, callback: Callable) -> Callable:
    def hook(module, a, b):
        callback(name, module, a, b)
    return hook


@contextlib.contextmanager
def tap(modules: list[tuple[str, Module]], on_forward: Callable | None = None,
        on_backward: Callable | None = None) -> Iterator[Tap]:
    t = Tap(modules, on_forward, on_backward)
    try:
        yield t
    finally:
        t.remove()
