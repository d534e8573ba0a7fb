"""The pooling numba kernels behind `jit.py` (imported only when the extra is enabled): max pooling (forward with
its switches, backward) and average pooling, any window, stride and image shape. Each runs on one part of the
batch per call, without the GIL, so striate's own threads split the work as they do for the NumPy kernels.

Written for LLVM's vectorizer: arrays are seen as (N, H, W·C) rows, the innermost loop runs along a row over
channels, and its body is straight-line code with selects. That loop vectorizes only when the window is known
at compile time: a loop over a runtime KH×KW inside it stays scalar (measured 8–13× slower at 2×2), and one
outside it, updating the output per offset, stores KH·KW times. So the common windows (2×2, 3×3) get their
own entry points, which pass constants to the shared body (LLVM inlines it and unrolls the window); every
other window runs the same body with runtime sizes, scalar but branch-free. With stride 1 along the width
an output row's windows read one contiguous run of the input row, so the inner loop covers Wo·C elements,
not C — it vectorizes even for a few channels (GoogLeNet's 3×3 stride-1 pools).

Backward is a gather: each input element sums, in the NumPy path's order, the gradients of the windows
that hold it, and is written once (no zero fill, no read-modify-write passes per offset).
Tried and not kept: the im2col copy (NumPy's strided copy moves whole channel runs with memcpy; the
compiled loop was 1.7–6× slower at 1–64 channels); `numba.literally` for the window (its dispatch costs
milliseconds per call).
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def _runs(wo, c, sw):
    """(windows per row step, elements per run): with stride 1 a row of Wo windows is one run of Wo·C."""
    return (1, wo * c) if sw == 1 else (wo, c)


@numba.njit(**_opts)
def _max_forward(x, kh, kw, sh, sw, c, out, switches):
    """out (N, Ho, Wo·C) = max of each window at (i·sh, j·sw) of x (N, H, W·C), switches = row-major offset of
    its first maximum: the strict-greater scan of NumPy's `max_over` (a tie keeps the earlier offset), NaN
    propagating to the output as through np.maximum. Bit-identical to the NumPy path."""
    n, ho, row = out.shape
    nj, run = _runs(row // c, c, sw)
    for b in range(n):
        for i in range(ho):
            r0 = i * sh
            for j in range(nj):
                base, o0 = j * sw * c, j * run
                for t in range(run):
                    best = x[b, r0, base + t]
                    arg = np.uint8(0)
                    for u in range(kh):
                        for v in range(kw):
                            if u + v > 0:
                                val = x[b, r0 + u, base + v * c + t]
                                take = (val > best) | (val != val)
                                arg = np.uint8(u * kw + v) if val > best else arg
                                best = val if take else best
                    out[b, i, o0 + t] = best
                    switches[b, i, o0 + t] = arg


@numba.njit(**_opts)
def max_forward_2x2(x, sh, sw, c, out, switches):
    _max_forward(x, 2, 2, sh, sw, c, out, switches)


@numba.njit(**_opts)
def max_forward_3x3(x, sh, sw, c, out, switches):
    _max_forward(x, 3, 3, sh, sw, c, out, switches)


@numba.njit(**_opts)
def max_forward_any(x, kh, kw, sh, sw, c, out, switches):
    _max_forward(x, kh, kw, sh, sw, c, out, switches)


@numba.njit(**_opts)
def _window_of(p, k, s, n_out):
    """(index, valid) of the window whose offset k covers input position p: p = index·s + k, 0 ≤ index < n_out.
    Invalid windows get index 0, so reads stay inside the array (their terms are discarded)."""
    q = p - k
    i = q // s
    valid = q >= 0 and q - i * s == 0 and i < n_out
    return (i if valid else 0), valid


@numba.njit(**_opts)
def max_backward(dout, switches, kh, kw, sh, sw, c, dx, accumulate):
    """dx (N, H, W·C): each element the sum, over the windows that hold it in row-major offset order, of the
    window's output gradient where its switch names this element and 0·gradient elsewhere — NumPy's
    offsets path term for term (its `dx += dout·mask` per offset). `accumulate` (windows overlap or leave
    gaps) starts each sum at +0.0 as NumPy's zero fill does; otherwise each element's one term is stored as
    is (starting at −0.0, the identity of float addition, keeps a −0.0 product's sign, as np.multiply does).
    Bit-identical to the NumPy path's offsets backward."""
    n, h, _ = dx.shape
    ho, wo = dout.shape[1], dout.shape[2] // c
    w = dx.shape[2] // c
    start = dx.dtype.type(0.0) if accumulate else -dx.dtype.type(0.0)
    for b in range(n):
        for r in range(h):
            for s in range(w):
                e0 = s * c
                for ch in range(c):
                    dx[b, r, e0 + ch] = start
                for u in range(kh):
                    i, row_ok = _window_of(r, u, sh, ho)
                    for v in range(kw):
                        j, col_ok = _window_of(s, v, sw, wo)
                        if row_ok and col_ok:
                            k = np.uint8(u * kw + v)
                            o0 = j * c
                            for ch in range(c):
                                d = dout[b, i, o0 + ch]
                                dx[b, r, e0 + ch] += d if switches[b, i, o0 + ch] == k else 0 * d


@numba.njit(**_opts)
def _avg_forward(x, kh, kw, sh, sw, c, scale, out):
    """out (N, Ho, Wo·C) = (sum of each window in row-major offset order) · scale: NumPy's sum of the offset
    views, then its `out *= 1/(KH·KW)`. Bit-identical to the NumPy path."""
    n, ho, row = out.shape
    nj, run = _runs(row // c, c, sw)
    for b in range(n):
        for i in range(ho):
            r0 = i * sh
            for j in range(nj):
                base, o0 = j * sw * c, j * run
                for t in range(run):
                    acc = x[b, r0, base + t]
                    for u in range(kh):
                        for v in range(kw):
                            if u + v > 0:
                                acc += x[b, r0 + u, base + v * c + t]
                    out[b, i, o0 + t] = acc * scale


@numba.njit(**_opts)
def avg_forward_2x2(x, sh, sw, c, scale, out):
    _avg_forward(x, 2, 2, sh, sw, c, scale, out)


@numba.njit(**_opts)
def avg_forward_any(x, kh, kw, sh, sw, c, scale, out):
    _avg_forward(x, kh, kw, sh, sw, c, scale, out)


@numba.njit(**_opts)
def avg_backward(dout, kh, kw, sh, sw, c, scale, dx, accumulate):
    """dx (N, H, W·C): each element the sum of dout·scale over the windows that hold it, in row-major offset
    order, from +0.0 when `accumulate` (NumPy's zero fill and `view += g`), else its one window's dout·scale
    (NumPy's broadcast). Bit-identical to the NumPy path."""
    n, h, _ = dx.shape
    ho, wo = dout.shape[1], dout.shape[2] // c
    w = dx.shape[2] // c
    start = dx.dtype.type(0.0) if accumulate else -dx.dtype.type(0.0)
    for b in range(n):
        for r in range(h):
            for s in range(w):
                e0 = s * c
                for ch in range(c):
                    dx[b, r, e0 + ch] = start
                for u in range(kh):
                    i, row_ok = _window_of(r, u, sh, ho)
                    for v in range(kw):
                        j, col_ok = _window_of(s, v, sw, wo)
                        if row_ok and col_ok:
                            o0 = j * c
                            for ch in range(c):
                                dx[b, r, e0 + ch] += dout[b, i, o0 + ch] * scale


def warm():
    """Compile the max-pooling kernels for float32 and uint8 switches now rather than at first use."""
    x = np.zeros((1, 2, 2), np.float32)
    out, sw = np.zeros((1, 1, 1), np.float32), np.zeros((1, 1, 1), np.uint8)
    max_forward_2x2(x, 2, 2, 1, out, sw)
    max_backward(out, sw, 2, 2, 2, 2, 1, x, False)
