"""Conv2d: the notes' convolutional layer on NHWC images."""

from __future__ import annotations

import numpy as np

from ..kernels.conv import conv2d_backward, conv2d_forward, conv_output_size
from . import init as initializers
from .module import Module, Parameter


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


class Conv2d(Module):
    """x: (N, H, W, C_in) → (N, Ho, Wo, C_out). weight (KH, KW, C_in, C_out), bias (C_out,).

    Cross-correlation without kernel flip; Ho = (H + 2P − KH) / S + 1 must be an integer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, padding: int = 0,
                 bias: bool = True, *, init="he", bias_init="zeros", rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        kh, kw = _pair(kernel_size)
        if min(in_channels, out_channels, kh, kw, stride) < 1 or padding < 0:
            raise ValueError(f"Conv2d: bad configuration in={in_channels} out={out_channels} "
                             f"kernel={kernel_size} stride={stride} padding={padding}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = (kh, kw), int(stride), int(padding)
        rng = rng if rng is not None else np.random.default_rng()
        self.weight = Parameter(initializers.get(init)((kh, kw, in_channels, out_channels), rng, dtype))
        self.bias = Parameter(initializers.get(bias_init)((out_channels,), rng, dtype)) if bias else None

    def forward(self, x):
        self._check_input(x, 4, self.in_channels, "N, H, W, C")
        try:
            y, cache = conv2d_forward(x, self.weight.data, None if self.bias is None else self.bias.data,
                                      self.stride, self.padding)
        except ValueError as e:
            raise self._error(f"input {x.shape}: {e}") from None
        self._save(cache, y)
        return y

    def backward(self, dy):
        dx, dw, db = conv2d_backward(dy, self._saved(dy), need_dx=self.requires_input_grad)
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def output_shape(self, input_shape):
        n, h, w, _ = shape = self._input_shape(input_shape, 4, self.in_channels, "N, H, W, C")
        try:
            ho = conv_output_size(h, self.kernel_size[0], self.stride, self.padding)
            wo = conv_output_size(w, self.kernel_size[1], self.stride, self.padding)
        except ValueError as e:
            raise self._error(f"input {shape}: {e}") from None
        return (n, ho, wo, self.out_channels)

    def macs(self, input_shape):
        n, ho, wo, f = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        return n * ho * wo * f * kh * kw * self.in_channels

    def extra_repr(self, groups: int = 1):
        kh, kw = self.kernel_size
        parts = [f"{self.in_channels * groups}→{self.out_channels * groups}", f"{kh}×{kw}"]
        parts += [f"groups={groups}"] if groups != 1 else []
        parts += [f"stride={self.stride}"] if self.stride != 1 else []
        parts += [f"pad={self.padding}"] if self.padding else []
        parts += ["bias=False"] if self.bias is None else []
        return ", ".join(parts)
