"""Data-parallel gradient averaging: every rank's gradients (and the step's loss, accuracy and stop flag)
summed in a few large contiguous buffers — one MPI call per bucket per step, not one per tensor.

Each rank's gradient is the mean over its own n_r samples. Scaled by n_r before the sum and divided by
N = Σ n_r after it, the result is the mean over the global batch, whatever the split (a short last batch
splits unevenly; a rank may have none). The step's statistics ride in the last bucket: samples, loss × n,
correct predictions, a stop flag (a Ctrl-C or SIGTERM on any rank stops every rank after the same step) and
the number of convolution algorithm choices rank 0 has made (when it grows, rank 0's table is sent to all).
"""

from __future__ import annotations

import numpy as np

BUCKET_BYTES = 64 << 20  # one buffer per step for small nets; VGG-sized nets use a few 64 MB buckets
STATS = 5  # samples, loss sum, correct, stop, rank 0's algorithm choices


class GradientAverager:
    """`average(n, loss_sum, correct, stop, choices)` for the trainable `params` (objects with `.grad`
    arrays): replaces every rank's `.grad` by the global batch's mean gradient; returns the global
    (samples, loss sum, correct, stop, rank 0's choices)."""

    def __init__(self, comm, params):
        self.comm = comm
        self.params = [p for p in params if getattr(p, "requires_grad", True)]
        wide = any(p.grad.dtype == np.float64 for p in self.params)  # a float64 net (gradient checks)
        self.dtype = np.float64 if wide else np.float32
        self.buckets: list[tuple[np.ndarray, list[tuple[object, slice]]]] = []
        items, size = [], 0
        limit = BUCKET_BYTES // np.dtype(self.dtype).itemsize
        for p in self.params:
            if items and size + p.grad.size > limit:
                self.buckets.append(self._bucket(items, size, 0))
                items, size = [], 0
            items.append((p, slice(size, size + p.grad.size)))
            size += p.grad.size
        self.buckets.append(self._bucket(items, size, STATS))

    def _bucket(self, items, size, extra):
        return np.zeros(size + extra, dtype=self.dtype), items

    def average(self, n: int, loss_sum: float, correct: float, stop: bool,
                choices: int = 0, summed: bool = False) -> tuple[int, float, int, bool, int]:
        """`summed`: each rank's gradient is the sum over its samples (a loss of reduction 'sum'): the ranks'
        gradients are added, not averaged, so K ranks still equal one process."""
        for buffer, items in self.buckets:
            for p, where in items:
                np.multiply(p.grad.reshape(-1), 1 if summed else n, out=buffer[where])
        self.buckets[-1][0][-STATS:] = (n, loss_sum, correct, float(stop), choices if self.comm.is_root else 0)
        for buffer, _ in self.buckets:
            self.comm.allreduce(buffer)
        total, loss_total, correct_total, stops, root_choices = self.buckets[-1][0][-STATS:].tolist()
        scale = 1.0 if summed else 1.0 / total if total else 0.0
        for buffer, items in self.buckets:
            for p, where in items:
                p.grad[...] = (buffer[where] * self.dtype(scale)).reshape(p.grad.shape)
        return int(round(total)), loss_total, int(round(correct_total)), stops > 0, int(round(root_choices))
