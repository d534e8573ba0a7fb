"""torchvision's GoogLeNet: the layout of its published weights (`googlenet-1378be20.pth`), which load by name
with `transfer.load_torch_weights(model, state_dict, arch="googlenet")`.

It differs from the paper's network (`googlenet.googlenet`): every convolution is torchvision's BasicConv2d
(conv without bias - BatchNorm eps 0.001 - relu), there is no LRN, the Inception "5×5" branch is a 3×3
convolution (a known torchvision quirk, kept because the weights have that shape), pools use ceil rounding,
the last down-sampling pool is 2×2/2, and dropout before the classifier is 0.2. Input 224×224×3:

    [transform_input] - conv7×7/2-64 (pad 3) - maxpool3/2 - conv1×1-64 - conv3×3-192 (pad 1) - maxpool3/2
    inception 3a, 3b - maxpool3/2 - 4a … 4e - maxpool2/2 - 5a, 5b - global average pool - dropout - fc-C

6,624,904 parameters at C = 1000 without the two auxiliary classifiers, which torchvision uses only in
training: this model has none, and `load_torch_weights` reports their keys (`aux1.*`, `aux2.*`) as ignored.

`transform_input=True` (what torchvision sets for its pretrained weights) puts a fixed `ChannelAffine` first:
for 3 channels normalised with ImageNet's mean and std it computes x·std/0.5 + (mean − 0.5)/0.5, the
(pixel − 0.5)/0.5 scaling the weights were trained on, so the model takes the usual ImageNet normalisation.
The Inception pool branch's 3×3/1 max pool pads 1 with `ZeroPad2d`: its input comes after a ReLU (or a pool of
ReLU outputs), so it is ≥ 0 and a zero pad equals PyTorch's −∞ pad.
"""

from __future__ import annotations

import numpy as np

from ..data.preprocess import FIXED_STATISTICS
from ..nn.activation import ReLU
from ..nn.affine import ChannelAffine
from ..nn.containers import Concat, Sequential
from ..nn.conv import Conv2d
from ..nn.dropout import Dropout
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.norm import BatchNorm
from ..nn.pad import ZeroPad2d
from ..nn.pool import GlobalAvgPool2d, MaxPool2d
from ._build import record, scaled, spatial_size
from .googlenet import INCEPTION, inception_out

IMAGENET_MEAN, IMAGENET_STD = FIXED_STATISTICS["imagenet"]  # what preprocess = "imagenet" applies
STAGES = ("3a 3b", "4a 4b 4c 4d 4e", "5a 5b")


def basic_conv(cin: int, cout: int, k: int, rng, stride: int = 1, pad: int = 0) -> list[Module]:
    """torchvision's BasicConv2d: conv (no bias, PyTorch's floor rounding) - BatchNorm (eps 0.001) - relu."""
    return [Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False, rounding="floor", rng=rng),
            BatchNorm(cout, eps=1e-3), ReLU()]


def inception(cin: int, spec, rng, width: float = 1.0) -> Concat:
    """torchvision's Inception block; `spec` as `googlenet.INCEPTION`, scaled by `width` (its "5×5" is 3×3).
    x: (N, H, W, cin) → (N, H, W, 1×1 + 3×3 + 5×5 + pool projection)."""
    c1, r3, c3, r5, c5, cp = (scaled(v, width) for v in spec)
    return Concat(Sequential(*basic_conv(cin, c1, 1, rng)),
                  Sequential(*basic_conv(cin, r3, 1, rng), *basic_conv(r3, c3, 3, rng, pad=1)),
                  Sequential(*basic_conv(cin, r5, 1, rng), *basic_conv(r5, c5, 3, rng, pad=1)),
                  Sequential(ZeroPad2d(1), MaxPool2d(3, 1), *basic_conv(cin, cp, 1, rng)))


def transform_input_layer() -> ChannelAffine:
    """torchvision's `transform_input` (module docstring) as a fixed layer."""
    return ChannelAffine(tuple(s / 0.5 for s in IMAGENET_STD), tuple((m - 0.5) / 0.5 for m in IMAGENET_MEAN))


def googlenet_torchvision(num_classes: int = 1000, in_channels: int = 3, image_size=224, *,
                          rng: np.random.Generator, width: float = 1.0, dropout: float = 0.2,
                          transform_input: bool = True) -> Sequential:
    """torchvision's GoogLeNet for (N, H, W, in_channels) inputs (any size ≥ 32 builds); module docstring.
    `width` scales every channel count; `transform_input` needs 3 channels."""
    if transform_input and in_channels != 3:
        raise ValueError(f"googlenet_torchvision: transform_input re-normalises 3 (RGB) channels, got "
                         f"in_channels={in_channels}; give transform_input=false")
    c64, c192 = scaled(64, width), scaled(192, width)
    layers: list[Module] = [transform_input_layer()] if transform_input else []
    layers += [*basic_conv(in_channels, c64, 7, rng, stride=2, pad=3), MaxPool2d(3, 2, rounding="ceil"),
               *basic_conv(c64, c64, 1, rng), *basic_conv(c64, c192, 3, rng, pad=1), MaxPool2d(3, 2, rounding="ceil")]
    c = c192
    for i, names in enumerate(STAGES):
        if i:
            layers.append(MaxPool2d(3 if i == 1 else 2, 2, rounding="ceil"))
        for name in names.split():
            layers.append(inception(c, INCEPTION[name], rng, width))
            c = inception_out(INCEPTION[name], width)
    model = Sequential(*layers, GlobalAvgPool2d(), Dropout(dropout, rng=rng), Linear(c, num_classes, rng=rng))
    h, w = spatial_size(image_size)
    model.output_shape((1, h, w, in_channels))  # fails early, naming the layer, for a size too small
    return record(model, "googlenet_torchvision", num_classes, in_channels, image_size=image_size, width=width,
                  dropout=dropout, transform_input=transform_input)
