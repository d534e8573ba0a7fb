"""2-D convolution (cross-correlation, as in the notes and PyTorch) on NHWC arrays by im2col + GEMM.

x: (N, H, W, C), w: (KH, KW, C, F), b: (F,) → out: (N, Ho, Wo, F),
Ho = (H + 2·pad − KH) / stride + 1 (must divide exactly).

Patches are read through a strided view and copied once into the column matrix
(N·Ho·Wo, KH·KW·C), whose row order matches `w.reshape(KH·KW·C, F)`. The batch is processed in
chunks so the column matrix never exceeds `COLUMN_BYTES`; backward recomputes each chunk's columns
from the cached padded input rather than keeping all of them. col2im loops over the KH×KW kernel
offsets, never over pixels or samples; with numba (`jit.compiled("conv")`) and up to 64 channels it runs as
one compiled loop making the same additions in the same order (bit-identical), 5–10× faster at 1–8 channels,
where NumPy's strided adds move runs of 1–8 floats. The im2col copy and the GEMMs stay NumPy/BLAS (a compiled
copy was measured slower), except the forward of a stride-1 convolution with few input channels, which runs as a
compiled direct convolution where it was measured faster (`_direct_kernel`, `numba_conv.py`).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .epilogue import bias_activation, bias_activation_rows
from .gemm import matmul, matmul_tn
from .jit import compiled
from .parallel import for_parts
from .window import output_size

# bound on one chunk's column matrix: chunks beat one big matrix, and 4 MiB chunks beat 16 MiB ones where the
# product is large (forward, batch 128, 2 threads, time 4 MiB / 16 MiB, two runs: 8→24 5×5 @ 32×32 0.74, 0.78;
# 64→64 3×3 0.88, 0.88; 4→8 5×5 0.88, 0.95; 1→6, 3→32 5×5, 3→64 3×3, 6→16 0.91–1.09, noise on a shared machine)
COLUMN_BYTES = 4 * 2**20

# col2im runs compiled (numba_conv.col2im, bit-identical) up to this many channels; above, NumPy's strided
# adds move runs long enough to keep up (numba_conv.py's docstring: equal at 128 channels)
COMPILED_COL2IM_MAX_C = 64

_workspace = threading.local()  # one set of scratch buffers per thread: two models may run in two threads


def workspace(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable scratch array of `shape` (contents undefined). Reuse avoids the page faults of a fresh
    multi-megabyte allocation on every chunk, which cost more than the copy itself."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    key = (name, dtype.str)
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=dtype)
        buffers[key] = buf
    return buf[:size].reshape(shape)


def pad_nhwc(x: np.ndarray, pad: int, pad_w: int | None = None) -> np.ndarray:
    """Zero-pad H by `pad` and W by `pad_w` (default `pad`) on both sides; each border written once."""
    ph, pw = pad, pad if pad_w is None else pad_w
    if ph == pw == 0:
        return x
    n, h, w, c = x.shape
    xp = np.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)

    def part(s):
        p = xp[s]
        p[:, :ph] = 0
        p[:, ph + h:] = 0
        p[:, ph:ph + h, :pw] = 0
        p[:, ph:ph + h, pw + w:] = 0
        p[:, ph:ph + h, pw:pw + w] = x[s]

    for_parts(part, n, xp.nbytes)
    return xp


def patches(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """Strided view (N, Ho, Wo, KH, KW, C) of a padded input; no copy."""
    n, _, _, c = xp.shape
    sn, sh, sw, sc = xp.strides
    return as_strided(xp, (n, ho, wo, kh, kw, c), (sn, sh * stride, sw * stride, sh, sw, sc), writeable=False)


def im2col(xp: np.ndarray, kh: int, kw: int, stride: int, ho: int, wo: int, out: np.ndarray | None = None):
    """Column matrix (N·Ho·Wo, KH·KW·C) of a padded input, written into `out` when given."""
    n, c = xp.shape[0], xp.shape[3]
    if out is None:
        return patches(xp, kh, kw, stride, ho, wo).reshape(n * ho * wo, kh * kw * c)
    cols = out.reshape(n, ho, wo, kh, kw, c)
    view = patches(xp, kh, kw, stride, ho, wo)
    for_parts(lambda s: np.copyto(cols[s], view[s]), n, out.nbytes)
    return out.reshape(n * ho * wo, kh * kw * c)


def col2im(dcols: np.ndarray, padded_shape, kh: int, kw: int, stride: int, ho: int, wo: int,
           out: np.ndarray | None = None) -> np.ndarray:
    """Scatter-add column gradients (N·Ho·Wo, KH·KW·C) back to a padded input gradient (into `out`)."""
    n, hp, wp, c = padded_shape
    dxp = np.empty(padded_shape, dtype=dcols.dtype) if out is None else out
    d6 = dcols.reshape(n, ho, wo, kh, kw, c)
    h_end, w_end = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    fast = compiled("conv") if c <= COMPILED_COL2IM_MAX_C else None

    def part(s):
        if fast is not None:  # the same additions in the same order, without NumPy's per-run overhead
            rows = dcols.reshape(n * ho * wo, kh * kw * c)[s.start * ho * wo:s.stop * ho * wo]
            return fast.col2im(rows, kh, kw, stride, ho, wo, dxp[s])
        d = dxp[s]
        d.fill(0)
        for i in range(kh):
            for j in range(kw):
                d[:, i:i + h_end:stride, j:j + w_end:stride, :] += d6[s, :, :, i, j, :]

    for_parts(part, n, dcols.nbytes)
    return dxp


def column_sums(a: np.ndarray) -> np.ndarray:
    """Σ over rows of a 2-D array as a BLAS matrix-vector product (several times faster than a.sum(0))."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def _chunk(per_sample_bytes: int, n: int) -> int:
    return max(1, min(n, COLUMN_BYTES // max(per_sample_bytes, 1)))


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, pad: int = 0, act=None):
    """Returns (out (N, Ho, Wo, F), cache). `act`: an activation applied with the bias in the output pass
    (`kernels.epilogue`; inference only, backward knows nothing of it)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    ho, wo = output_size(h, kh, stride, pad), output_size(wd, kw, stride, pad)
    w2 = w.reshape(kh * kw * c, f)
    xp = pad_nhwc(x, pad)
    if kh == kw == 1 and stride == 1:  # 1×1: the input already is the column matrix
        out = matmul(xp.reshape(-1, c), w2).reshape(n, ho, wo, f)
        bias_activation_rows(out, b, act)
    elif (direct := _direct_kernel(x, w, stride)) is not None:  # few channels: no im2col (numba_conv.py)
        out = np.empty((n, ho, wo, f), dtype=x.dtype)
        for_parts(lambda s: (direct(xp[s], out[s]), bias_activation(out[s], b, act)), n, out.nbytes)
    else:
        out = np.empty((n, ho, wo, f), dtype=x.dtype)
        step = _chunk(ho * wo * kh * kw * c * x.itemsize, n)

        def samples(part: slice):  # each thread its own workspace (thread-local)
            buf = workspace("cols", (step * ho * wo, kh * kw * c), x.dtype)
            for s in range(part.start, part.stop, step):
                chunk_x = xp[s:min(s + step, part.stop)]
                cols = im2col(chunk_x, kh, kw, stride, ho, wo, out=buf[:chunk_x.shape[0] * ho * wo])
                chunk = out[s:s + chunk_x.shape[0]].reshape(-1, f)
                np.matmul(cols, w2, out=chunk)
                bias_activation(chunk, b, act)  # while the chunk is still in cache

        for_parts(samples, n, out.nbytes + n * ho * wo * kh * kw * c * x.itemsize)
    return out, (xp, w, b is not None, stride, pad, x.shape)


def _direct_kernel(x: np.ndarray, w: np.ndarray, stride: int):
    """fn(xp part, out part) computing the forward without im2col, or None where im2col + GEMM is as fast:
    `numba_conv.direct` for KW·C ≤ 12 and F ≥ 16 a multiple of 8. Batch 128, 2 threads, forward ms, compiled vs
    im2col + GEMM, alternated: 3→64 3×3 pad 1 15–20 vs 18–23, 3→32 3×3 pad 1 8.3–11.3 vs 10.1–14.6 (shared
    machine)."""
    kh, kw, c, f = w.shape
    fast = compiled("conv") if stride == 1 and x.dtype == w.dtype == np.float32 else None
    if fast is None or kh * kw == 1:
        return None
    if kw * c > 12 or f < 16 or f % 8:
        return None
    kernel, wc = fast.direct(kh, kw, c, f), np.ascontiguousarray(w)
    return lambda xp, out: kernel(xp, wc, out)


def conv2d_backward(dout: np.ndarray, cache, need_dx: bool = True):
    """Returns (dx (N, H, W, C) or None when not `need_dx`, dw (KH, KW, C, F), db (F,) or None)."""
    xp, w, has_bias, stride, pad, x_shape = cache
    n, h, wd, c = x_shape
    kh, kw, _, f = w.shape
    _, ho, wo, _ = dout.shape
    d2 = dout.reshape(-1, f)
    db = column_sums(d2) if has_bias else None
    if kh == kw == 1 and stride == 1 or stride == 1 and pad <= min(kh, kw) - 1 or not need_dx:
        dw = conv2d_weight_grad(xp, dout, kh, kw, stride)
        return (conv2d_input_grad(dout, w, stride, pad, x_shape) if need_dx else None), dw, db
    step = _chunk(ho * wo * kh * kw * c * xp.itemsize, n)
    w2t = np.ascontiguousarray(w.reshape(kh * kw * c, f).T)
    dxp = np.empty(xp.shape, dtype=dout.dtype)

    def samples(part: slice):
        buf = workspace("cols", (step * ho * wo, kh * kw * c), xp.dtype)
        dbuf = workspace("dcols", (step * ho * wo, kh * kw * c), xp.dtype)
        dw2t = np.zeros((f, kh * kw * c), dtype=dout.dtype)
        for s in range(part.start, part.stop, step):
            chunk_x = xp[s:min(s + step, part.stop)]
            rows = chunk_x.shape[0] * ho * wo
            cols = im2col(chunk_x, kh, kw, stride, ho, wo, out=buf[:rows])
            dchunk = dout[s:s + chunk_x.shape[0]].reshape(-1, f)
            dw2t += dchunk.T @ cols
            dcols = np.matmul(dchunk, w2t, out=dbuf[:rows])
            col2im(dcols, chunk_x.shape, kh, kw, stride, ho, wo, out=dxp[s:s + chunk_x.shape[0]])
        return dw2t

    dw2t = sum(for_parts(samples, n, dxp.nbytes + n * ho * wo * kh * kw * c * xp.itemsize))
    dw = np.ascontiguousarray(dw2t.T).reshape(w.shape)
    dx = dxp[:, pad:pad + h, pad:pad + wd, :] if pad else dxp
    return dx, dw, db


def conv2d_input_grad(dout: np.ndarray, w: np.ndarray, stride: int, pad: int, x_shape) -> np.ndarray:
    """dx (N, H, W, C) from dout (N, Ho, Wo, F), for stride 1 with pad ≤ K − 1 or for a 1×1 stride-1 kernel
    (other shapes: `conv2d_backward`, which shares the column matrices between dx and dw)."""
    kh, kw, c, f = w.shape
    if kh == kw == 1 and stride == 1:
        dxp = matmul(dout.reshape(-1, f), w.reshape(c, f).T).reshape(x_shape[0], *dout.shape[1:3], c)
        return dxp[:, pad:dxp.shape[1] - pad, pad:dxp.shape[2] - pad, :] if pad else dxp
    if stride != 1 or pad > min(kh, kw) - 1:
        raise ValueError(f"conv2d_input_grad: stride {stride}, pad {pad} with a {kh}×{kw} kernel: use conv2d_backward")
    if (COMPILED_COL2IM_BELOW if c <= FEW_CHANNELS and compiled("conv") else COL2IM_BELOW) * c < f:
        return _input_grad_col2im(dout, w, pad, x_shape)
    # dx is the "full" correlation of dout with the flipped, transposed kernel: one more forward
    # convolution, measured ~1.5× faster than GEMM + col2im (whose strided scatter-adds dominate)
    w_flip = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    return conv2d_forward(pad_nhwc(dout, kh - 1 - pad, kw - 1 - pad), w_flip, None, 1, 0)[0]


# dx by GEMM + col2im when F > COL2IM_BELOW·C, else by the full correlation (2 threads, batch 128, ms, col2im vs
# full correlation): 3→64 @ 32×32 3×3 38 vs 106, 1→6 @ 32×32 5×5 6.5 vs 17, 6→16 @ 14×14 5×5 11.9 vs 11.3,
# 32→64 @ 32×32 160 vs 150, 64→64 @ 32×32 268 vs 208
COL2IM_BELOW = 4
# with the compiled col2im and at most FEW_CHANNELS input channels, from F > 2·C (same, numba on): 6→16 @ 14×14 5×5
# 4–6 vs 18–23, 1→6 7–12 vs 17, 3→32 @ 32×32 5×5 58–73 vs 190–240, 8→24 5×5 124–159 vs 133–157, 4→8 83–86 vs 65–69.
# So for 2·C < F ≤ 4·C numba on and off take different routes to dx, equal within float32 rounding.
COMPILED_COL2IM_BELOW, FEW_CHANNELS = 2, 16


def _input_grad_col2im(dout, w, pad, x_shape):
    """dx of a stride-1 convolution as dcols = dout·Wᵀ, (N·Ho·Wo, KH·KW·C), scattered back by col2im, chunk by
    chunk: its column matrix has C channels per offset where the full correlation's has F."""
    n, h, wd, c = x_shape
    kh, kw, _, f = w.shape
    _, ho, wo, _ = dout.shape
    w2t = np.ascontiguousarray(w.reshape(kh * kw * c, f).T)
    dxp = np.empty((n, h + 2 * pad, wd + 2 * pad, c), dtype=dout.dtype)
    step = _chunk(ho * wo * kh * kw * c * dout.itemsize, n)

    def samples(part: slice):
        dbuf = workspace("dcols", (step * ho * wo, kh * kw * c), dout.dtype)
        for s in range(part.start, part.stop, step):
            e = min(s + step, part.stop)
            dcols = np.matmul(dout[s:e].reshape(-1, f), w2t, out=dbuf[:(e - s) * ho * wo])
            col2im(dcols, dxp[s:e].shape, kh, kw, 1, ho, wo, out=dxp[s:e])

    for_parts(samples, n, dxp.nbytes + n * ho * wo * kh * kw * c * dout.itemsize)
    return dxp[:, pad:pad + h, pad:pad + wd, :] if pad else dxp


def conv2d_weight_grad(xp: np.ndarray, dout: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """dw (KH, KW, C, F) from the padded input xp (N, Hp, Wp, C) and dout (N, Ho, Wo, F): Σ_chunks cols.T @ dout,
    recomputing each chunk's columns (a plain GEMM for 1×1 stride 1)."""
    n, c, f = xp.shape[0], xp.shape[3], dout.shape[3]
    _, ho, wo, _ = dout.shape
    if kh == kw == 1 and stride == 1:
        return matmul_tn(xp.reshape(-1, c), dout.reshape(-1, f)).reshape(1, 1, c, f)
    step = _chunk(ho * wo * kh * kw * c * xp.itemsize, n)

    def samples(part: slice):
        buf = workspace("cols", (step * ho * wo, kh * kw * c), xp.dtype)
        dw2t = np.zeros((f, kh * kw * c), dtype=dout.dtype)
        for s in range(part.start, part.stop, step):
            chunk_x = xp[s:min(s + step, part.stop)]
            cols = im2col(chunk_x, kh, kw, stride, ho, wo, out=buf[:chunk_x.shape[0] * ho * wo])
            # (F, K) order: measured 2× faster than cols.T @ d
            dw2t += dout[s:s + chunk_x.shape[0]].reshape(-1, f).T @ cols
        return dw2t

    dw2t = sum(for_parts(samples, n, n * ho * wo * kh * kw * c * xp.itemsize))
    return np.ascontiguousarray(dw2t.T).reshape(kh, kw, c, f)
