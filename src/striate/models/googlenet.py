"""GoogLeNet / Inception v1 (Szegedy et al. 2015, table 1) and a CIFAR-sized variant.

An Inception module is a `Concat` of four branches on the same input: 1×1; 1×1 reduce - 3×3; 1×1 reduce
- 5×5; 3×3 max-pool (stride 1) - 1×1 projection; each convolution followed by ReLU.

ImageNet (`googlenet`, input 224×224×3):

    conv7×7/2-64 - relu - maxpool3/2 - LRN - conv1×1-64 - relu - conv3×3-192 - relu - LRN - maxpool3/2
    inception 3a, 3b - maxpool3/2 - 4a, 4b, 4c, 4d, 4e - maxpool3/2 - 5a, 5b
    global average pool (7×7) - dropout 0.4 - fc-C

6,998,552 parameters and 1.583 G MACs at C = 1000 (the paper: "about 6.8 M"; "1.5 G multiply-adds").
The two auxiliary classifiers (training-only in the paper) are left out.

Documented padding choices. Striate's convolutions and pools require exact tiling, and a 7×7 stride-2
filter cannot tile 224 with symmetric padding ((224 + 6 − 7)/2 + 1 = 112.5). So:
- conv1 zero-pads 2 rows/columns before and 3 after (`ZeroPad2d`), TensorFlow's "SAME" padding, → 112×112;
- each stride-2 3×3 max-pool pads one zero row and column after (112 → 56 → 28 → 14 → 7), and each stride-1
  3×3 max-pool in an Inception branch pads one on every side. The pools follow a ReLU, so their inputs are
  ≥ 0 and a zero pad never wins the max: this is exactly torchvision's `ceil_mode=True` (and −∞ padding).
Parameter and MAC counts are unaffected by these choices.

CIFAR (`googlenet_cifar`, input 32×32×3): stem conv3×3-192 (pad 1) - relu, then 3a, 3b at 32×32,
maxpool2, 4a–4e at 16×16, maxpool2, 5a, 5b at 8×8, global average pool, fc-C. `width` scales every
channel count; width 1 is 5.9 M parameters and 1.45 G MACs per image, so width 0.25 (0.37 M, 0.09 G) is the
size that trains on a CPU here.
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU
from ..nn.containers import Concat, Sequential
from ..nn.conv import Conv2d
from ..nn.dropout import Dropout
from ..nn.linear import Linear
from ..nn.lrn import LocalResponseNorm
from ..nn.module import Module
from ..nn.pad import ZeroPad2d
from ..nn.pool import GlobalAvgPool2d, MaxPool2d
from ._build import record, scaled, spatial_size

# (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection) — the paper's table 1
INCEPTION: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(cin, cout, k, rng, pad=0):
    return [Conv2d(cin, cout, k, padding=pad, rng=rng), ReLU()]


def inception(in_channels: int, spec, rng, width: float = 1.0) -> Concat:
    """One Inception module; `spec` = (1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool projection), scaled by width.
    x: (N, H, W, in_channels) → (N, H, W, 1×1 + 3×3 + 5×5 + pool projection)."""
    c1, r3, c3, r5, c5, cp = (scaled(v, width) for v in spec)
    return Concat(Sequential(*_conv_relu(in_channels, c1, 1, rng)),
                  Sequential(*_conv_relu(in_channels, r3, 1, rng), *_conv_relu(r3, c3, 3, rng, pad=1)),
                  Sequential(*_conv_relu(in_channels, r5, 1, rng), *_conv_relu(r5, c5, 5, rng, pad=2)),
                  Sequential(ZeroPad2d(1), MaxPool2d(3, 1), *_conv_relu(in_channels, cp, 1, rng)))


def inception_out(spec, width: float = 1.0) -> int:
    c1, _, c3, _, c5, cp = (scaled(v, width) for v in spec)
    return c1 + c3 + c5 + cp


def _stages(names: str, c: int, rng, width: float) -> tuple[list[Module], int]:
    layers = []
    for name in names.split():
        layers.append(inception(c, INCEPTION[name], rng, width))
        c = inception_out(INCEPTION[name], width)
    return layers, c


def _pool_down() -> list[Module]:
    """3×3 stride-2 max-pool with ceil semantics (see the module docstring)."""
    return [ZeroPad2d(0, 1, 0, 1), MaxPool2d(3, 2)]


def googlenet(num_classes: int = 1000, in_channels: int = 3, image_size=224, *, rng: np.random.Generator,
              width: float = 1.0, lrn: bool = True, dropout: float = 0.4) -> Sequential:
    """GoogLeNet for (N, 224, 224, in_channels) inputs (any size that is 32·k builds: the head is global)."""
    c64, c192 = scaled(64, width), scaled(192, width)

    def norm():
        return [LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)] if lrn else []

    stem = [ZeroPad2d(2, 3, 2, 3), Conv2d(in_channels, c64, 7, stride=2, rng=rng), ReLU()]
    stem += [*_pool_down(), *norm(), *_conv_relu(c64, c64, 1, rng), *_conv_relu(c64, c192, 3, rng, pad=1),
             *norm(), *_pool_down()]
    s3, c = _stages("3a 3b", c192, rng, width)
    s4, c = _stages("4a 4b 4c 4d 4e", c, rng, width)
    s5, c = _stages("5a 5b", c, rng, width)
    model = Sequential(*stem, *s3, *_pool_down(), *s4, *_pool_down(), *s5, GlobalAvgPool2d(),
                       Dropout(dropout, rng=rng), Linear(c, num_classes, rng=rng))
    h, w = spatial_size(image_size)
    model.output_shape((1, h, w, in_channels))  # fails early, naming the layer, if the size does not tile
    return record(model, "googlenet", num_classes, in_channels, image_size=image_size, width=width, lrn=lrn,
                  dropout=dropout)


def googlenet_cifar(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
                    width: float = 1.0, dropout: float = 0.0) -> Sequential:
    """GoogLeNet for (N, 32, 32, in_channels) inputs (module docstring); `width` scales every layer."""
    c192 = scaled(192, width)
    s3, c = _stages("3a 3b", c192, rng, width)
    s4, c = _stages("4a 4b 4c 4d 4e", c, rng, width)
    s5, c = _stages("5a 5b", c, rng, width)
    head = [Dropout(dropout, rng=rng)] if dropout > 0 else []
    model = Sequential(*_conv_relu(in_channels, c192, 3, rng, pad=1), *s3, MaxPool2d(2), *s4, MaxPool2d(2), *s5,
                       GlobalAvgPool2d(), *head, Linear(c, num_classes, rng=rng))
    h, w = spatial_size(image_size)
    model.output_shape((1, h, w, in_channels))
    return record(model, "googlenet_cifar", num_classes, in_channels, image_size=image_size, width=width,
                  dropout=dropout)
