"""The convolution numba kernels behind `jit.compiled("conv")` (imported only when compiled kernels are on).
Each runs on one part of the batch per call, without the GIL; striate's own threads split the batch.

col2im: NumPy's scatter-add (`conv.col2im`) adds one kernel offset at a time as a strided slice whose
innermost run is C floats: with 1–8 input channels almost all of its time is per-run overhead. The compiled
loop keeps NumPy's order of additions — per sample, zeros, then the KH·KW offsets in row-major order — so
every element receives the same float32 additions in the same order: bit-identical to the NumPy path.
Batch 32, one thread, ms, NumPy → compiled: 1 channel 5×5 @ 32×32 3.8 → 1.5, 3 channels 5×5 (pad 2) 44 → 7.7,
3 channels 3×3 12 → 1.1, 8 channels 5×5 85 → 13, 64 channels 3×3 56 → 21, 128 channels 3×3 19 → 19.

Direct forward convolution (stride 1, a pre-padded input), where im2col's copy moves runs of a few floats:
`direct(kh, kw, c, f)`: each output pixel's F channels are one vectorized loop; per kernel row, its KW·C taps
(compile-time constants, unrolled) broadcast one input value each against a contiguous weight row. Used for KW·C ≤
12 and F ≥ 16 a multiple of 8. Batch 64, one thread, time direct / im2col + GEMM: 3→64 3×3 0.51–0.64, 3→32 3×3
0.38–0.73, 4→32 3×3 0.70, 1→32 3×3 0.29, 1→16 5×5 0.48. Not used where it lost or tied: 3→32 5×5 1.0–1.2, 3→64 5×5
1.1–1.9, 8→64 3×3 1.0–1.4, 16→64 3×3 2.8, 6→16 5×5 1.4, F = 8 3–6 (a loop of 8 stays scalar).
Within float32 rounding of im2col + GEMM (the order of each output's sum differs). Each (KH, KW, C, F)
compiles once (about a second), then loads from numba's disk cache.

Tried and not kept (same shapes): the im2col copy compiled (1–2.5× slower than NumPy's strided copy from 2
channels on, equal at 1); for ONE input channel, a loop vectorized over the output width ((F, Wo) accumulators
per output row; 1→6 5×5 @ 32×32, batch 128: 4–5 ms against im2col + GEMM's 6–8 on one thread, 1.2–2.7× faster
on 2), held back because its rounding change alone moves test_distributed's sync-BN comparison past 1e-4 (that
8×8 one-channel net drifts 1e-3 in one epoch from a one-ulp change in its first convolution's output); the same
loop on a planar copy of a 2+ channel input (1–4× slower); `direct` with all KH·KW·C taps in the vectorized
loop (5×5: too long to unroll, stays scalar, 8–20× slower), with the kernel row's taps split per column
(1.3–1.6× slower), with two pixels per loop (2–8×), with FMA contraction (no gain); a register-tiled kernel of
4 pixels × 8 channels in scalars (3–8× slower: numba leaves LLVM's SLP vectorizer off, NUMBA_SLP_VECTORIZE).
So 1→6, 6→16, 3→32, 4→8 and 8→24 5×5 (lenet5, three_layer, GoogLeNet) stay im2col + GEMM.
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}
_built: dict = {}  # (kh, kw, c, f) → its direct convolution


@numba.njit(**_opts)
def col2im(dcols, kh, kw, stride, ho, wo, dxp):
    """dxp (n, Hp, Wp, C) = Σ over offsets (u, v), row-major, of dcols (n·Ho·Wo, KH·KW·C)'s column block
    (u, v) at rows u + stride·i, columns v + stride·j; zeros where no window reaches."""
    n, hp, wp, c = dxp.shape
    for b in range(n):
        for y in range(hp):
            for x in range(wp):
                for ch in range(c):
                    dxp[b, y, x, ch] = 0
        for u in range(kh):
            for v in range(kw):
                k = (u * kw + v) * c
                for i in range(ho):
                    r = (b * ho + i) * wo
                    y = i * stride + u
                    for j in range(wo):
                        x = j * stride + v
                        for ch in range(c):
                            dxp[b, y, x, ch] += dcols[r + j, k + ch]


@numba.njit(**_opts)
def _direct(xp, w, out, kh, kw, c, f):
    """out (n, Ho, Wo, F) = correlation of xp (n, Hp, Wp, C) with w (KH, KW, C, F), stride 1; per output,
    Σ over kernel rows of (Σ over the row's (v, ch) taps in order)."""
    n, ho, wo, _ = out.shape
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                o = out[b, i, j]
                for q in range(f):
                    o[q] = 0
                for u in range(kh):
                    xr, wu = xp[b, i + u], w[u]
                    for q in range(f):  # vectorized: the taps below are unrolled (kw, c are constants)
                        s = o[q]
                        for v in range(kw):
                            for ch in range(c):
                                s += xr[j + v, ch] * wu[v, ch, q]
                        o[q] = s


def direct(kh: int, kw: int, c: int, f: int):
    """The direct convolution for these constants: fn(xp, w, out), arrays as `_direct`."""
    fn = _built.get((kh, kw, c, f))
    if fn is None:
        @numba.njit(**_opts)
        def fn(xp, w, out):
            _direct(xp, w, out, kh, kw, c, f)

        _built[kh, kw, c, f] = fn
    return fn


def warm():
    """Compile the kernels for float32 now rather than at first use."""
    col2im(np.zeros((1, 1), np.float32), 1, 1, 1, 1, 1, np.zeros((1, 1, 1, 1), np.float32))
