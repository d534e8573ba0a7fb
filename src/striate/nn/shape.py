"""Shape-only layers: Flatten."""

from __future__ import annotations

import math

import numpy as np

from .module import Module


class Flatten(Module):
    """(N, d1, d2, ...) → (N, d1·d2·...), in C order (so NHWC flattens as H, W, C)."""

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise self._error(f"expected an array (N, ...) of rank ≥ 2, got {getattr(x, 'shape', type(x))}")
        # the width spelled out: reshape cannot infer a -1 axis of an empty batch
        y = x.reshape(self.output_shape(x.shape))
        self._save(x.shape, y)
        return y

    def backward(self, dy):
        x_shape = self._saved(dy)
        return dy.reshape(x_shape)

    def output_shape(self, input_shape):
        n, *rest = self._input_shape(input_shape, None, None, "N, ...", min_ndim=2)
        return (n, math.prod(rest))
