"""Forward and backward hooks: functions a module calls after its forward / backward, so activations and
gradients can be observed without changing any layer's code (the doctor's statistics are taken this way).

    handle = layer.register_forward_hook(lambda module, x, y: print(module, y.shape))
    handle = layer.register_backward_hook(lambda module, dy, dx: ...)
    handle.remove()                 # or: with layer.register_forward_hook(f): ...

A hook sees the arrays and must not change them. Cost: none while a module has no hook — the class's
`forward`/`backward` run as they are. The first hook of a kind puts a wrapper on the instance (its `forward` or
`backward` attribute) that runs the class's method and then the hooks, in the order registered; removing the
last one takes the wrapper away. `has_hooks()` tells whether any is registered: a container that would skip a
child's own forward (Sequential runs BatchNorm + ReLU as one fused pass, and in inference folds
conv + BatchNorm + ReLU into one: `folding`) does so only when it has none. A deep
copy keeps the hooks (they call the same functions): remove them before copying a model you observe."""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable

_ids = itertools.count()


class HookHandle:
    """What `register_*_hook` returns: `remove()` (idempotent) unregisters the hook; usable as a context
    manager."""

    def __init__(self, module, kind: str, key: int):
        self.module, self.kind, self.key = module, kind, key

    def remove(self) -> None:
        self.module._remove_hook(self.kind, self.key)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _forward(self, x):
    y = type(self).forward(self, x)
    for fn in list(self._hooks["forward"].values()):
        fn(self, x, y)
    return y


def _backward(self, dy):
    dx = type(self).backward(self, dy)
    for fn in list(self._hooks["backward"].values()):
        fn(self, dy, dx)
    return dx


_WRAPPERS = {"forward": _forward, "backward": _backward}


class Hooks:
    """The hook methods of every Module (a mixin: the hooks live in the instance's `_hooks`, made on first use)."""

    def register_forward_hook(self, fn: Callable) -> HookHandle:
        """Call `fn(module, x, y)` after every forward of this module (y: what forward returned)."""
        return self._add_hook("forward", fn)

    def register_backward_hook(self, fn: Callable) -> HookHandle:
        """Call `fn(module, dy, dx)` after every backward of this module (dx: what backward returned)."""
        return self._add_hook("backward", fn)

    def has_hooks(self) -> bool:
        """Whether a forward or backward hook is registered on this module (its children not included)."""
        return bool(self.__dict__.get("_hooks"))

    def _add_hook(self, kind: str, fn: Callable) -> HookHandle:
        if not callable(fn):
            raise TypeError(f"register_{kind}_hook: expected a callable, got {type(fn).__name__}")
        hooks = self.__dict__.get("_hooks")
        if hooks is None:
            hooks = {}
            object.__setattr__(self, "_hooks", hooks)
        table = hooks.setdefault(kind, {})
        key = next(_ids)
        table[key] = fn
        if len(table) == 1:
            object.__setattr__(self, kind, types.MethodType(_WRAPPERS[kind], self))
        return HookHandle(self, kind, key)

    def _remove_hook(self, kind: str, key: int) -> None:
        hooks = self.__dict__.get("_hooks") or {}
        table = hooks.get(kind, {})
        table.pop(key, None)
        if not table:
            hooks.pop(kind, None)
            self.__dict__.pop(kind, None)
        if not hooks:
            self.__dict__.pop("_hooks", None)
