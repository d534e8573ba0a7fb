"""Taps on a model's forward and backward passes, without changing any layer's code.

A tap replaces `forward`/`backward` of chosen module instances by wrappers (instance attributes) that
call `on_forward(name, module, x, y)` / `on_backward(name, module, dy, dx)` and then return the
original result; leaving the `with` block removes them. Used to record per-layer inputs, activations
and output gradients only on the passes that are sampled, so the other passes cost nothing extra."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ..nn.module import Module


def leaf_modules(model: Module) -> list[tuple[str, Module]]:
    """(dotted name, module) of every module without children, in registration (= forward) order."""
    return [(name, m) for name, m in model.named_modules() if not m._modules]


class Tap:
    """Installed wrappers on `modules`; `remove()` restores the class methods. Never deep-copy a model
    while a tap is installed (the copy would call back into this tap)."""

    def __init__(self, modules: list[tuple[str, Module]], on_forward: Callable | None = None,
                 on_backward: Callable | None = None):
        self.modules = []
        for name, m in modules:
            if on_forward is not None:
                object.__setattr__(m, "forward", _wrap_forward(name, m, m.forward, on_forward))
            if on_backward is not None:
                object.__setattr__(m, "backward", _wrap_backward(name, m, m.backward, on_backward))
            self.modules.append(m)

    def remove(self) -> None:
        for m in self.modules:
            m.__dict__.pop("forward", None)
            m.__dict__.pop("backward", None)
        self.modules = []


@contextlib.contextmanager
def tap(modules: list[tuple[str, Module]], on_forward: Callable | None = None,
        on_backward: Callable | None = None) -> Iterator[Tap]:
    t = Tap(modules, on_forward, on_backward)
    try:
        yield t
    finally:
        t.remove()


def _wrap_forward(name, module, original, callback):
    def forward(x):
        y = original(x)
        callback(name, module, x, y)
        return y
    return forward


def _wrap_backward(name, module, original, callback):
    def backward(dy):
        dx = original(dy)
        callback(name, module, dy, dx)
        return dx
    return backward
