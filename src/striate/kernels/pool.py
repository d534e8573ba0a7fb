"""Pooling on NHWC arrays: max (with argmax switches), average, global average, fractional max.

x: (N, H, W, C) → out: (N, Ho, Wo, C), Ho = (H − KH) / SH + 1 (must divide exactly; no padding).

Every kernel loops over the KH×KW kernel offsets, each a strided view (N, Ho, Wo, C) of the input,
never over pixels or samples. When kernel == stride the windows tile the input, so the views come
from one reshape to (N, Ho, KH, Wo, KW, C) and backward writes each input element exactly once
(no zero fill, no accumulation).

With numba (`jit.py`, `numba_pool.py`; the `train` extra installs it) max and average pooling run as one compiled
pass each way, for any window and stride, on float inputs (a strided one copied first). Max pooling then keeps the
single offsets form of the switches, and its backward sums each element's terms in the offsets path's order: the
outputs and switches equal the NumPy path's bit for bit, and so do the (finite) gradients except after the
separable stages below (3×3 stride 1), whose sums of three or more window gradients on one element are ordered
differently (equal within float32 rounding).
Average pooling is bit-identical both ways.

Max pooling records its "switches": the kernel offset (row-major, 0 … KH·KW−1) of the first maximum
of each window, in the smallest unsigned integer type that holds it. Backward routes each output
gradient only to that element; on ties the first maximum wins, as in PyTorch's CPU kernel. With
NaN inputs the output is NaN but the gradient's route is unspecified.
"""

from __future__ import annotations

import numpy as np

from .jit import compiled
from .parallel import for_parts
from .window import output_size

BLOCK_BYTES = 1 << 20  # each thread's part is walked in blocks of images about this large (in cache)


def _in_blocks(fn, s: slice, per_image_bytes: int):
    """fn(block) for consecutive blocks of the images in `s`, each about BLOCK_BYTES."""
    step = max(1, BLOCK_BYTES // max(per_image_bytes, 1))
    for a in range(s.start, s.stop, step):
        fn(slice(a, min(a + step, s.stop)))


def _geometry(shape, kernel, stride, rounding: str = "strict"):
    n, h, w, c = shape
    (kh, kw), (sh, sw) = kernel, stride
    return n, output_size(h, kh, sh, 0, rounding), output_size(w, kw, sw, 0, rounding), c


def _offset_views(x: np.ndarray, kernel, stride, ho: int, wo: int) -> list[np.ndarray]:
    """The KH·KW views (N, Ho, Wo, C) of `x`, one per kernel offset, row-major. Writable if `x` is."""
    (kh, kw), (sh, sw) = kernel, stride
    if (kh, kw) == (sh, sw):  # tiling windows: one reshape, no gaps, no overlap
        n, _, _, c = x.shape
        x6 = x.reshape(n, ho, kh, wo, kw, c)
        return [x6[:, :, i, :, j, :] for i in range(kh) for j in range(kw)]
    h_end, w_end = sh * (ho - 1) + 1, sw * (wo - 1) + 1
    return [x[:, i:i + h_end:sh, j:j + w_end:sw, :] for i in range(kh) for j in range(kw)]


def max_over(views, switches: bool = True):
    """Elementwise max of equally shaped arrays and, if `switches`, the index of the first maximum."""
    if len(views) == 1:
        out = views[0].copy()
        return out, (np.zeros(out.shape, dtype=np.uint8) if switches else None)
    out = np.maximum(views[0], views[1])
    if not switches:
        for v in views[2:]:
            np.maximum(out, v, out=out)
        return out, None
    idx = np.greater(views[1], views[0]).view(np.uint8).astype(np.min_scalar_type(len(views) - 1), copy=False)
    greater = np.empty(out.shape, dtype=bool)
    stamp = np.empty_like(idx)
    for o, v in enumerate(views[2:], start=2):
        np.greater(v, out, out=greater)  # strict: a tie keeps the earlier offset
        np.maximum(out, v, out=out)
        # o exceeds every index recorded so far, so max(idx, o·greater) sets idx = o exactly where
        # greater; a masked copy (np.copyto where=) is ~10× slower on a random mask
        np.multiply(greater.view(np.uint8), idx.dtype.type(o), out=stamp)
        np.maximum(idx, stamp, out=idx)
    return out, idx


def _separable_wins(x_shape, kernel, stride, ho: int) -> bool:
    """Whether the two-stage max touches fewer elements than the KH·KW offset views: true for 3×3
    stride 1 (6 vs 9 per output), false for 3×3 stride 2 (measured slower there) and for tiling."""
    (kh, kw), (sh, sw) = kernel, stride
    if (kh, kw) == (sh, sw):
        return False
    return kw * x_shape[1] + kh * ho < kh * kw * ho


def max_pool2d_forward(x: np.ndarray, kernel=(2, 2), stride=(2, 2), switches: bool = True, floor: bool = False):
    """Returns (out (N, Ho, Wo, C), cache); the cache is None when `switches` is False (inference).
    The batch is split over the cores. With `floor` the windows need not tile x: the last rows and columns
    no window reaches are left out (Ho = ⌊(H − KH)/SH⌋ + 1), read in place by the compiled kernels, whose
    backward returns dx of x's shape (zeros there); the NumPy path pools a cut copy (dx of the cut's shape).

    By default the output is the max over the KH·KW offset views, with one switch per output (the
    row-major offset of the first maximum). Windows that overlap densely (3×3 stride 1, as in
    GoogLeNet's pool projections) are max-pooled in two separable stages instead: a max over the KW
    column offsets gives row maxima (N, H, Wo, C), a max over the KH row offsets of those gives the
    output, and the cache keeps both stages' switches — KH + KW offset passes instead of KH·KW, each
    way. The first maximum of a row, then the first row holding the window's maximum, is the row-major
    first maximum, so both forms route gradients to the same element (`max_pool2d_switches`)."""
    n, ho, wo, c = _geometry(x.shape, kernel, stride, "floor" if floor else "strict")
    (kh, kw), (sh, sw) = kernel, stride
    out = np.empty((n, ho, wo, c), dtype=x.dtype)
    if _compiled_for(x, kernel) is not None:  # numba: one pass, the same maxima and switches
        idx = _compiled_max_forward(x, kernel, stride, out, switches)
        return out, (("offsets", (idx,), x.shape, tuple(kernel), tuple(stride)) if switches else None)
    if floor:
        return max_pool2d_forward(np.ascontiguousarray(x[:, :sh * (ho - 1) + kh, :sw * (wo - 1) + kw]), kernel,
                                  stride, switches)
    separable = _separable_wins(x.shape, kernel, stride, ho)
    if not switches:
        stages = []
    elif separable:
        stages = [np.empty((n, x.shape[1], wo, c), dtype=np.min_scalar_type(kw - 1)),
                  np.empty((n, ho, wo, c), dtype=np.min_scalar_type(kh - 1))]
    else:
        stages = [np.empty((n, ho, wo, c), dtype=np.min_scalar_type(kh * kw - 1))]

    def part(s):
        if separable:
            w_end, h_end = sw * (wo - 1) + 1, sh * (ho - 1) + 1
            rows, col_idx = max_over([x[s, :, j:j + w_end:sw] for j in range(kw)], switches)
            o, row_idx = max_over([rows[:, i:i + h_end:sh] for i in range(kh)], switches)
            found = [col_idx, row_idx]
        else:
            o, idx = max_over(_offset_views(x[s], kernel, stride, ho, wo), switches)
            found = [idx]
        out[s] = o
        for dst, src in zip(stages, found, strict=False):
            dst[s] = src

    for_parts(lambda s: _in_blocks(part, s, x.nbytes // max(n, 1)), n, x.nbytes)
    if not switches:
        return out, None
    return out, ("separable" if separable else "offsets", tuple(stages), x.shape, tuple(kernel), tuple(stride))


def _compiled_for(x, kernel):
    """The compiled kernels (`numba_pool`) where they apply: a float input and at most 256 offsets per window
    (uint8 switches); any stride, overlapping or not. (`_rows` copies a strided input first.)"""
    (kh, kw) = kernel
    if kh * kw > 256 or x.dtype not in (np.float32, np.float64):
        return None
    return compiled("pool")


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, H, W, C) seen as (N, H, W·C), the compiled kernels' layout: a view, or a C-contiguous copy of a strided
    array (one copy costs less than the NumPy path's passes)."""
    n, h, w, c = a.shape
    return np.ascontiguousarray(a).reshape(n, h, w * c)


def _compiled_max_forward(x, kernel, stride, out, switches: bool) -> np.ndarray | None:
    """Fills `out` with the compiled kernel; returns the switches (uint8, out's shape), None without `switches`."""
    jit, (kh, kw), (sh, sw), c = compiled("pool"), kernel, stride, x.shape[3]
    idx = np.empty(out.shape if switches else (out.shape[0], 0, 0, 0), dtype=np.uint8)  # unused without switches
    x3, out3, idx3 = _rows(x), _rows(out), _rows(idx)
    kernel_fn = jit.max_forward(kh, kw, switches)  # built for this window: its loops unroll, the channels vectorize
    for_parts(lambda s: kernel_fn(x3[s], sh, sw, c, out3[s], idx3[s]), x.shape[0], x.nbytes)
    return idx if switches else None


def max_pool2d_switches(cache) -> np.ndarray:
    """The row-major kernel offset (0 … KH·KW − 1) of each output's first maximum, (N, Ho, Wo, C)."""
    kind, stages, _, (kh, kw), (sh, _) = cache
    if kind == "offsets":
        return stages[0]
    col_idx, row_idx = stages
    h_end = sh * (row_idx.shape[1] - 1) + 1
    chosen_col = np.zeros(row_idx.shape, dtype=np.int64)
    for i in range(kh):
        chosen_col += (row_idx == i) * col_idx[:, i:i + h_end:sh].astype(np.int64)
    return (row_idx.astype(np.int64) * kw + chosen_col).astype(np.min_scalar_type(kh * kw - 1))


def max_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx (N, H, W, C): each output gradient goes to its window's recorded argmax."""
    kind, stages, x_shape, kernel, stride = cache
    (kh, kw), (sh, sw) = kernel, stride
    _, ho, wo, _ = dout.shape
    if kind == "offsets" and stages[0].dtype == np.uint8 and _compiled_for(dout, kernel) is not None:
        dx = np.empty(x_shape, dtype=dout.dtype)
        jit, c, d3, idx3, dx3 = compiled("pool"), x_shape[3], _rows(dout), _rows(stages[0]), _rows(dx)
        fn = jit.max_backward_overlapping if sh < kh or sw < kw else jit.max_backward_tiles
        for_parts(lambda s: fn(d3[s], idx3[s], kh, kw, sh, sw, c, dx3[s]), x_shape[0], dx.nbytes)
        h_end, w_end = sh * (ho - 1) + kh, sw * (wo - 1) + kw  # floor rounding: what no window reaches
        dx[:, h_end:] = 0
        dx[:, :h_end, w_end:] = 0
        return dx
    tiling = (kh, kw) == (sh, sw)
    dx = np.empty(x_shape, dtype=dout.dtype) if tiling else np.zeros(x_shape, dtype=dout.dtype)

    def offsets(s):
        idx = stages[0][s]
        mask = np.empty(idx.shape, dtype=bool)
        for o, view in enumerate(_offset_views(dx[s], kernel, stride, ho, wo)):
            np.equal(idx, o, out=mask)
            if tiling:  # every input element is written exactly once
                np.multiply(dout[s], mask, out=view)
            else:
                view += dout[s] * mask

    def separable(s):
        col_idx, row_idx = stages[0][s], stages[1][s]
        w_end, h_end = sw * (wo - 1) + 1, sh * (ho - 1) + 1
        d_rows = np.zeros(col_idx.shape, dtype=dout.dtype)  # gradient of the row maxima
        for i in range(kh):
            d_rows[:, i:i + h_end:sh] += dout[s] * (row_idx == i)
        d = dx[s]
        for j in range(kw):
            d[:, :, j:j + w_end:sw] += d_rows * (col_idx == j)

    fn = separable if kind == "separable" else offsets
    for_parts(lambda s: _in_blocks(fn, s, dx.nbytes // max(x_shape[0], 1)), x_shape[0], dx.nbytes)
    return dx


def avg_pool2d_forward(x: np.ndarray, kernel=(2, 2), stride=(2, 2)):
    """Returns (out (N, Ho, Wo, C), cache): the mean of each KH×KW window."""
    n, ho, wo, c = _geometry(x.shape, kernel, stride)
    (kh, kw), (sh, sw) = kernel, stride
    scale = x.dtype.type(1.0 / (kh * kw))
    if _compiled_for(x, kernel) is not None:  # numba: one pass, the same sums in the same order
        out = np.empty((n, ho, wo, c), dtype=x.dtype)
        fn, x3, out3 = compiled("pool").avg_forward(kh, kw), _rows(x), _rows(out)
        for_parts(lambda s: fn(x3[s], sh, sw, c, scale, out3[s]), n, x.nbytes)
        return out, (x.shape, tuple(kernel), tuple(stride))
    # summing the offset views beats x6.mean(axis=(2, 4)), whose reduction runs over strided axes
    views = _offset_views(x, kernel, stride, ho, wo)
    out = views[0] + views[1] if len(views) > 1 else views[0].copy()
    for v in views[2:]:
        out += v
    out *= scale
    return out, (x.shape, tuple(kernel), tuple(stride))


def avg_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx (N, H, W, C): each output gradient spread evenly over its window."""
    x_shape, (kh, kw), (sh, sw) = cache
    n, ho, wo, c = dout.shape
    scale = dout.dtype.type(1.0 / (kh * kw))
    if _compiled_for(dout, (kh, kw)) is not None:
        dx = np.empty(x_shape, dtype=dout.dtype)
        jit, d3, dx3 = compiled("pool"), _rows(dout), _rows(dx)
        fn = jit.avg_backward_overlapping if sh < kh or sw < kw else jit.avg_backward_tiles
        for_parts(lambda s: fn(d3[s], kh, kw, sh, sw, c, scale, dx3[s]), n, dx.nbytes)
        return dx
    g = dout * scale
    if (kh, kw) == (sh, sw):
        return np.broadcast_to(g[:, :, None, :, None, :], (n, ho, kh, wo, kw, c)).reshape(x_shape)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for view in _offset_views(dx, (kh, kw), (sh, sw), ho, wo):
        view += g
    return dx


def global_avg_pool2d_forward(x: np.ndarray):
    """(N, H, W, C) → (N, C), the mean over all positions."""
    return x.mean(axis=(1, 2)), x.shape


def global_avg_pool2d_backward(dout: np.ndarray, x_shape) -> np.ndarray:
    n, h, w, c = x_shape
    g = dout * dout.dtype.type(1.0 / (h * w))
    return np.broadcast_to(g[:, None, None, :], x_shape).copy()


# ----- fractional max pooling (Graham 2014) ----------------------------------------------------
def fractional_output_size(size: int, ratio: float) -> int:
    """⌊size · ratio⌋ (as PyTorch), or ValueError when that would need regions wider than 2."""
    n_out = int(size * ratio)
    if n_out < 1 or 2 * n_out < size:
        raise ValueError(
            f"output size ⌊{size} · {ratio:g}⌋ = {n_out} is below half the input {size}: "
            "disjoint regions of 1 or 2 cannot cover it"
        )
    return n_out


def fractional_boundaries(n_in: int, n_out: int, shift: int) -> np.ndarray:
    """Region boundaries a_0 = 0 < a_1 < … < a_{n_out} = n_in with increments 1 or 2.

    Graham's pseudorandom sequence a_i = ⌈α(i + u)⌉ − ⌈αu⌉, α = n_in / n_out, written in exact
    integer arithmetic as a_i = ⌊(n_in·i + s) / n_out⌋ − ⌊s / n_out⌋ with s = ⌊n_in·u⌋ ∈ [0, n_in)
    (⌊(A + v)/B⌋ = ⌊(A + ⌊v⌋)/B⌋ for integers A, B), so rounding can never produce a step of 0 or 3.
    Region i covers rows a_i … a_{i+1} − 1.
    """
    i = np.arange(n_out + 1, dtype=np.int64)
    return (n_in * i + shift) // n_out - shift // n_out


def _region_ends(bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index of each region (equal where the region has width 1)."""
    return bounds[:-1], bounds[1:] - 1


def fractional_max_pool2d_forward(x: np.ndarray, row_bounds: np.ndarray, col_bounds: np.ndarray,
                                  switches: bool = True):
    """x (N, H, W, C) → (N, len(row_bounds) − 1, len(col_bounds) − 1, C), max over disjoint regions.

    Each region is 1 or 2 wide on each axis, so it is read as a 2×2 window whose second row/column
    repeats the first where the width is 1; the strict comparison in `max_over` never picks the
    repeat, so switches always name a real element.
    """
    rows, cols = _region_ends(row_bounds), _region_ends(col_bounds)
    views = [x[:, r][:, :, c] for r in rows for c in cols]
    out, idx = max_over(views, switches)
    return out, (None if idx is None else (idx, x.shape, rows, cols))


def fractional_max_pool2d_backward(dout: np.ndarray, cache) -> np.ndarray:
    idx, x_shape, rows, cols = cache
    dx = np.zeros(x_shape, dtype=dout.dtype)
    mask = np.empty(idx.shape, dtype=bool)
    o = 0
    for r in rows:
        for c in cols:
            # within one offset the (row, col) pairs are distinct (regions are disjoint), so += is safe
            np.equal(idx, o, out=mask)
            dx[:, r[:, None], c[None, :]] += dout * mask
            o += 1
    return dx
