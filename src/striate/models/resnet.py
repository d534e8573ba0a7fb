"""ResNet-18/34/50 (He et al. 2016) laid out as torchvision's, so its published weights load by name
(`transfer.load_torch_weights(model, state_dict, arch="resnet18")`, names in `models.torchvision_names`).

Input (N, H, W, C), 224×224×3 natively; any size ≥ 32 builds (the head is a global average pool):

    conv7×7/2-64 (pad 3, no bias) - BN - relu - maxpool3/2 (pad 1)                        → 56×56×64
    layer1..layer4: blocks at 64, 128, 256, 512 planes; the first block of layers 2-4 has stride 2
    global average pool - fc-C

BasicBlock (resnet18: 2-2-2-2 blocks, resnet34: 3-4-6-3): conv3×3 - BN - relu - conv3×3 - BN, out = planes.
Bottleneck (resnet50: 3-4-6-3): conv1×1 - BN - relu - conv3×3 (the block's stride: torchvision's "v1.5") - BN -
relu - conv1×1 - BN, out = 4·planes. Each block is `Residual(body, shortcut)` followed by a ReLU (after the
add); the shortcut is the identity, or conv1×1 (the block's stride, no bias) - BN when the shape changes.
Every convolution is bias-free and followed by BatchNorm (eps 1e-5), and rounds as PyTorch does (`floor`), so
odd sizes give torchvision's grids (224 → 112 → 56 → 28 → 14 → 7).

Layout: a Sequential of [conv1, bn1, relu, pad, maxpool, layer1, layer2, layer3, layer4, avgpool, fc], each
`layerK` a Sequential of (Residual, ReLU) pairs. 11,689,512 / 21,797,672 / 25,557,032 parameters at C = 1000,
as torchvision's. `width` scales every channel count (0.25 builds a copy small enough for a fast test).
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU
from ..nn.containers import Residual, Sequential
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.norm import BatchNorm
from ..nn.pad import ZeroPad2d
from ..nn.pool import GlobalAvgPool2d, MaxPool2d
from ._build import record, scaled, spatial_size

# name → (block kind, blocks per layer); the expansion is the block's output channels ÷ its planes
DEPTHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)), "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}
PLANES = (64, 128, 256, 512)


def _conv_bn(cin: int, cout: int, k: int, stride: int, rng, relu: bool = True) -> list[Module]:
    conv = Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, rounding="floor", rng=rng)
    return [conv, BatchNorm(cout)] + ([ReLU()] if relu else [])


def block(kind: str, cin: int, planes: int, stride: int, rng: np.random.Generator) -> Residual:
    """One residual block without its closing ReLU: 'basic' or 'bottleneck' (module docstring).
    x: (N, H, W, cin) → (N, ⌊(H − 1)/stride⌋ + 1, …, planes · EXPANSION[kind])."""
    cout = planes * EXPANSION[kind]
    if kind == "basic":
        body = [*_conv_bn(cin, planes, 3, stride, rng), *_conv_bn(planes, planes, 3, 1, rng, relu=False)]
    else:
        body = [*_conv_bn(cin, planes, 1, 1, rng), *_conv_bn(planes, planes, 3, stride, rng),
                *_conv_bn(planes, cout, 1, 1, rng, relu=False)]
    shortcut = None
    if stride != 1 or cin != cout:  # torchvision's rule for a `downsample`
        shortcut = Sequential(*_conv_bn(cin, cout, 1, stride, rng, relu=False))
    return Residual(Sequential(*body), shortcut)


def _stage(kind: str, cin: int, planes: int, blocks: int, stride: int, rng) -> Sequential:
    layers: list[Module] = []
    for i in range(blocks):
        layers += [block(kind, cin, planes, stride if i == 0 else 1, rng), ReLU()]
        cin = planes * EXPANSION[kind]
    return Sequential(*layers)


def resnet(name: str, num_classes: int, in_channels: int, image_size, rng: np.random.Generator,
           width: float) -> Sequential:
    """The network `name` ('resnet18', 'resnet34', 'resnet50'; module docstring), not yet recorded."""
    kind, depths = DEPTHS[name]
    c = scaled(64, width)
    # The stem's max pool follows a ReLU: its input is ≥ 0, so zero padding equals PyTorch's −∞ padding.
    layers: list[Module] = [*_conv_bn(in_channels, c, 7, 2, rng), ZeroPad2d(1),
                            MaxPool2d(3, 2, rounding="floor")]
    for i, (planes, blocks) in enumerate(zip(PLANES, depths, strict=True)):
        p = scaled(planes, width)
        layers.append(_stage(kind, c, p, blocks, 1 if i == 0 else 2, rng))
        c = p * EXPANSION[kind]
    model = Sequential(*layers, GlobalAvgPool2d(), Linear(c, num_classes, rng=rng))
    h, w = spatial_size(image_size)
    model.output_shape((1, h, w, in_channels))  # fails early, naming the layer, for a size too small
    return model


def resnet18(num_classes: int = 1000, in_channels: int = 3, image_size=224, *, rng: np.random.Generator,
             width: float = 1.0) -> Sequential:
    """torchvision's ResNet-18 for (N, H, W, in_channels) inputs; `width` scales every channel count."""
    return record(resnet("resnet18", num_classes, in_channels, image_size, rng, width), "resnet18", num_classes,
                  in_channels, image_size=image_size, width=width)


def resnet34(num_classes: int = 1000, in_channels: int = 3, image_size=224, *, rng: np.random.Generator,
             width: float = 1.0) -> Sequential:
    """torchvision's ResNet-34 for (N, H, W, in_channels) inputs; `width` scales every channel count."""
    return record(resnet("resnet34", num_classes, in_channels, image_size, rng, width), "resnet34", num_classes,
                  in_channels, image_size=image_size, width=width)


def resnet50(num_classes: int = 1000, in_channels: int = 3, image_size=224, *, rng: np.random.Generator,
             width: float = 1.0) -> Sequential:
    """torchvision's ResNet-50 (v1.5) for (N, H, W, in_channels) inputs; `width` scales every channel count."""
    return record(resnet("resnet50", num_classes, in_channels, image_size, rng, width), "resnet50", num_classes,
                  in_channels, image_size=image_size, width=width)
