"""LocalResponseNorm: AlexNet's normalisation across neighbouring channels, on NHWC images. The formula and
its kernels are in kernels/lrn.py."""

from __future__ import annotations

import numpy as np

from ..kernels.lrn import lrn_backward, lrn_forward
from .module import Module


class LocalResponseNorm(Module):
    """x: (N, H, W, C) (or any (N, ..., C)) → same shape, normalised across channels.

    Defaults are torch's (size n, α = 1e-4, β = 0.75, k = 1); AlexNet used n = 5, k = 2, paper-α = 1e-4,
    i.e. `LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)` here. No parameters; MACs are not counted
    (like pooling, it is cheap next to the convolutions).
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if int(size) < 1:
            raise ValueError(f"LocalResponseNorm: size must be ≥ 1, got {size!r}")
        if k <= 0 and beta != 0:
            raise ValueError(f"LocalResponseNorm: k must be > 0, got {k!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise self._error(f"expected input (N, H, W, C), got {getattr(x, 'shape', type(x).__name__)}")
        self._check_input(x, x.ndim, None, "N, H, W, C" if x.ndim == 4 else None)
        y, cache = lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return lrn_backward(dy, self._saved(dy))

    def output_shape(self, input_shape):
        return self._input_shape(input_shape, None, None, "N, ..., C", min_ndim=2)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g}"
