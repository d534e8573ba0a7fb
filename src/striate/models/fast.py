"""A CIFAR net built for time to accuracy on a CPU, in the style of the fast CIFAR-10 training records
(David Page's DAWNBench net, Keller Jordan's airbench): a stem convolution, then three blocks of
conv3×3 → maxpool 2×2 → BN → ReLU → conv3×3 → BN → ReLU, then a max over the last 4×4 map and one
linear layer. Pooling right after each block's first convolution means its BatchNorm, ReLU and second
convolution run on a quarter of the positions: at widths (64, 128, 256) the net costs 86 M MACs per
32×32 image, about half of the reference net's, and trains to a higher accuracy.
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU
from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.norm import BatchNorm
from ..nn.pool import MaxPool2d
from ..nn.shape import Flatten
from ._build import record, scaled, spatial_size


def fast_cifar(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
               widths: tuple[int, int, int] = (64, 128, 256), stem: int = 32, width: float = 1.0) -> Sequential:
    """(N, H, W, in_channels) → (N, num_classes) scores; H and W divisible by 8. `width` scales the
    stem and the three block widths. Convolutions have no bias (BatchNorm's β replaces it)."""
    h, w = spatial_size(image_size)
    if h % 8 or w % 8:
        raise ValueError(f"fast_cifar: image size must be divisible by 8 (three 2×2 poolings), got {h}×{w}")
    c = scaled(stem, width)
    layers = [Conv2d(in_channels, c, 3, padding=1, bias=False, rng=rng), BatchNorm(c), ReLU()]
    for out in (scaled(b, width) for b in widths):
        layers += [Conv2d(c, out, 3, padding=1, bias=False, rng=rng), MaxPool2d(2), BatchNorm(out), ReLU(),
                   Conv2d(out, out, 3, padding=1, bias=False, rng=rng), BatchNorm(out), ReLU()]
        c = out
    layers += [MaxPool2d((h // 8, w // 8)), Flatten(), Linear(c, num_classes, bias=False, rng=rng)]
    return record(Sequential(*layers), "fast_cifar", num_classes, in_channels, image_size=image_size,
                  widths=tuple(widths), stem=stem, width=width)
