"""Inverted dropout kernels (Srivastava et al. 2014, the notes' "inverted dropout").

p is the probability of DROPPING a unit (PyTorch's convention). Kept units are scaled by 1/(1 − p)
at training time so the expected activation is unchanged and evaluation is the identity. p = 1
drops everything and the scale is taken as 0 (no division by zero). The cache is the scaled mask in
the input's dtype, so backward is one multiply.

With numba (`jit.compiled("act")`), unit dropout of a contiguous float32/float64 input draws the same uniforms
from the same generator, then turns them into the mask and multiplies in one compiled pass per thread:
bit-identical to the NumPy path (the same comparison and products). Backward is one pass per thread either way.
"""

from __future__ import annotations

import numpy as np

from .activation import compiled_act, in_parts


def _scale(p: float) -> float:
    """The kept units' factor 1/(1 − p): 1 at p = 0, 0 at p = 1."""
    keep = 1.0 - p
    return 1.0 if keep >= 1.0 else (1.0 / keep) if keep > 0 else 0.0


def dropout_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """An array of `shape`: 0 with probability p, else 1/(1 − p); drawn from `rng`."""
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
    mask = rng.random(shape, dtype=draw_dtype)
    # compare in place: the uniform draws become the 0/1 mask without a second buffer
    np.greater_equal(mask, p, out=mask, casting="unsafe")
    if p > 0.0:
        mask *= _scale(p)
    return mask.astype(dtype, copy=False)


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, mask_shape: tuple[int, ...] | None = None):
    """Returns (x·mask, mask). `mask_shape` broadcasts against x: x.shape for unit dropout,
    (N, 1, 1, C) for spatial dropout of NHWC feature maps (Tompson et al. 2015)."""
    jit = compiled_act(x) if mask_shape is None else None
    if jit is None:
        mask = dropout_mask(x.shape if mask_shape is None else mask_shape, p, rng, x.dtype)
        return x * mask, mask
    mask, out = rng.random(x.shape, dtype=x.dtype), np.empty_like(x)  # dropout_mask's draw
    t = x.dtype.type
    in_parts(lambda a, u, o: jit.dropout_forward(a, u, o, t(p), t(_scale(p)), t(0)), x, mask, out)
    return out, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dout · mask: NumPy's multiply, one part per thread (a compiled loop would add only its call's cost)."""
    if dout.shape != mask.shape or not (dout.flags.c_contiguous and mask.flags.c_contiguous):
        return dout * mask
    dx = np.empty(dout.shape, np.result_type(dout, mask))
    in_parts(lambda d, m, g: np.multiply(d, m, out=g), dout, mask, dx)
    return dx
