"""The batch-normalisation numba kernels behind `norm.py` (imported only when compiled kernels are on). x is
the (M, C) matrix of `norm.py`; each kernel runs over rows [r0, r1) of it without the GIL, so striate's own
threads split the rows as they do for the NumPy passes. Each kernel is one pass over its rows, the channel
loop innermost (vectorised), its per-channel accumulators in float64.

Exactness against the NumPy path: the elementwise parts (x·s + t, its ReLU, the mask, dx from given sums) are
the same float operations in the same order, so bit-identical for the same (C,) vectors; the column sums are
accumulated in another order (row by row in float64, not blockwise GEMVs in float32), so the statistics and
gradient sums, and everything computed from them, agree within float32 rounding.
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def moments(x, r0, r1):
    """(mean, M2) (C,) float64 of rows [r0, r1): Σ(x − k) and Σ(x − k)² about k = the part's first row, in
    float64. The shift bounds the cancellation: (x₀ − mean)² ≤ n·var, so M2 = Σ(x − k)² − (Σ(x − k))²/n loses at
    most ~n·1e-16 relatively — offset data keep a two-pass variance's precision in one pass."""
    c = x.shape[1]
    shift, s, q = np.empty(c), np.zeros(c), np.zeros(c)
    for ch in range(c):
        shift[ch] = x[r0, ch]
    for i in range(r0, r1):
        for ch in range(c):
            d = np.float64(x[i, ch]) - shift[ch]
            s[ch] += d
            q[ch] += d * d
    n = r1 - r0
    mean, m2 = np.empty(c), np.empty(c)
    for ch in range(c):
        mean[ch] = shift[ch] + s[ch] / n
        m2[ch] = max(q[ch] - s[ch] * s[ch] / n, 0.0)
    return mean, m2


@numba.njit(**_opts)
def affine(x, scale, shift, relu, r0, r1, out):
    """out = x·scale + shift per column (then max(·, 0) with `relu`) on rows [r0, r1): NumPy's multiply, add,
    maximum (NaN propagating), in that order."""
    c = x.shape[1]
    for i in range(r0, r1):
        for ch in range(c):
            y = x[i, ch] * scale[ch]
            y = y + shift[ch]
            if relu:
                y = y if y > 0 or y != y else np.float32(0)  # np.maximum(y, 0): +0 for ±0
            out[i, ch] = y


@numba.njit(**_opts)
def gradient_sums(d, x, mean, scale, shift, relu, r0, r1):
    """(Σ g, Σ g·(x − mean)) (C,) float64 over rows [r0, r1), g = dout, or with `relu` dout·(x·scale + shift > 0)
    (the product with 1 or 0, as NumPy's multiply by the mask)."""
    c = x.shape[1]
    sd, sdx = np.zeros(c), np.zeros(c)
    for i in range(r0, r1):
        for ch in range(c):
            g = d[i, ch]
            if relu:
                z = x[i, ch] * scale[ch] + shift[ch]
                g = g * (np.float32(1) if z > 0 else np.float32(0))
            sd[ch] += g
            sdx[ch] += np.float64(g) * np.float64(x[i, ch] - mean[ch])
    return sd, sdx


@numba.njit(**_opts)
def train_dx(d, x, mean, scale, shift, relu, neg_kx, k0, r0, r1, dx):
    """dx = (x − mean)·(−k_x) + g·scale − k_0 on rows [r0, r1), g as in `gradient_sums` (NumPy's order)."""
    c = x.shape[1]
    for i in range(r0, r1):
        for ch in range(c):
            g = d[i, ch]
            if relu:
                z = x[i, ch] * scale[ch] + shift[ch]
                g = g * (np.float32(1) if z > 0 else np.float32(0))
            o = (x[i, ch] - mean[ch]) * neg_kx[ch]
            o = o + g * scale[ch]
            dx[i, ch] = o - k0[ch]


@numba.njit(**_opts)
def eval_backward(d, x, mean, scale, shift, relu, r0, r1, dx):
    """The evaluation-mode backward in one pass: dx = g·scale on rows [r0, r1), and returns `gradient_sums`."""
    c = x.shape[1]
    sd, sdx = np.zeros(c), np.zeros(c)
    for i in range(r0, r1):
        for ch in range(c):
            g = d[i, ch]
            if relu:
                z = x[i, ch] * scale[ch] + shift[ch]
                g = g * (np.float32(1) if z > 0 else np.float32(0))
            dx[i, ch] = g * scale[ch]
            sd[ch] += g
            sdx[ch] += np.float64(g) * np.float64(x[i, ch] - mean[ch])
    return sd, sdx
