"""Small image classifiers: the notes' three-layer convnet, a digits net, and the reference CIFAR net.

Each builder takes `(num_classes, in_channels, image_size, rng)` plus its own keywords and returns a
`Sequential`; the registry in `striate.models` records the call in `model.build_config` so a checkpoint
can rebuild the architecture before loading its weights. Images are NHWC.
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU
from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.dropout import Dropout
from ..nn.linear import Linear
from ..nn.norm import BatchNorm
from ..nn.pool import MaxPool2d
from ..nn.shape import Flatten
from ._build import scaled


def _size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int | np.integer):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def _pooled(h: int, w: int, times: int, what: str) -> tuple[int, int]:
    for _ in range(times):
        if h % 2 or w % 2:
            raise ValueError(f"{what}: image size must be divisible by {2 ** times} (three 2×2 poolings), "
                             f"got {h}×{w}")
        h, w = h // 2, w // 2
    return h, w


def three_layer(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
                num_filters: int = 32, filter_size: int = 5, hidden: int = 100, width: float = 1.0) -> Sequential:
    """The CS231n assignment's ThreeLayerConvNet: conv{filter_size}×{filter_size}-{num_filters} (same
    padding) - relu - maxpool 2×2 - affine-{hidden} - relu - affine-C; `width` multiplies the filters."""
    if filter_size % 2 == 0:
        raise ValueError(f"three_layer: filter_size must be odd (same padding), got {filter_size}")
    num_filters = scaled(num_filters, width)
    h, w = _pooled(*_size(image_size), 1, "three_layer")
    return Sequential(
        Conv2d(in_channels, num_filters, filter_size, padding=filter_size // 2, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(), Linear(h * w * num_filters, hidden, rng=rng), ReLU(), Linear(hidden, num_classes, rng=rng),
    )


def digits_net(num_classes: int = 10, in_channels: int = 1, image_size=8, *, rng: np.random.Generator,
               channels: int = 16, width: float = 1.0, hidden: int = 64) -> Sequential:
    """For 8×8 digits: conv3×3-{c} - relu - conv3×3-{2c} - relu - maxpool 2×2 - affine-{hidden} - relu -
    affine-C, with c = channels × width (about 40k parameters at the defaults; a few seconds per epoch on one
    core). `width` is the zoo's width multiplier, as for every model; `channels` the first layer's count."""
    h, w = _pooled(*_size(image_size), 1, "digits_net")
    c = scaled(channels, width)
    return Sequential(
        Conv2d(in_channels, c, 3, padding=1, rng=rng), ReLU(),
        Conv2d(c, 2 * c, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(), Linear(h * w * 2 * c, hidden, rng=rng), ReLU(), Linear(hidden, num_classes, rng=rng),
    )


def reference(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
              widths: tuple[int, int, int] = (64, 128, 256), hidden: int = 256, dropout: float = 0.5,
              width: float = 1.0) -> Sequential:
    """The reference CIFAR net: [conv3×3-64, BN, ReLU]×2, maxpool2, [conv3×3-128, BN, ReLU]×2, maxpool2,
    [conv3×3-256, BN, ReLU]×2, maxpool2, flatten, linear-256, ReLU, dropout 0.5, linear-C; `width` multiplies
    the channels. Convolutions have no bias (the BatchNorm β replaces it)."""
    h, w = _pooled(*_size(image_size), 3, "reference")
    layers, c = [], in_channels
    for channels in widths:
        channels = scaled(channels, width)
        for _ in range(2):
            layers += [Conv2d(c, channels, 3, padding=1, bias=False, rng=rng), BatchNorm(channels), ReLU()]
            c = channels
        layers.append(MaxPool2d(2))
    layers += [Flatten(), Linear(h * w * c, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
               Linear(hidden, num_classes, rng=rng)]
    return Sequential(*layers)
