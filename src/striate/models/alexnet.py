"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) and a CIFAR-sized variant.

ImageNet, `variant="paper"` (the default), input 227×227×3 (the paper's "224" does not tile: with an 11×11
stride-4 filter only 227 gives the 55×55 maps it reports):

    conv11×11/4-96 - relu - LRN - maxpool3/2 → 27×27×96
    conv5×5-256 (pad 2, 2 groups) - relu - LRN - maxpool3/2 → 13×13×256
    conv3×3-384 (pad 1) - relu - conv3×3-384 (pad 1, 2 groups) - relu - conv3×3-256 (pad 1, 2 groups) - relu
    maxpool3/2 → 6×6×256 - flatten - dropout - fc-4096 - relu - dropout - fc-4096 - relu - fc-C

The two-GPU split is kept as grouped convolutions (conv2, conv4, conv5 see only their own half of the input
channels), which is what gives the published 60,965,224 parameters (C = 1000) and 0.724 G MACs; without
grouping the same widths have 62.4 M parameters and 1.13 G MACs. LRN uses the paper's constants n = 5,
k = 2, α = 1e-4, β = 0.75 (torch's α is the paper's times n, hence `alpha=5e-4` below). Pooling is the
paper's overlapping 3×3 stride 2, which tiles 55 → 27 → 13 → 6 exactly.

`variant="torchvision"`: torchvision's single-tower version (64-192-384-256-256, no LRN, no groups),
61,100,840 parameters and 0.714 G MACs, whose weights `transfer.load_torch_weights` maps by name. (torchvision
pads conv1 by 2 on 224×224 inputs and floors; here it is 227×227 unpadded, giving the same 55×55 grid.)

CIFAR (`alexnet_cifar`, 32×32×3, 4.8 M parameters, 0.22 G MACs at width 1):
    [conv5×5-64 (pad 2) - relu - LRN - maxpool2] → 16×16, [conv5×5-192 (pad 2) - relu - LRN - maxpool2] → 8×8,
    conv3×3-384 - relu - conv3×3-256 - relu - conv3×3-256 - relu - maxpool2 → 4×4×256,
    flatten - dropout - fc-512 - relu - dropout - fc-512 - relu - fc-C
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU
from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.dropout import Dropout
from ..nn.grouped import GroupedConv2d
from ..nn.linear import Linear
from ..nn.lrn import LocalResponseNorm
from ..nn.module import Module
from ..nn.pool import MaxPool2d
from ..nn.shape import Flatten
from ._build import record, scaled, spatial_size


def _conv(cin, cout, k, stride, pad, groups, rng):
    if groups == 1:
        return Conv2d(cin, cout, k, stride, pad, rng=rng)
    return GroupedConv2d(cin, cout, k, stride, pad, groups, rng=rng)


def _classifier(volume_shape, hidden, num_classes, dropout, rng) -> list[Module]:
    _, h, w, c = volume_shape
    return [Flatten(), Dropout(dropout, rng=rng), Linear(h * w * c, hidden, rng=rng), ReLU(),
            Dropout(dropout, rng=rng), Linear(hidden, hidden, rng=rng), ReLU(), Linear(hidden, num_classes, rng=rng)]


def alexnet(num_classes: int = 1000, in_channels: int = 3, image_size=227, *, rng: np.random.Generator,
            width: float = 1.0, variant: str = "paper", dropout: float = 0.5) -> Sequential:
    """AlexNet for (N, 227, 227, in_channels) inputs; `variant` 'paper' (grouped, LRN) or 'torchvision'.
    `width` scales every convolution and the two hidden FC layers."""
    if variant not in ("paper", "torchvision"):
        raise ValueError(f"alexnet: variant must be 'paper' or 'torchvision', got {variant!r}")
    paper = variant == "paper"
    c1, c2, c3, c4, c5 = (scaled(v, width) for v in ((96, 256, 384, 384, 256) if paper else (64, 192, 384, 256, 256)))
    g = 2 if paper else 1
    if paper:
        c2, c4, c5 = (2 * ((v + 1) // 2) for v in (c2, c4, c5))  # groups need even widths
        c3 = 2 * ((c3 + 1) // 2)

    def lrn():
        return [LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)] if paper else []

    features = [Conv2d(in_channels, c1, 11, stride=4, rng=rng), ReLU(), *lrn(), MaxPool2d(3, 2),
                _conv(c1, c2, 5, 1, 2, g, rng), ReLU(), *lrn(), MaxPool2d(3, 2),
                Conv2d(c2, c3, 3, padding=1, rng=rng), ReLU(),
                _conv(c3, c4, 3, 1, 1, g, rng), ReLU(),
                _conv(c4, c5, 3, 1, 1, g, rng), ReLU(), MaxPool2d(3, 2)]
    h, w = spatial_size(image_size)
    volume = Sequential(*features).output_shape((1, h, w, in_channels))
    model = Sequential(*features, *_classifier(volume, scaled(4096, width), num_classes, dropout, rng))
    return record(model, "alexnet", num_classes, in_channels, image_size=image_size, width=width,
                  variant=variant, dropout=dropout)


def alexnet_cifar(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
                  width: float = 1.0, hidden: int = 512, dropout: float = 0.5, lrn: bool = True) -> Sequential:
    """AlexNet's pattern shrunk for 32×32 inputs (see the module docstring); `width` scales the convolutions."""
    c1, c2, c3, c4, c5 = (scaled(v, width) for v in (64, 192, 384, 256, 256))

    def norm():
        return [LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)] if lrn else []

    features = [Conv2d(in_channels, c1, 5, padding=2, rng=rng), ReLU(), *norm(), MaxPool2d(2),
                Conv2d(c1, c2, 5, padding=2, rng=rng), ReLU(), *norm(), MaxPool2d(2),
                Conv2d(c2, c3, 3, padding=1, rng=rng), ReLU(), Conv2d(c3, c4, 3, padding=1, rng=rng), ReLU(),
                Conv2d(c4, c5, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2)]
    h, w = spatial_size(image_size)
    volume = Sequential(*features).output_shape((1, h, w, in_channels))
    model = Sequential(*features, *_classifier(volume, hidden, num_classes, dropout, rng))
    return record(model, "alexnet_cifar", num_classes, in_channels, image_size=image_size, width=width,
                  hidden=hidden, dropout=dropout, lrn=lrn)
