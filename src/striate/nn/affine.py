"""Fixed affine maps built into a network: ChannelAffine (a per-channel input re-normalisation) and Scale (one
constant multiplier, e.g. airbench's logits · 1/9)."""

from __future__ import annotations

import numpy as np

from .module import Module


class ChannelAffine(Module):
    """y = x·scale + shift on the last (channel) axis; x: (N, ..., C) → the same shape.

    `scale` and `shift` are constants of the architecture (C numbers each), neither trained nor saved: no
    parameters, no buffers. torchvision's GoogLeNet uses one as its `transform_input`, which turns an input
    normalised with ImageNet's mean and std into the (x − 0.5)/0.5 scaling its published weights were trained on.
    """

    def __init__(self, scale: tuple[float, ...], shift: tuple[float, ...]):
        super().__init__()
        self.scale = tuple(float(s) for s in scale)
        self.shift = tuple(float(t) for t in shift)
        if not self.scale or len(self.scale) != len(self.shift):
            raise ValueError(f"ChannelAffine: scale and shift need one number per channel each, got "
                             f"{len(self.scale)} and {len(self.shift)}")
        if not all(np.isfinite(self.scale + self.shift)):
            raise ValueError(f"ChannelAffine: scale and shift must be finite, got {self.scale}, {self.shift}")

    def forward(self, x):
        self._check_input(x, x.ndim if isinstance(x, np.ndarray) and x.ndim >= 2 else 2, len(self.scale))
        y = x * np.asarray(self.scale, dtype=x.dtype) + np.asarray(self.shift, dtype=x.dtype)
        self._save(x.shape, y)
        return y

    def backward(self, dy):
        self._saved(dy)
        return dy * np.asarray(self.scale, dtype=dy.dtype)

    def output_shape(self, input_shape):
        return self._input_shape(input_shape, None, len(self.scale), "N, ..., C", min_ndim=2)

    def extra_repr(self):
        return f"{len(self.scale)} channels"


class Scale(Module):
    """y = factor·x, any shape (N, ...) → the same shape; `factor` is a finite constant of the architecture (no
    parameters, no buffers). The fastest CIFAR-10 recipes scale their logits by 1/9 before the softmax (a fixed
    temperature)."""

    def __init__(self, factor: float):
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int | float | np.integer | np.floating) \
                or not np.isfinite(factor):
            raise ValueError(f"Scale: factor must be a finite number, got {factor!r}")
        self.factor = float(factor)

    def forward(self, x):
        self._check_input(x, x.ndim if isinstance(x, np.ndarray) and x.ndim >= 1 else 1, None, "N, ...")
        y = x * x.dtype.type(self.factor)
        self._save(x.shape, y)
        return y

    def backward(self, dy):
        self._saved(dy)
        return dy * dy.dtype.type(self.factor)

    def output_shape(self, input_shape):
        return self._input_shape(input_shape, None, None, "N, ...")

    def macs(self, input_shape):
        return int(np.prod(self.output_shape(input_shape)))

    def extra_repr(self):
        return f"{self.factor:g}"
