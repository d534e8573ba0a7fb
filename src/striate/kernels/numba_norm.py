"""The batch-normalisation numba kernels behind `norm.py` (imported only when compiled kernels are on). x is
the (M, C) matrix of `norm.py`; each kernel runs over rows [r0, r1) of it without the GIL, so striate's own
threads split the rows as they do for the NumPy passes. Each kernel is one pass over its rows, the channel
loop innermost (vectorised), its per-channel sums accumulated row by row in float64.

Exactness against the NumPy path: the elementwise parts (x·s + t, its ReLU, the mask, dx from given sums) are
the same float operations in the same order, so bit-identical for the same (C,) vectors; the column sums add in
another order (and in float64 throughout, where NumPy's blocks sum in float32), so the statistics and gradient
sums, and everything computed from them, agree within float32 rounding.
Tried and not kept: float32 sums over blocks of 32 rows, added in float64 (statistics and gradient sums
1.3–1.6× faster on one thread, as precise): a different float32 trajectory, on which a 3-epoch training run
meets a ReLU input within 4e-7 of zero and the one-process / synchronised-ranks comparison of
tests/test_distributed.py no longer holds to 1e-4.
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def moments(x, r0, r1):
    """(mean, M2) (C,) float64 of rows [r0, r1) in one pass: Σ(x − k) and Σ(x − k)² about k = the part's first
    row, in float64. The shift bounds the cancellation: (x₀ − mean)² ≤ n·var, so M2 = Σ(x − k)² − (Σ(x − k))²/n
    loses at most ~n·1e-16 relatively — offset data keep a two-pass variance's precision in one pass."""
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
def _masked(g, x, scale, shift, relu):
    """g, or with `relu` g·(x·scale + shift > 0): the product with 1 or 0, as NumPy's multiply by the mask.
    (Scalars only: array arguments would cost reference counting per element and stop the vectoriser.)"""
    if relu:
        z = x * scale + shift
        g = g * (np.float32(1) if z > 0 else np.float32(0))
    return g


@numba.njit(**_opts)
def gradient_sums(d, x, mean, scale, shift, relu, r0, r1):
    """(Σ g, Σ g·(x − mean)) (C,) float64 over rows [r0, r1), g = `_masked` dout."""
    return _sums(d, x, mean, scale, shift, relu, r0, r1, d, False)


@numba.njit(**_opts)
def _sums(d, x, mean, scale, shift, relu, r0, r1, dx, write):
    """`gradient_sums`, and with `write` dx = g·scale on the same rows (the evaluation backward)."""
    c = x.shape[1]
    sd, sdx = np.zeros(c), np.zeros(c)
    for i in range(r0, r1):
        for ch in range(c):
            g = _masked(d[i, ch], x[i, ch], scale[ch], shift[ch], relu)
            if write:
                dx[i, ch] = g * scale[ch]
            sd[ch] += g
            sdx[ch] += np.float64(g) * np.float64(x[i, ch] - mean[ch])
    return sd, sdx


@numba.njit(**_opts)
def train_dx(d, x, mean, scale, shift, relu, neg_kx, k0, r0, r1, dx):
    """dx = (x − mean)·(−k_x) + g·scale − k_0 on rows [r0, r1), g = `_masked` dout (NumPy's order)."""
    c = x.shape[1]
    for i in range(r0, r1):
        for ch in range(c):
            g = _masked(d[i, ch], x[i, ch], scale[ch], shift[ch], relu)
            o = (x[i, ch] - mean[ch]) * neg_kx[ch]
            o = o + g * scale[ch]
            dx[i, ch] = o - k0[ch]


@numba.njit(**_opts)
def eval_backward(d, x, mean, scale, shift, relu, r0, r1, dx):
    """The evaluation-mode backward in one pass: dx = g·scale on rows [r0, r1), and returns `gradient_sums`."""
    return _sums(d, x, mean, scale, shift, relu, r0, r1, dx, True)
