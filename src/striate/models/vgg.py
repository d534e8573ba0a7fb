"""VGG (Simonyan & Zisserman 2015), configurations A, B, D, E = VGG-11, 13, 16, 19, optionally with
BatchNorm after every convolution (torchvision's `vgg*_bn`), and CIFAR-sized variants.

ImageNet (`vgg`, input 224×224×3): the published stacks of 3×3 convolutions (pad 1, stride 1) and 2×2
max-pools (→ 7×7×512), then fc-4096 - relu - dropout - fc-4096 - relu - dropout - fc-C. Parameters / MACs
at C = 1000: VGG-11 132,863,336 / 7.61 G, VGG-13 133,047,848 / 11.31 G, VGG-16 138,357,544 / 15.47 G,
VGG-19 143,667,240 / 19.63 G (torchvision's numbers; no adaptive pooling is needed at 224). With BN the
convolutions keep their bias, as torchvision's do, so `load_torch_weights` can map `vgg*_bn` too.

CIFAR (`vgg_cifar`, input 32×32×3): the same convolution stacks, always with BN (VGG-16 without BN barely
trains from scratch), five pools → 1×1×512, then fc-512 - relu - dropout - fc-C (the common CIFAR head).
VGG-11 at width 1: 9.5 M parameters, 0.15 G MACs; VGG-16: 15.0 M, 0.31 G. `width` scales every convolution.
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU
from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.dropout import Dropout
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.norm import BatchNorm
from ..nn.pool import MaxPool2d
from ..nn.shape import Flatten
from ._build import record, scaled, spatial_size

# channel counts, "M" = 2×2 max-pool (the paper's table 1)
CONFIGS: dict[int, list] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_features(depth: int, in_channels: int, rng, batch_norm: bool, width: float) -> list[Module]:
    """The convolutional part of VGG-`depth`: [conv3×3 (pad 1) (- BN) - relu]… and 2×2 max-pools."""
    if depth not in CONFIGS:
        raise ValueError(f"VGG depth must be one of {sorted(CONFIGS)}, got {depth!r}")
    layers: list[Module] = []
    c = in_channels
    for v in CONFIGS[depth]:
        if v == "M":
            layers.append(MaxPool2d(2))
            continue
        out = scaled(v, width)
        layers.append(Conv2d(c, out, 3, padding=1, rng=rng))
        if batch_norm:
            layers.append(BatchNorm(out))
        layers.append(ReLU())
        c = out
    return layers


def vgg(depth: int = 16, num_classes: int = 1000, in_channels: int = 3, image_size=224, *,
        rng: np.random.Generator, batch_norm: bool = False, width: float = 1.0, dropout: float = 0.5) -> Sequential:
    """VGG-`depth` (11, 13, 16, 19) for (N, 224, 224, in_channels) inputs (any size divisible by 32 builds;
    the first FC layer is sized for it). `width` scales the convolutions and the 4096-wide FC layers."""
    features = vgg_features(depth, in_channels, rng, batch_norm, width)
    h, w = spatial_size(image_size)
    _, fh, fw, fc = Sequential(*features).output_shape((1, h, w, in_channels))
    hidden = scaled(4096, width)
    model = Sequential(*features, Flatten(), Linear(fh * fw * fc, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
                       Linear(hidden, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
                       Linear(hidden, num_classes, rng=rng))
    return record(model, f"vgg{depth}" + ("_bn" if batch_norm else ""), num_classes, in_channels,
                  image_size=image_size, width=width, dropout=dropout)


def vgg_cifar(depth: int = 16, num_classes: int = 10, in_channels: int = 3, image_size=32, *,
              rng: np.random.Generator, width: float = 1.0, hidden: int = 512, dropout: float = 0.5) -> Sequential:
    """VGG-`depth` with BN for (N, 32, 32, in_channels) inputs and a 512-wide head (module docstring)."""
    features = vgg_features(depth, in_channels, rng, True, width)
    h, w = spatial_size(image_size)
    _, fh, fw, fc = Sequential(*features).output_shape((1, h, w, in_channels))
    model = Sequential(*features, Flatten(), Linear(fh * fw * fc, hidden, rng=rng), ReLU(), Dropout(dropout, rng=rng),
                       Linear(hidden, num_classes, rng=rng))
    return record(model, f"vgg{depth}_cifar", num_classes, in_channels, image_size=image_size, width=width,
                  hidden=hidden, dropout=dropout)


def _named(depth: int, batch_norm: bool, cifar: bool):
    if cifar:
        def build(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
                  width: float = 1.0, hidden: int = 512, dropout: float = 0.5) -> Sequential:
            return vgg_cifar(depth, num_classes, in_channels, image_size, rng=rng, width=width, hidden=hidden,
                             dropout=dropout)
        build.__doc__ = f"VGG-{depth} with BN for 32×32 inputs (see `vgg_cifar`)."
    else:
        def build(num_classes: int = 1000, in_channels: int = 3, image_size=224, *, rng: np.random.Generator,
                  width: float = 1.0, dropout: float = 0.5) -> Sequential:
            return vgg(depth, num_classes, in_channels, image_size, rng=rng, batch_norm=batch_norm, width=width,
                       dropout=dropout)
        build.__doc__ = f"VGG-{depth}{' with BatchNorm' if batch_norm else ''} for 224×224 inputs (see `vgg`)."
    build.__name__ = f"vgg{depth}" + ("_bn" if batch_norm else "") + ("_cifar" if cifar else "")
    return build


vgg11, vgg13, vgg16, vgg19 = (_named(d, False, False) for d in (11, 13, 16, 19))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_named(d, True, False) for d in (11, 13, 16, 19))
vgg11_cifar, vgg13_cifar, vgg16_cifar, vgg19_cifar = (_named(d, False, True) for d in (11, 13, 16, 19))
