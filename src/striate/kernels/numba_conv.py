"""The convolution numba kernels behind `jit.compiled("conv")` (imported only when compiled kernels are on).
Each runs on one part of the batch per call, without the GIL; striate's own threads split the batch.

col2im: NumPy's scatter-add (`conv.col2im`) adds one kernel offset at a time as a strided slice whose
innermost run is C floats: with 1–8 input channels almost all of its time is per-run overhead. The compiled
loop keeps NumPy's order of additions — per sample, zeros, then the KH·KW offsets in row-major order — so
every element receives the same float32 additions in the same order: bit-identical to the NumPy path.
Batch 32, one thread, ms, NumPy → compiled: 1 channel 5×5 @ 32×32 3.8 → 1.5, 3 channels 5×5 (pad 2) 44 → 7.7,
3 channels 3×3 12 → 1.1, 8 channels 5×5 85 → 13, 64 channels 3×3 56 → 21, 128 channels 3×3 19 → 19.

Tried and not kept (same shapes, forward and weight gradient): the im2col copy compiled (1–2.5× slower than
NumPy's strided copy from 2 channels on, equal at 1) and a direct convolution vectorized over the output width
(1.5–10× slower than im2col + GEMM: OpenBLAS's register-blocked product beats what numba's vectorizer makes
of the loop nest, and its reductions cannot be vectorized without reassociating sums).
"""

from __future__ import annotations

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


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


def warm():
    """Compile the kernels for float32 now rather than at first use."""
    col2im(np.zeros((1, 1), np.float32), 1, 1, 1, 1, 1, np.zeros((1, 1, 1, 1), np.float32))
