"""Shape-only layers: Flatten."""

from __future__ import annotations

import numpy as np

from .module import Module


class Flatten(Module):
    """(N, d1, d2, ...) → (N, d1·d2·...), in C order (so NHWC flattens as H, W, C)."""

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise self._error(f"expected an array (N, ...) of rank ≥ 2, got {getattr(x, 'shape', type(x))}")
        self._save(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._saved())

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))
