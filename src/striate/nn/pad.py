"""ZeroPad2d: zeros around the spatial axes of NHWC images (TensorFlow's "SAME" padding, ceil-mode pooling)."""

from __future__ import annotations

import numpy as np

from .module import Module


class ZeroPad2d(Module):
    """x: (N, H, W, C) → (N, top + H + bottom, left + W + right, C) with zeros around. No parameters.
    `ZeroPad2d(p)` pads p on every side; `ZeroPad2d(top, bottom, left, right)` each side on its own
    (PyTorch's `ZeroPad2d((left, right, top, bottom))` orders them differently)."""

    def __init__(self, top: int, bottom: int | None = None, left: int | None = None, right: int | None = None):
        super().__init__()
        bottom = top if bottom is None else bottom
        left = top if left is None else left
        right = left if right is None else right
        self.padding = tuple(int(p) for p in (top, bottom, left, right))
        if min(self.padding) < 0:
            raise ValueError(f"ZeroPad2d: padding must be ≥ 0, got {self.padding}")

    def forward(self, x):
        self._check_input(x, 4, None, "N, H, W, C")
        t, b, left, r = self.padding
        n, h, w, c = x.shape
        y = np.zeros((n, t + h + b, left + w + r, c), dtype=x.dtype)
        y[:, t:t + h, left:left + w] = x
        self._save(x.shape, y)
        return y

    def backward(self, dy):
        n, h, w, c = self._saved(dy)
        t, _, left, _ = self.padding
        return np.ascontiguousarray(dy[:, t:t + h, left:left + w])

    def output_shape(self, input_shape):
        n, h, w, c = self._input_shape(input_shape, 4, None, "N, H, W, C")
        t, b, left, r = self.padding
        return (n, t + h + b, left + w + r, c)

    def extra_repr(self):
        return "top={}, bottom={}, left={}, right={}".format(*self.padding)
