"""Matrix products split over striate's threads (see `parallel.py`), for the layers whose multiplies
are not already split by batch chunks (Linear). With one thread each is a plain `@`.

    matmul(a, b, bias=None)     a (M, K) @ b (K, N) [+ bias (N,)] → (M, N)
    matmul_tn(a, b, into=None)  a.T @ b for a (R, M), b (R, N) → (M, N), columns of a split (no partial sums);
                                with `into`, added into it

Each thread's single-threaded GEMM packs its share of one operand and all of the other, so `matmul` splits
the larger one: the rows of a when a is the larger (a batch of convolution columns), else the columns of b
(Linear's weights: a 4096→256 layer at batch 128 multiplies (128 × 4096) by (4096 × 256); split by rows,
both threads packed all 4 MiB of weights, and the forward ran at 0.63× PyTorch's speed). Either way each
output element is one thread's dot product, so the result depends only on the shapes and the thread count.
"""

from __future__ import annotations

import numpy as np

from .parallel import for_parts


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    nbytes = a.nbytes + b.nbytes + out.nbytes

    if a.nbytes >= b.nbytes:
        def part(r):
            np.matmul(a[r], b, out=out[r])
            if bias is not None:
                out[r] += bias  # while the part is still in cache

        for_parts(part, a.shape[0], nbytes)
    else:
        def columns(r):
            np.matmul(a, b[:, r], out=out[:, r])
            if bias is not None:
                out[:, r] += bias[r]

        for_parts(columns, b.shape[1], nbytes)
    return out


def matmul_tn(a: np.ndarray, b: np.ndarray, into: np.ndarray | None = None) -> np.ndarray:
    """a.T @ b; with `into` (M, N), `into += a.T @ b` instead (returns `into`): each thread adds its part
    while it is in cache, with no (M, N) temporary or second pass (the same sums as `into += matmul_tn(a, b)`)."""
    nbytes = a.nbytes + b.nbytes + a.shape[1] * b.shape[1] * a.itemsize
    if into is not None:
        def add(r):
            into[r] += np.matmul(a[:, r].T, b)

        for_parts(add, a.shape[1], nbytes)
        return into
    out = np.empty((a.shape[1], b.shape[1]), dtype=np.result_type(a, b))
    for_parts(lambda r: np.matmul(a[:, r].T, b, out=out[r]), a.shape[1], nbytes)
    return out
