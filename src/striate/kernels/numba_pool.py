"""The pooling numba kernels behind `jit.py` (imported only when the extra is enabled): max pooling (forward with
its switches, backward) and average pooling, any window, stride and image shape. Each runs on one part of the
batch per call, without the GIL, so striate's own threads split the work as they do for the NumPy kernels.

Written for LLVM's vectorizer: arrays are seen as (N, H, W·C) rows, the innermost loop runs along a row over
channels, and its body is straight-line code with selects. Two things decide whether that loop vectorizes:
- the window must be a compile-time constant (LLVM then unrolls it inside the channel loop): with a runtime
  KH×KW the loop stayed scalar, 8–40× slower. So `max_forward(kh, kw)` / `avg_forward(kh, kw)` build one
  kernel per window, a closure over the constants (numba's disk cache keys closures by their values);
- the row index must be unsigned (`np.uintp`): a signed one gets numba's negative-index wraparound, a
  select per element that turns the row's consecutive loads into gathers (3.4× slower at 3×3 stride 1).
With stride 1 along the width an output row's windows read one contiguous run of the input row, so the
inner loop covers Wo·C elements, not C: it vectorizes even for a few channels (GoogLeNet's 3×3 pools).

(The first version of this module had neither, and stored the output and switch once per offset: its 2×2
max-pooling forward was 11–16× slower than now, 0.13× PyTorch's speed.)

Backward reproduces the NumPy path's sums term for term: windows that tile the input store each element's
one term, window by window, with no zero fill (`_tiles`); overlapping max-pooling windows add each output
gradient at its switch (`_max_overlapping`); overlapping average-pooling windows fill one input row at a
time, offset by offset (`_avg_overlapping`).
Tried and not kept: the im2col copy (NumPy's strided copy moves whole channel runs with memcpy; the
compiled loop was 1.7–6× slower at 1–64 channels); `numba.literally` for the window (its dispatch costs
milliseconds per call); global average pooling (NumPy's mean is one pass already: no faster compiled).
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}
_built: dict = {}  # (kind, kh, kw[, record]) → its compiled kernel


@numba.njit(**_opts)
def _runs(wo, c, sw):
    """(windows per row step, elements per run): with stride 1 a row of Wo windows is one run of Wo·C."""
    return (1, wo * c) if sw == 1 else (wo, c)


@numba.njit(**_opts)
def _max_forward(x, kh, kw, sh, sw, c, out, switches, record):
    """out (N, Ho, Wo·C) = max of each window at (i·sh, j·sw) of x (N, H, W·C), switches = row-major offset of
    its first maximum: the strict-greater scan of NumPy's `max_over` (a tie keeps the earlier offset), NaN
    propagating to the output as through np.maximum. Bit-identical to the NumPy path. Without `record`
    (inference) the switches are not stored: `switches` may be any uint8 array."""
    n, ho, row = out.shape
    nj, run = _runs(row // c, c, sw)
    for b in range(n):
        for i in range(ho):
            r0 = i * sh
            for j in range(nj):
                base, o0 = j * sw * c, j * run
                for t in range(run):
                    best = x[b, r0, np.uintp(base + t)]
                    arg = np.uint8(0)
                    for u in range(kh):
                        for v in range(kw):
                            if u + v > 0:
                                val = x[b, r0 + u, np.uintp(base + v * c + t)]
                                take = (val > best) | (val != val)
                                arg = np.uint8(u * kw + v) if val > best else arg
                                best = val if take else best
                    out[b, i, np.uintp(o0 + t)] = best
                    if record:
                        switches[b, i, np.uintp(o0 + t)] = arg


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
                    acc = x[b, r0, np.uintp(base + t)]
                    for u in range(kh):
                        for v in range(kw):
                            if u + v > 0:
                                acc += x[b, r0 + u, np.uintp(base + v * c + t)]
                    out[b, i, np.uintp(o0 + t)] = acc * scale


def max_forward(kh: int, kw: int, record: bool = True):
    """The max-pooling forward for a kh×kw window: fn(x, sh, sw, c, out, switches), arrays as `_max_forward`;
    with `record` False it stores no switches."""
    fn = _built.get(("max", kh, kw, record))
    if fn is None:
        @numba.njit(**_opts)
        def fn(x, sh, sw, c, out, switches):
            _max_forward(x, kh, kw, sh, sw, c, out, switches, record)

        _built["max", kh, kw, record] = fn
    return fn


def avg_forward(kh: int, kw: int):
    """The average-pooling forward for a kh×kw window: fn(x, sh, sw, c, scale, out), arrays as `_avg_forward`."""
    fn = _built.get(("avg", kh, kw))
    if fn is None:
        @numba.njit(**_opts)
        def fn(x, sh, sw, c, scale, out):
            _avg_forward(x, kh, kw, sh, sw, c, scale, out)

        _built["avg", kh, kw] = fn
    return fn


@numba.njit(**_opts)
def _tiles(dout, switches, kh, kw, sh, sw, c, dx, gaps, scale):
    """dx (N, H, W·C) for windows that do not overlap, window by window: each element of a window gets dout where
    the switch names it and 0·dout elsewhere (max pooling), or dout·scale when `switches` is None (average).
    Stored as is (a −0.0 product keeps its sign, as NumPy's np.multiply / broadcast do), or with `gaps` (stride
    > kernel) added to zeros, as NumPy's zero fill and `+=` do there."""
    n, ho, row = dout.shape
    wo = row // c
    for b in range(n):
        if gaps:
            dx[b, :, :] = 0
        for i in range(ho):
            for j in range(wo):
                src = j * c
                for u in range(kh):
                    for v in range(kw):
                        k, r, dst = np.uint8(u * kw + v), i * sh + u, (j * sw + v) * c
                        for t in range(c):
                            d = dout[b, i, np.uintp(src + t)]
                            if switches is None:
                                g = d * scale
                            else:
                                g = d if switches[b, i, np.uintp(src + t)] == k else 0 * d
                            if gaps:
                                dx[b, r, np.uintp(dst + t)] += g
                            else:
                                dx[b, r, np.uintp(dst + t)] = g


@numba.njit(**_opts)
def _max_overlapping(dout, switches, kh, kw, sh, sw, c, dx):
    """dx (N, H, W·C) of max pooling with overlapping windows: zeros, then each output gradient added at its
    window's switch, the windows taken in reverse raster order. An element held by several windows so sums
    their terms in row-major offset order (offset u, v of window (i, j) covers row i·sh + u: a later offset is
    an earlier window), NumPy's offsets path term for term — bit-identical for finite gradients. (NumPy also
    adds 0·gradient for the windows that did not choose an element, so there an infinite or NaN gradient
    spreads NaN over its window; here it reaches only its switch, as in PyTorch.) One scalar add per output:
    1.0–1.6× faster than a vectorized gather of each element's windows."""
    n, ho, row = dout.shape
    wo = row // c
    rows, cols = np.empty(kh * kw, np.int64), np.empty(kh * kw, np.int64)
    for k in range(kh * kw):  # offset k → (row, column·C) within its window
        rows[k], cols[k] = k // kw, (k % kw) * c
    for b in range(n):
        dx[b, :, :] = 0
        for i in range(ho - 1, -1, -1):
            for j in range(wo - 1, -1, -1):
                o0, e0 = j * c, j * sw * c
                for ch in range(c):
                    k = switches[b, i, np.uintp(o0 + ch)]
                    dx[b, i * sh + rows[k], np.uintp(e0 + cols[k] + ch)] += dout[b, i, np.uintp(o0 + ch)]


@numba.njit(**_opts)
def _avg_overlapping(dout, kh, kw, sh, sw, c, scale, dx):
    """dx (N, H, W·C) of average pooling with overlapping windows, one input row at a time: zeros, then for each
    offset (u, v) in row-major order the terms dout·scale of the output row whose windows cover this row at u
    — NumPy's zero fill and `view += g` per offset, term for term (with stride 1 along the width a row's
    windows are one run of Wo·C elements)."""
    n, h, _ = dx.shape
    ho, wo = dout.shape[1], dout.shape[2] // c
    nj, run = _runs(wo, c, sw)
    cover = np.full((h, kh), -1, dtype=np.int64)  # cover[r, u]: the output row whose offset u is row r, or −1
    for i in range(ho):
        for u in range(kh):
            cover[i * sh + u, u] = i
    for b in range(n):
        for r in range(h):
            dx[b, r, :] = 0
            for u in range(kh):
                i = cover[r, u]
                for v in range(kw if i >= 0 else 0):
                    for j in range(nj):
                        src, dst = j * run, (j * sw + v) * c
                        for t in range(run):
                            dx[b, r, np.uintp(dst + t)] += dout[b, i, np.uintp(src + t)] * scale


# The entry points: pool.py picks one by whether the windows overlap, so a net compiles only what it runs.
@numba.njit(**_opts)
def max_backward_tiles(dout, switches, kh, kw, sh, sw, c, dx):
    """dx (N, H, W·C) of max pooling from dout and switches (N, Ho, Wo·C), windows that do not overlap."""
    _tiles(dout, switches, kh, kw, sh, sw, c, dx, sh != kh or sw != kw, dout.dtype.type(1))


@numba.njit(**_opts)
def max_backward_overlapping(dout, switches, kh, kw, sh, sw, c, dx):
    """dx (N, H, W·C) of max pooling from dout and switches (N, Ho, Wo·C), windows that overlap."""
    _max_overlapping(dout, switches, kh, kw, sh, sw, c, dx)


@numba.njit(**_opts)
def avg_backward_tiles(dout, kh, kw, sh, sw, c, scale, dx):
    """dx (N, H, W·C) of average pooling from dout (N, Ho, Wo·C), windows that do not overlap."""
    _tiles(dout, None, kh, kw, sh, sw, c, dx, sh != kh or sw != kw, scale)


@numba.njit(**_opts)
def avg_backward_overlapping(dout, kh, kw, sh, sw, c, scale, dx):
    """dx (N, H, W·C) of average pooling from dout (N, Ho, Wo·C), windows that overlap."""
    _avg_overlapping(dout, kh, kw, sh, sw, c, scale, dx)


def warm():
    """Compile the 2×2 max-pooling kernels for float32 and uint8 switches now rather than at first use."""
    x = np.zeros((1, 2, 2), np.float32)
    out, sw = np.zeros((1, 1, 1), np.float32), np.zeros((1, 1, 1), np.uint8)
    max_forward(2, 2)(x, 2, 2, 1, out, sw)
    max_backward_tiles(out, sw, 2, 2, 2, 2, 1, x)
