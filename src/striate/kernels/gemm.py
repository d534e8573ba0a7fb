"""Matrix products split over striate's threads (see `parallel.py`), for the layers whose multiplies
are not already split by batch chunks (Linear). With one thread each is a plain `@`.

    matmul(a, b)     a (M, K) @ b (K, N) → (M, N), rows of a split
    matmul_tn(a, b)  a.T @ b for a (R, M), b (R, N) → (M, N), columns of a split (no partial sums)
"""

from __future__ import annotations

import numpy as np

from .parallel import for_parts


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    for_parts(lambda r: np.matmul(a[r], b, out=out[r]), a.shape[0], a.nbytes + b.nbytes + out.nbytes)
    return out


def matmul_tn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((a.shape[1], b.shape[1]), dtype=np.result_type(a, b))
    for_parts(lambda r: np.matmul(a[:, r].T, b, out=out[r]), a.shape[1], a.nbytes + b.nbytes + out.nbytes)
    return out
