"""The fused output pass of a convolution or matrix product: y ← act(y + b), in place, while a chunk of y is
still in cache (the inference graph, `nn.folding`, uses it to run conv → BatchNorm → ReLU as one pass).

An activation is given as `(name, parameter)`: ("relu", 0), ("leaky_relu", slope) with 0 ≤ slope ≤ 1, or
("tanh", 0); None applies none. Each is bit-identical to the separate layer's NumPy kernel
(`kernels.activation`): max(y, 0); max(y, slope·y), which equals y·(slope if y ≤ 0 else 1) for such slopes;
tanh(y).
"""

from __future__ import annotations

import numpy as np

from .parallel import for_parts

ACTIVATIONS = ("relu", "leaky_relu", "tanh")


def check_activation(act) -> tuple[str, float] | None:
    """`act` as (name, parameter), or None; ValueError for one the epilogue cannot apply."""
    if act is None:
        return None
    name, value = act
    if name not in ACTIVATIONS:
        raise ValueError(f"fused activation must be one of {', '.join(ACTIVATIONS)}; got {name!r}")
    if name == "leaky_relu" and not 0.0 <= value <= 1.0:
        raise ValueError(f"fused leaky_relu needs a slope in [0, 1], got {value!r}")
    return name, float(value)


def bias_activation(y: np.ndarray, b: np.ndarray | None, act) -> None:
    """y ← act(y + b) in place; y: (..., F), b: (F,) or None, act: see the module docstring."""
    if b is not None:
        y += b
    if act is None:
        return
    name, value = act
    if name == "relu":
        np.maximum(y, y.dtype.type(0), out=y)
    elif name == "leaky_relu":
        np.maximum(y, y * y.dtype.type(value), out=y)
    else:
        np.tanh(y, out=y)


def bias_activation_rows(y: np.ndarray, b: np.ndarray | None, act) -> None:
    """`bias_activation` on a whole array (N, ...), split over the threads by its first axis."""
    if b is None and act is None:
        return
    for_parts(lambda s: bias_activation(y[s], b, act), y.shape[0], y.nbytes)
