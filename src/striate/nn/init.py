"""Weight initialisers from the CS231n notes. Each is `f(shape, rng, dtype) -> array`.

Fan-in is the number of inputs per output unit: `in` for a Linear weight `(in, out)`,
`KH·KW·C_in` for a Conv2d weight `(KH, KW, C_in, C_out)`; fan-out is the last axis times the
kernel area. Factories (`normal(std)`, `constant(v)`, `sparse(k)`) return such a function.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[tuple[int, ...], np.random.Generator, object], np.ndarray]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape`: all axes but the last feed one output unit."""
    if len(shape) < 2:
        return int(shape[0]) if shape else 1, int(shape[0]) if shape else 1
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return receptive * int(shape[-2]), receptive * int(shape[-1])


def zeros(shape, rng=None, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def constant(value: float) -> Initializer:
    def init(shape, rng=None, dtype=np.float32):
        return np.full(shape, value, dtype=dtype)

    init.__name__ = f"constant({value})"
    return init


def normal(std: float = 0.01) -> Initializer:
    """The notes' "small random numbers": `std · randn`."""

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


def sparse(k: int, std: float = 0.01) -> Initializer:
    """Each output unit connected to exactly `k` random inputs (weights `std · randn`), the rest zero."""

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


_BY_NAME = {"zeros": zeros, "xavier": xavier, "glorot": glorot, "he": he, "normal": normal()}
_FACTORIES = {"normal": normal, "constant": constant, "sparse": sparse}


def get(spec) -> Initializer:
    """An initialiser from a function, a name ('he', 'xavier', 'glorot', 'zeros', 'normal'), or a one-entry
    table naming a factory and its argument(s), as a run file writes it: `{"normal": 0.01}`,
    `{"constant": 0.01}`, `{"sparse": 10}` or `{"sparse": [10, 0.01]}`."""
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
        return _FACTORIES[name](*args)
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        raise ValueError(f"a number ({spec!r}) is not an initialiser: give a name ({', '.join(sorted(_BY_NAME))}) "
                         "or a table such as {normal = 0.01}")
    try:
        return _BY_NAME[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initialiser {spec!r}; choose from {sorted(_BY_NAME)} or a table such as "
                         "{normal = 0.01}, {constant = 0.01}, {sparse = 10}") from None
