"""Inverted dropout kernels (Srivastava et al. 2014, the notes' "inverted dropout").

p is the probability of DROPPING a unit (PyTorch's convention). Kept units are scaled by 1/(1 − p)
at training time so the expected activation is unchanged and evaluation is the identity. p = 1
drops everything and the scale is taken as 0 (no division by zero). The cache is the scaled mask in
the input's dtype, so backward is one multiply.
"""

from __future__ import annotations

import numpy as np


def dropout_mask(shape: tuple[int, ...], p: float, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """An array of `shape`: 0 with probability p, else 1/(1 − p); drawn from `rng`."""
    dtype = np.dtype(dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)
    mask = rng.random(shape, dtype=draw_dtype)
    # compare in place: the uniform draws become the 0/1 mask without a second buffer
    np.greater_equal(mask, p, out=mask, casting="unsafe")
    keep = 1.0 - p
    if keep < 1.0:
        mask *= (1.0 / keep) if keep > 0 else 0.0
    return mask.astype(dtype, copy=False)


def dropout_forward(x: np.ndarray, p: float, rng: np.random.Generator, mask_shape: tuple[int, ...] | None = None):
    """Returns (x·mask, mask). `mask_shape` broadcasts against x: x.shape for unit dropout,
    (N, 1, 1, C) for spatial dropout of NHWC feature maps (Tompson et al. 2015)."""
    mask = dropout_mask(x.shape if mask_shape is None else mask_shape, p, rng, x.dtype)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return dout * mask
