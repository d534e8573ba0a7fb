"""Module and Parameter: the contract every layer follows.

A module owns parameters (trained), buffers (saved, not trained), child modules, a `training`
flag and one cache slot. `forward(x) -> y` stores what `backward` needs; `backward(dy) -> dx`
returns the input gradient and *accumulates* parameter gradients into `param.grad`.

The cache slot also remembers the shape and dtype of the output (`self._save(cache, y)`), so
`self._saved(dy)` in backward refuses a `dy` that is not shaped like that output with a LayerError
naming the layer, instead of a NumPy broadcast error deep in a kernel (or, worse, a silent broadcast).
Handing the cache to backward (`_saved(dy)`) also empties the slot: a step's activations are freed layer by
layer on the way down, so the lower layers' large gradients never coexist with the upper layers' caches.
"""

from __future__ import annotations

import contextlib
import operator
import threading
from collections.abc import Iterator

import numpy as np

from ..kernels.parallel import configure as configure_threads
from .errors import LayerError
from .hooks import Hooks
from .init import placeholder, placeholders
from .state import convert_for_load


class _GradMode(threading.local):
    enabled = True  # per thread: one thread's no_grad() does not affect another's training


_MODE = _GradMode()
_NO_DY = object()  # `_saved()` called without a gradient to check (containers, custom layers)


def _layout(ndim: int, last: int | None, layout: str | None) -> str:
    """'(N, H, W, 16)': the axes a layer takes, `last` filled in (default names 'N, ?, ?')."""
    names = (layout or ", ".join(["N"] + ["?"] * (ndim - 1))).split(", ")
    if last is not None:
        names[-1] = str(last)
    return f"({', '.join(names)})"


@contextlib.contextmanager
def no_grad():
    """Forward passes inside this block keep no cache (inference: less memory, no backward)."""
    previous, _MODE.enabled = _MODE.enabled, False
    try:
        yield
    finally:
        _MODE.enabled = previous


def grad_enabled() -> bool:
    return _MODE.enabled


class Parameter:
    """A trainable array `.data` and its gradient `.grad` (same shape and dtype, starts at zero)."""

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        data = np.asarray(data)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter needs a floating-point array, got dtype {data.dtype}")
        self.data = data
        # a placeholder weight (init.shapes_only: a model built only to be measured) gets a placeholder gradient
        self.grad = placeholder(data.shape, data.dtype) if placeholders() else np.zeros_like(data)
        self.requires_grad = requires_grad

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def accumulate(self, g: np.ndarray) -> None:
        """Add `g` into `.grad` (in place, keeps dtype); skipped when the parameter is frozen."""
        if self.requires_grad:
            self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module(Hooks):
    """Base class. Subclasses set parameters/children as attributes and implement
    `forward`, `backward`, `output_shape` and (if they compute anything) `macs`.

    `requires_input_grad = False` tells a module its input gradient is not wanted (the first layer of a
    network fed with data, or layers below a frozen prefix): layers that can skip that work return None
    from `backward`, and `Sequential` stops at its first trainable layer. `register_forward_hook` /
    `register_backward_hook` observe a module's passes (`hooks.py`).
    """

    requires_input_grad = True

    def __init__(self):
        configure_threads()  # BLAS's thread count is fixed before this layer computes anything
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        object.__setattr__(self, "_output", None)  # (shape, dtype) of the cached forward's output

    # ----- registration -------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if name in self._buffers and not isinstance(value, Parameter | Module):
            object.__setattr__(self, name, value)  # re-assigning a buffer keeps it registered
            return
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """A saved, untrained array (e.g. BatchNorm running statistics)."""
        self._buffers[name] = None
        object.__setattr__(self, name, array)

    def _buffer_names(self) -> list[str]:
        return list(self._buffers)

    # ----- the pass -----------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, x):
        return self.forward(x)

    def _save(self, cache, output: np.ndarray | None = None) -> None:
        """Store the single cache slot, unless inside `no_grad()`; with `output` (the array forward
        returns) also its shape and dtype, which `_saved(dy)` checks the gradient against."""
        keep = _MODE.enabled
        object.__setattr__(self, "_cache", cache if keep else None)
        object.__setattr__(self, "_output", (output.shape, output.dtype) if keep and output is not None else None)

    def _saved(self, dy=_NO_DY):
        """The cache of the last forward; given `dy` (a backward), first check it matches that forward's output,
        then empty the slot (module docstring): a second backward needs a second forward."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{self.describe()}: backward called without a cached forward pass "
                               "(call forward first, outside no_grad(); each forward serves one backward)")
        if dy is not _NO_DY:
            self._check_grad(dy)
            object.__setattr__(self, "_cache", None)
        return cache

    def _check_grad(self, dy) -> None:
        """LayerError unless `dy` is an array of the shape and dtype of the last forward's output."""
        if self._output is None:
            return
        shape, dtype = self._output
        if not isinstance(dy, np.ndarray):
            raise self._error(f"backward expected dy as a NumPy array {shape} of {dtype}, got {type(dy).__name__}")
        if dy.shape != shape:
            raise self._error(f"backward expected dy {shape} (the output of the last forward), got {dy.shape}")
        if dy.dtype != dtype:
            raise self._error(f"backward expected dy of dtype {dtype} (the output of the last forward), "
                              f"got {dy.dtype}")

    def clear_state(self) -> Module:
        """Drop every cache (before saving, or to free memory)."""
        for m in self.modules():
            object.__setattr__(m, "_cache", None)
            object.__setattr__(m, "_output", None)
        return self

    # ----- traversal ----------------------------------------------------------------------
    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def modules(self) -> Iterator[Module]:
        yield self
        for child in self._modules.values():
            yield from child.modules()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mname, m in self.named_modules(prefix):
            for bname in m._buffers:
                yield (f"{mname}.{bname}" if mname else bname), getattr(m, bname)

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # ----- freezing -----------------------------------------------------------------------
    def weighted_layers(self) -> list[str]:
        """Names of the layers with weights, in forward order: the leaf modules holding a weight matrix or
        kernel (a parameter with ≥ 2 axes: convolutions, fully-connected layers, Maxout), as `freeze(k)`
        counts them. BatchNorm, PReLU and biases alone do not count."""
        return [name for name, m in self.named_modules()
                if name and not m._modules and any(p.data.ndim >= 2 for p in m._parameters.values())]

    def freeze(self, layers: int | None = None, *, names=None, upto: int | None = None) -> Module:
        """Stop training the first layers: their parameters get `requires_grad = False`, so they accumulate
        no gradient and optimizers skip them, and the network's input gradient is switched off (backward stops
        at the first trainable layer of a Sequential).

        - `layers=k` (the default way, as a person counts): the first k layers with weights
          (`weighted_layers()`: convolutions and fully-connected layers), each with the parameters that
          follow it up to the next such layer (a BatchNorm or PReLU after the k-th goes with it);
        - `names=[...]`: exact names, of modules ('3', 'features.0') or parameters ('3.weight'), and all
          under them;
        - `upto=k`: the first k children, as `model[:k]` counts them (ReLU and pooling included).

        BatchNorm running statistics of frozen layers still move in training mode; keep such layers in eval
        mode if they must stay bit-identical. Returns self."""
        if layers is None and names is None and upto is None:
            raise ValueError(f"{type(self).__name__}.freeze: give layers=k (the first k layers with weights), "
                             "names=[...] or upto=k (the first k children)")
        params = [n for n, _ in self.named_parameters()]
        targets: set[str] = set()
        if layers is not None:
            weighted = self.weighted_layers()
            if not 0 <= int(layers) <= len(weighted):
                raise ValueError(f"{type(self).__name__}.freeze: layers={layers} is outside 0..{len(weighted)} "
                                 f"(the layers with weights: {', '.join(weighted) or 'none'})")
            if int(layers):
                after = weighted[int(layers)] if int(layers) < len(weighted) else None
                first_after = next((i for i, n in enumerate(params) if after and n.startswith(f"{after}.")),
                                   len(params))
                targets.update(params[:first_after])
        if upto is not None:
            children = list(self._modules)
            if not 0 <= int(upto) <= len(children):
                raise ValueError(f"{type(self).__name__}.freeze: upto={upto} is outside 0..{len(children)}")
            prefixes = tuple(f"{c}." for c in children[:int(upto)])
            targets.update(n for n in params if n.startswith(prefixes))
        for name in [names] if isinstance(names, str) else list(names or ()):
            under = [n for n in params if n == name or n.startswith(f"{name}.")]
            if not under:
                raise KeyError(f"{type(self).__name__}.freeze: no parameter named {name!r} or under it; "
                               f"parameters are {params[:6]}{'…' if len(params) > 6 else ''}")
            targets.update(under)
        for pname, p in self.named_parameters():
            if pname in targets:
                p.requires_grad = False
                p.zero_grad()
        object.__setattr__(self, "requires_input_grad", False)
        return self

    def unfreeze(self) -> Module:
        """Make parameters trainable (not a layer's `fixed_parameters`), restore the input gradient. Returns self."""
        for m in self.modules():
            for name, p in m._parameters.items():
                p.requires_grad = name not in getattr(m, "fixed_parameters", ())
        self.__dict__.pop("requires_input_grad", None)
        return self

    # ----- state --------------------------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Names → arrays (copies) of every parameter and buffer."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], strict: bool = True, *, cast: bool = False) -> Module:
        """Copy arrays into parameters and buffers in place. Shapes must match, and no value may change
        on the way in: float16 → float32 loads, float64 loads when every value is exactly a float32
        (`cast=True` rounds the others), integer/bool arrays never load into floating parameters, and
        `num_batches_tracked` takes whole numbers only (see `nn.state`). Every array is checked before
        any is copied, so a refused load (KeyError for names, ValueError otherwise) changes nothing."""
        own = self._state_arrays()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict into {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        ready = [(own[name], convert_for_load(name, value, own[name], cast=cast, what="load_state_dict"))
                 for name, value in state.items() if name in own]
        for target, value in ready:
            target[...] = value
        return self

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Live references (not copies) to every parameter's data and every buffer, by state_dict name."""
        own = {name: p.data for name, p in self.named_parameters()}
        own.update(self.named_buffers())
        return own

    def to(self, dtype) -> Module:
        """Convert every parameter (and its grad) and floating buffer to `dtype`, in place."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        for m in self.modules():
            for bname in m._buffers:
                b = getattr(m, bname)
                if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating):
                    object.__setattr__(m, bname, b.astype(dtype))
        return self.clear_state()

    @property
    def dtype(self):
        """The first parameter's dtype in `parameters()` order, None without any (every input check asks)."""
        for p in self._parameters.values():
            return p.data.dtype
        for child in self._modules.values():
            if (dtype := child.dtype) is not None:
                return dtype
        return None

    # ----- shapes and cost ----------------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input of `input_shape` (batch axis first, like Keras's
        `compute_output_shape`: (N, H, W, C), not (H, W, C)), without data."""
        return self._input_shape(input_shape, None, None, "N, ...")

    def macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of one forward pass on an input of `input_shape` (batch axis first; whole batch)."""
        self.output_shape(input_shape)  # the same shape errors as output_shape
        return 0

    def _input_shape(self, input_shape, ndim: int | None = None, last: int | None = None, layout: str | None = None,
                     *, min_ndim: int = 1) -> tuple[int, ...]:
        """`input_shape` of `output_shape`/`macs` as a tuple of ints, checked: rank `ndim` (None: at least
        `min_ndim`), last axis `last` (if given); `layout` names the axes as in `_check_input`. Otherwise a
        LayerError naming this layer, which calls a shape one axis short that would fit a per-sample shape
        (the likely mistake: (32, 32, 3) for (1, 32, 32, 3))."""
        try:
            shape = tuple(operator.index(d) for d in input_shape)
        except TypeError:
            shape = None
        if shape is None or any(d < 0 for d in shape):
            raise self._error(f"output_shape and macs take a shape, a tuple of ints with the batch dimension "
                              f"first, got {input_shape!r}")
        rank = min_ndim if ndim is None else ndim
        last_ok = last is None or (len(shape) > 0 and shape[-1] == last)
        if last_ok and (len(shape) == rank if ndim is not None else len(shape) >= rank):
            return shape
        expected = _layout(rank, last, layout)
        if last_ok and len(shape) == rank - 1 > 0:
            raise self._error(f"output_shape and macs take the batch dimension, {expected}; got {shape} — "
                              f"a per-sample shape? use {(1, *shape)}")
        raise self._error(f"expected input {expected}, got {shape}")

    # ----- description and errors ---------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def describe(self) -> str:
        """A one-line name used in error messages, e.g. `Conv2d(3→16, 5×5)`."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        if not self._modules:
            return self.describe()
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)

    def _error(self, message: str) -> LayerError:
        return LayerError(f"{self.describe()}: {message}")

    def _check_input(self, x, ndim: int, last: int | None = None, layout: str | None = None) -> None:
        """Raise a LayerError naming this layer unless `x` is a float array of rank `ndim`
        whose last axis is `last` (if given). `layout` names the axes, e.g. 'N, H, W, C'."""
        if not isinstance(x, np.ndarray):
            raise self._error(f"expected a NumPy array, got {type(x).__name__}")
        if x.dtype.kind != "f":  # np.issubdtype(x.dtype, np.floating), without its cost on every call
            raise self._error(f"expected a float32 or float64 array, got dtype {x.dtype}")
        if x.ndim != ndim or (last is not None and x.shape[-1] != last):
            raise self._error(f"expected input {_layout(ndim, last, layout)}, got {x.shape}")
        dtype = self.dtype
        if dtype is not None and x.dtype != dtype:
            raise self._error(
                f"input dtype {x.dtype} does not match parameter dtype {dtype} (convert with .to({x.dtype}))"
            )
