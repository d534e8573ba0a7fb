"""Weight initialisers from the CS231n notes. Each is `f(shape, rng, dtype) -> array`.

Fan-in is the number of inputs per output unit: `in` for a Linear weight `(in, out)`,
`KH·KW·C_in` for a Conv2d weight `(KH, KW, C_in, C_out)`; fan-out is the last axis times the
kernel area. Factories (`normal(std)`, `constant(v)`, `sparse(k)`) return such a function; their arguments
are checked when the factory is called (a finite value, a standard deviation ≥ 0, 1 ≤ k), so a bad one in a run
file is refused when the model is built, not found as a diverged run.

`shapes_only()`: inside it, every initialiser fetched with `get` (and `filled`) returns a placeholder that has
the weight's shape and dtype but holds no memory (a zero-strided view), and a `Parameter` made from one gets a
placeholder gradient. A model built inside it has every shape, parameter count and MAC of the real one for
nothing, so its memory can be estimated (`complexity`) before a size that cannot fit is allocated.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator, object], np.ndarray]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape`: all axes but the last feed one output unit."""
    if len(shape) < 2:
        return int(shape[0]) if shape else 1, int(shape[0]) if shape else 1
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return receptive * int(shape[-2]), receptive * int(shape[-1])


class _Mode(threading.local):
    shapes_only = False


_MODE = _Mode()


@contextlib.contextmanager
def shapes_only():
    """Build weights as memoryless placeholders inside this block (see the module docstring)."""
    previous, _MODE.shapes_only = _MODE.shapes_only, True
    try:
        yield
    finally:
        _MODE.shapes_only = previous


def placeholders() -> bool:
    """True inside `shapes_only()`."""
    return _MODE.shapes_only


def placeholder(shape, dtype=np.float32) -> np.ndarray:
    """A read-only array of `shape` and `dtype` that holds one value's memory (all strides zero)."""
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    try:
        return np.broadcast_to(np.zeros((), dtype=dtype), shape)
    except ValueError as e:  # more elements than an array can index
        raise ValueError(f"a weight of shape {shape} is too large ({e})") from None


def filled(shape, value: float, dtype=np.float32) -> np.ndarray:
    """`np.full(shape, value)`, or a placeholder inside `shapes_only()` (BatchNorm's γ, β, running statistics)."""
    return placeholder(shape, dtype) if placeholders() else np.full(shape, value, dtype=dtype)


def _finite(value, what: str) -> float:
    """`value`, or ValueError when it is not a number that is finite in float32 (the weights' type)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or abs(value) > float(np.finfo(np.float32).max):
        raise ValueError(f"{what}: expected a finite number (in float32), got {value!r}")
    return value


def _scale(std, what: str) -> float:
    if _finite(std, what) < 0:
        raise ValueError(f"{what}: a standard deviation must be ≥ 0, got {std!r}")
    return std


def zeros(shape, rng=None, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def constant(value: float) -> Initializer:
    _finite(value, "constant(value)")

    def init(shape, rng=None, dtype=np.float32):
        return np.full(shape, value, dtype=dtype)

    init.__name__ = f"constant({value})"
    return init


def normal(std: float = 0.01) -> Initializer:
    """The notes' "small random numbers": `std · randn` (std ≥ 0)."""
    _scale(std, "normal(std)")

    def init(shape, rng, dtype=np.float32):
        return (rng.standard_normal(shape) * std).astype(dtype)

    init.__name__ = f"normal({std})"
    return init


def xavier(shape, rng, dtype=np.float32) -> np.ndarray:
    """`randn / sqrt(fan_in)` (the notes' calibrated variance, Glorot & Bengio's simplification)."""
    fan_in, _ = fans(shape)
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)


def glorot(shape, rng, dtype=np.float32) -> np.ndarray:
    """Variance `2 / (fan_in + fan_out)` (Glorot & Bengio 2010), Gaussian."""
    fan_in, fan_out = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def he(shape, rng, dtype=np.float32) -> np.ndarray:
    """Variance `2 / fan_in` (He et al. 2015), the notes' recommendation for ReLU networks."""
    fan_in, _ = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def he_fan_out(shape, rng, dtype=np.float32) -> np.ndarray:
    """Variance `2 / fan_out` (He et al. 2015's other form, PyTorch's `mode="fan_out"`): for a Conv2d weight
    (F, F, C_in, n_out) the notes' σ = √(2 / (F·F·n_out)). It keeps the gradients' variance through the
    backward pass where `he` keeps the activations' through the forward pass."""
    _, fan_out = fans(shape)
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)).astype(dtype)


def torch_default(shape, rng, dtype=np.float32) -> np.ndarray:
    """PyTorch's default Conv2d/Linear weight: kaiming_uniform_(a=√5), i.e. uniform on ±1/√fan_in."""
    fan_in, _ = fans(shape)
    return (rng.uniform(-1.0, 1.0, shape) / np.sqrt(fan_in)).astype(dtype)


def dirac(shape, rng, dtype=np.float32) -> np.ndarray:
    """Identity (Dirac) initialisation of a convolution weight (KH, KW, C_in, C_out): output filter i < min(C_in,
    C_out) passes input channel i through (1 at the kernel's centre tap (KH // 2, KW // 2), the tap
    torch.nn.init.dirac_ uses for even sizes too; 0 elsewhere); the other filters are `torch_default`. This is
    airbench's `dirac_(w[:w.size(1)])` on a default-initialised PyTorch conv."""
    if len(shape) < 3:
        raise ValueError(f"dirac: initialises a convolution weight (KH, KW, C_in, C_out), got shape {tuple(shape)}")
    w = torch_default(shape, rng, dtype)  # drawn in full: the random stream does not depend on the split
    m = min(shape[-2], shape[-1])
    w[..., :m] = 0
    w[tuple(k // 2 for k in shape[:-2]) + (np.arange(m), np.arange(m))] = 1
    return w


def sparse(k: int, std: float = 0.01) -> Initializer:
    """Each output unit connected to exactly `k` random inputs (weights `std · randn`), the rest zero."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"sparse(k): k must be an integer ≥ 1, got {k!r}")
    _scale(std, "sparse(k, std)")

    def init(shape, rng, dtype=np.float32):
        fan_in, _ = fans(shape)
        if not 0 < k <= fan_in:
            raise ValueError(f"sparse({k}): k must be in [1, fan_in={fan_in}]")
        units = shape[-1]
        w = np.zeros((fan_in, units), dtype=dtype)
        # argsort of uniform keys draws k distinct inputs per unit without a loop
        chosen = np.argsort(rng.random((fan_in, units)), axis=0)[:k]
        w[chosen, np.arange(units)] = rng.standard_normal((k, units)) * std
        return w.reshape(shape)

    init.__name__ = f"sparse({k})"
    return init


_BY_NAME = {"zeros": zeros, "xavier": xavier, "glorot": glorot, "he": he, "he_fan_out": he_fan_out, "normal": normal(),
            "torch": torch_default, "dirac": dirac}
_FACTORIES = {"normal": normal, "constant": constant, "sparse": sparse}


def get(spec) -> Initializer:
    """An initialiser from a function, a name ('he', 'he_fan_out', 'xavier', 'glorot', 'zeros', 'normal', 'torch'
    (PyTorch's default), 'dirac' (identity, convolutions)), or a
    one-entry table naming a factory and its argument(s), as a run file writes it: `{"normal": 0.01}`,
    `{"constant": 0.01}`, `{"sparse": 10}` or `{"sparse": [10, 0.01]}`. Inside `shapes_only()` the initialiser
    makes placeholders."""
    init = _get(spec)
    if not placeholders():
        return init

    def shaped(shape, rng=None, dtype=np.float32):
        return placeholder(shape, dtype)

    return shaped


def _get(spec) -> Initializer:
    if callable(spec):
        return spec
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in _FACTORIES:
            raise ValueError(f"initialiser table {spec!r}: give one of {sorted(_FACTORIES)} with its argument, "
                             "e.g. {normal = 0.01}")
        (name, arg), = spec.items()
        args = arg if isinstance(arg, list) else [arg]
        if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
            raise ValueError(f"initialiser {{{name} = {arg!r}}}: the argument must be a number")
        if not 1 <= len(args) <= {"sparse": 2}.get(name, 1):
            takes = "k or [k, std]" if name == "sparse" else "one number"
            raise ValueError(f"initialiser {{{name} = {arg!r}}}: give {takes}")
        try:
            return _FACTORIES[name](*args)
        except ValueError as e:
            raise ValueError(f"initialiser {{{name} = {arg!r}}}: {e}") from None
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        raise ValueError(f"a number ({spec!r}) is not an initialiser: give a name ({', '.join(sorted(_BY_NAME))}) "
                         "or a table such as {normal = 0.01}")
    try:
        return _BY_NAME[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initialiser {spec!r}; choose from {sorted(_BY_NAME)} or a table such as "
                         "{normal = 0.01}, {constant = 0.01}, {sparse = 10}") from None
