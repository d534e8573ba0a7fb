"""LeNet-5 (LeCun et al. 1998) on 32×32 images.

    conv5×5-6 - act - pool2 - conv5×5-16 - act - pool2 - flatten - fc-120 - act - fc-84 - act - fc-C

Documented choices: C3 connects to every S2 map (the paper's partial connection table is dropped, as in
every modern re-implementation), C5 is a fully connected layer on the 5×5×16 volume (the paper's
"convolution" C5 covers its whole input, so the two are the same), the output is a plain affine layer
(not the paper's RBF units). With 1 input channel and 10 classes that is 61,706 parameters and 416,520 MACs.

`lenet5` keeps the paper's tanh and average pooling; `lenet5_cifar` is the same network on 32×32×3 with
ReLU and max pooling (what trains well on CIFAR-10), widths scaled by `width`.
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import ReLU, Tanh
from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.pool import AvgPool2d, MaxPool2d
from ..nn.shape import Flatten
from ._build import record, scaled, spatial_size


def _lenet(num_classes, in_channels, image_size, rng, width, activation, pool):
    c1, c3, f5, f6 = (scaled(v, width) for v in (6, 16, 120, 84))
    if activation not in ("tanh", "relu") or pool not in ("avg", "max"):
        raise ValueError(f"lenet5: activation must be 'tanh' or 'relu' and pool 'avg' or 'max', got "
                         f"activation={activation!r}, pool={pool!r}")
    act = {"tanh": Tanh, "relu": ReLU}[activation]
    pooling = {"avg": AvgPool2d, "max": MaxPool2d}[pool]
    init = "xavier" if activation == "tanh" else "he"
    features = Sequential(Conv2d(in_channels, c1, 5, rng=rng, init=init), act(), pooling(2),
                          Conv2d(c1, c3, 5, rng=rng, init=init), act(), pooling(2))
    h, w = spatial_size(image_size)
    _, fh, fw, fc = features.output_shape((1, h, w, in_channels))
    return Sequential(*features, Flatten(), Linear(fh * fw * fc, f5, rng=rng, init=init), act(),
                      Linear(f5, f6, rng=rng, init=init), act(), Linear(f6, num_classes, rng=rng, init=init))


def lenet5(num_classes: int = 10, in_channels: int = 1, image_size=32, *, rng: np.random.Generator,
           width: float = 1.0, activation: str = "tanh", pool: str = "avg") -> Sequential:
    """LeNet-5 as in the paper (tanh, average pooling), input (N, 32, 32, in_channels)."""
    model = _lenet(num_classes, in_channels, image_size, rng, width, activation, pool)
    return record(model, "lenet5", num_classes, in_channels, image_size=image_size, width=width,
                  activation=activation, pool=pool)


def lenet5_cifar(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
                 width: float = 1.0) -> Sequential:
    """LeNet-5 for CIFAR: 32×32×3 input, ReLU and 2×2 max pooling (62,006 parameters at width 1)."""
    model = _lenet(num_classes, in_channels, image_size, rng, width, "relu", "max")
    return record(model, "lenet5_cifar", num_classes, in_channels, image_size=image_size, width=width)
