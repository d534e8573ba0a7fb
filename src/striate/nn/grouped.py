"""GroupedConv2d: a convolution split into independent channel groups (AlexNet's two GPUs)."""

from __future__ import annotations

import numpy as np

from .conv import Conv2d
from .errors import LayerError
from .module import Module


class GroupedConv2d(Module):
    """A convolution whose input and output channels are split into `groups` independent convolutions
    (AlexNet's two GPUs; PyTorch's `Conv2d(groups=G)`). x: (N, H, W, C_in) → (N, Ho, Wo, C_out); child `g`
    maps input channels [g·C_in/G, (g+1)·C_in/G) to output channels [g·C_out/G, (g+1)·C_out/G).
    Children are Conv2d, named '0', '1', …
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, groups: int = 2, *, rounding: str = "strict",
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"GroupedConv2d: {in_channels}→{out_channels} channels do not split into {groups} groups")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        for g in range(groups):
            setattr(self, str(g), Conv2d(in_channels // groups, out_channels // groups, kernel_size, stride,
                                         padding, rounding=rounding, rng=rng, dtype=dtype))

    def _convs(self) -> list[Conv2d]:
        return list(self._modules.values())

    def forward(self, x):
        self._check_input(x, 4, self.in_channels, "N, H, W, C")
        self.output_shape(x.shape)  # a size the filter does not tile fails here, naming this layer
        step = self.in_channels // self.groups
        outs = [conv.forward(np.ascontiguousarray(x[..., g * step:(g + 1) * step]))
                for g, conv in enumerate(self._convs())]
        y = np.concatenate(outs, axis=-1)
        self._save(True, y)  # the children hold the caches; this slot marks the forward and checks dy
        return y

    def backward(self, dy):
        self._saved(dy)
        step = self.out_channels // self.groups
        dxs = []
        for g, conv in enumerate(self._convs()):
            conv.requires_input_grad = self.requires_input_grad
            dxs.append(conv.backward(np.ascontiguousarray(dy[..., g * step:(g + 1) * step])))
        return np.concatenate(dxs, axis=-1) if self.requires_input_grad else None

    def _per_group(self, method: str, input_shape):
        """`output_shape` or `macs` of one group's convolution for the whole layer's `input_shape`."""
        n, h, w, c = shape = self._input_shape(input_shape, 4, self.in_channels, "N, H, W, C")
        try:
            return getattr(self._convs()[0], method)((n, h, w, c // self.groups))
        except LayerError as e:
            raise self._error(f"input {shape}, per group: {e}") from None

    def output_shape(self, input_shape):
        return self._per_group("output_shape", input_shape)[:3] + (self.out_channels,)

    def macs(self, input_shape):
        return self.groups * self._per_group("macs", input_shape)

    def extra_repr(self):
        return self._convs()[0].extra_repr(groups=self.groups)  # one group's conv, scaled to the whole layer

    def __repr__(self):
        return self.describe()
