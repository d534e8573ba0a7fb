"""The softmax cross-entropy numba kernel behind `nn.losses.SoftmaxCrossEntropy` (imported only through
`jit.compiled("loss")`): forward and backward of a block of rows in one pass, so a training step's loss costs
one compiled call instead of a dozen NumPy passes over the (N, C) scores.

Within float32 rounding of the NumPy path, not bit-identical: the row sums of exp run in a different order,
the C library's exp/log replace NumPy's SIMD ones, and the loss is summed in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def softmax_cross_entropy(scores, labels, eps, divisor, grad, losses):
    """For each row i of scores (n, C), in float64: losses[i] = −Σ_j q_ij·logp_ij, and grad[i] (the scores'
    dtype) = (softmax(s_i) − q_i) / divisor, with targets q_ij = ε/C + (1 − ε)·[j = labels[i]], in NumPy's
    steps: shift by the row max, logp = shifted − log Σ exp(shifted), softmax = exp(logp)."""
    n, c = scores.shape
    off, on = eps / c, 1.0 - eps
    for i in range(n):
        top = float(scores[i, 0])
        for j in range(1, c):
            v = float(scores[i, j])
            top = v if v > top or v != v else top
        total = 0.0
        for j in range(c):
            total += math.exp(scores[i, j] - top)
        log_total = math.log(total)
        logp_sum = 0.0
        for j in range(c):
            logp = (scores[i, j] - top) - log_total
            logp_sum += logp
            grad[i, j] = (math.exp(logp) - off) / divisor
        y = labels[i]
        logp_y = (scores[i, y] - top) - log_total
        grad[i, y] = (math.exp(logp_y) - off - on) / divisor
        losses[i] = -on * logp_y - off * logp_sum


def warm():
    """Compile the kernel for float32 scores now rather than at first use."""
    s, g = np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32)
    softmax_cross_entropy(s, np.zeros(1, np.intp), 0.0, 1.0, g, np.zeros(1))
