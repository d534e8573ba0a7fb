"""The softmax cross-entropy numba kernel behind `nn.losses.SoftmaxCrossEntropy` (imported only through
`jit.compiled("loss")`): forward and backward of a block of rows together, in two compiled passes around
NumPy's SIMD exp (faster than the C library's scalar exp a compiled loop would call), instead of a dozen NumPy
passes over the (N, C) scores.

Within float32 rounding of the NumPy path, not bit-identical: the row sums of exp run in a different order,
softmax is exp / sum rather than exp(log-softmax), and the sums, the log and the division run in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def shift_rows(scores, shifted, tops, shifted_sums):
    """shifted = scores − the row max (NaN propagating, as np.max), tops = the maxima, shifted_sums = Σ_j shifted
    (float64)."""
    n, c = scores.shape
    for i in range(n):
        top = scores[i, 0]
        for j in range(1, c):
            v = scores[i, j]
            top = v if v > top or v != v else top
        tops[i] = top
        total = 0.0
        for j in range(c):
            d = scores[i, j] - top
            shifted[i, j] = d
            total += d
        shifted_sums[i] = total


@numba.njit(**_opts)
def finish_rows(scores, labels, tops, shifted_sums, eps, divisor, grad, losses):
    """From grad = exp(shifted) in place: grad = (softmax − q) / divisor, with targets q_ij = ε/C + (1 − ε)·
    [j = labels[i]], and losses[i] = −Σ_j q_ij·logp_ij, logp = shifted − log Σ exp(shifted) (float64 sums)."""
    n, c = scores.shape
    off, on = eps / c, 1.0 - eps
    for i in range(n):
        total = 0.0
        for j in range(c):
            total += grad[i, j]
        log_total = math.log(total)
        inv = 1.0 / total
        for j in range(c):
            grad[i, j] = (grad[i, j] * inv - off) / divisor
        y = labels[i]
        grad[i, y] -= on / divisor
        logp_y = (scores[i, y] - tops[i]) - log_total
        losses[i] = -on * logp_y - off * (shifted_sums[i] - c * log_total)


def softmax_cross_entropy(scores, labels, eps: float, divisor: float, grad, losses) -> None:
    """Rows of scores (n, C) with their labels (n,): grad (n, C, the scores' dtype) = (softmax − q) / divisor and
    losses (n,) float64 — three passes over the block: compiled, NumPy's SIMD exp, compiled."""
    n = scores.shape[0]
    tops, shifted_sums = np.empty(n, scores.dtype), np.empty(n)
    shift_rows(scores, grad, tops, shifted_sums)
    np.exp(grad, out=grad)
    finish_rows(scores, labels, tops, shifted_sums, eps, divisor, grad, losses)


def warm():
    """Compile the kernel for float32 scores now rather than at first use."""
    s, g = np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32)
    softmax_cross_entropy(s, np.zeros(1, np.intp), 0.0, 1.0, g, np.zeros(1))
