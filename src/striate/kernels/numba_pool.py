"""The max-pooling numba kernels behind `jit.py` (imported only when the extra is enabled). Each runs on one part of the
batch per call, without the GIL, so striate's own threads split the work as they do for the NumPy kernels.

Written for LLVM's vectorizer: plain indexing (no array views inside the loops, whose reference counting
costs more than the work) and the channel loop innermost, its body straight-line code with selects.
Max pooling 2×2 at batch 128, 2 threads, forward + backward (ms, NumPy → numba): see bench/README.md.
Tried and not kept: the im2col copy (NumPy's strided copy moves whole channel runs with memcpy; the
compiled loop was 1.7–6× slower at 1–64 channels).
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def max_pool_forward(x, kh, kw, sh, sw, out, switches):
    """out (N, Ho, Wo, C) = max of each window at (i·sh, j·sw), switches = row-major offset of its first
    maximum: the strict-greater scan of NumPy's `max_over`, NaN propagating to the output as through
    np.maximum."""
    n, ho, wo, c = out.shape
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    out[b, i, j, ch] = x[b, i * sh, j * sw, ch]
                    switches[b, i, j, ch] = 0
                for u in range(kh):
                    for v in range(kw):
                        if u == 0 and v == 0:
                            continue
                        k = u * kw + v
                        for ch in range(c):
                            val = x[b, i * sh + u, j * sw + v, ch]
                            best = out[b, i, j, ch]
                            greater = val > best
                            switches[b, i, j, ch] = k if greater else switches[b, i, j, ch]
                            out[b, i, j, ch] = val if greater or val != val else best


@numba.njit(**_opts)
def max_pool_backward(dout, switches, kh, kw, sh, sw, dx):
    """dx (N, H, W, C) of windows that do not overlap (stride ≥ kernel): each output gradient at its window's
    switch, zero elsewhere (elements outside every window are zeroed when the stride exceeds the kernel)."""
    n, ho, wo, c = dout.shape
    gaps = sh != kh or sw != kw or dx.shape[1] != ho * kh or dx.shape[2] != wo * kw
    if gaps:  # as NumPy's path there: zeros, then += dout·mask (so a −0.0 product leaves +0.0)
        dx[:] = 0
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for u in range(kh):
                    for v in range(kw):
                        k = u * kw + v
                        for ch in range(c):
                            d = dout[b, i, j, ch]
                            g = d if switches[b, i, j, ch] == k else 0 * d
                            if gaps:
                                dx[b, i * sh + u, j * sw + v, ch] += g
                            else:
                                dx[b, i * sh + u, j * sw + v, ch] = g


def warm():
    """Compile the kernels for float32 and uint8 switches now rather than at first use."""
    x = np.zeros((1, 2, 2, 1), np.float32)
    out, sw = np.zeros((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.uint8)
    max_pool_forward(x, 2, 2, 2, 2, out, sw)
    max_pool_backward(out, sw, 2, 2, 2, 2, x)
