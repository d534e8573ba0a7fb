"""The fastest known CIFAR-10 recipe's network, in striate's layers (Keller Jordan's airbench94, read from its
published source; this is striate's own build): a frozen 2×2 whitening convolution fitted from the training
images' patch PCA (the notes' whitening, applied to patches), GELU, then three blocks of
conv3×3 → maxpool 2 → BN → GELU → conv3×3 → BN → GELU at widths 64, 256, 256, a max over the last map, a
bias-free linear layer and a fixed output scale of 1/9. The convolutions have no bias and start as identities
on their first C_in filters (Dirac), the BatchNorms keep γ = 1 (only β trains) with ε 1e-12 and momentum 0.4
(PyTorch's convention; airbench writes 0.6). 118 M MACs per 32×32 image.
"""

from __future__ import annotations

import numpy as np

from ..nn.activation import GELU
from ..nn.affine import Scale
from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.norm import BatchNorm
from ..nn.pool import MaxPool2d
from ..nn.shape import Flatten
from ..nn.whitening import PatchWhitening
from ._build import record, scaled, spatial_size


def _block(c_in: int, c_out: int, rng, momentum: float, eps: float, init: str, scale: bool) -> list:
    def conv(a, b):
        return Conv2d(a, b, 3, padding=1, bias=False, init=init, rng=rng)

    def norm(c):
        return BatchNorm(c, eps=eps, momentum=momentum, scale=scale)

    return [conv(c_in, c_out), MaxPool2d(2, rounding="floor"), norm(c_out), GELU(),
            conv(c_out, c_out), norm(c_out), GELU()]


def speedrun_cifar(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
                   widths: tuple[int, int, int] = (64, 256, 256), whiten_kernel: int = 2, whiten_eps: float = 5e-4,
                   whiten_method: str = "pca",
                   whiten_bias_epochs: int = 3, bn_momentum: float = 0.4, bn_eps: float = 1e-12,
                   output_scale: float = 1 / 9, conv_init: str = "dirac", bn_scale: bool = False,
                   width: float = 1.0) -> Sequential:
    """(N, H, W, in_channels) → (N, num_classes) scores. The whitening layer is fitted on the training images
    by the run (`PatchWhitening.fit`) before the first step; its bias trains for `whiten_bias_epochs` epochs.
    `width` scales the three block widths. The ablation's switches: `whiten_method` "zca" fits ZCA filters
    instead of airbench's PCA, "learned" makes the first layer an ordinary trained Conv2d of the same shape
    (PyTorch's default init); `conv_init` of the block convolutions (e.g. "torch"); `bn_scale=True` trains γ."""
    if whiten_method not in ("pca", "zca", "learned"):
        raise ValueError(f"speedrun_cifar: whiten_method must be 'pca', 'zca' or 'learned', got {whiten_method!r}")
    h, w = spatial_size(image_size)
    h, w = h - whiten_kernel + 1, w - whiten_kernel + 1
    for _ in range(3):
        h, w = h // 2, w // 2
    if min(h, w) < 1:
        raise ValueError(f"speedrun_cifar: images of {spatial_size(image_size)} are too small for three 2×2 poolings "
                         f"after a {whiten_kernel}×{whiten_kernel} whitening convolution")
    if whiten_method == "learned":
        white = Conv2d(in_channels, 2 * in_channels * whiten_kernel ** 2, whiten_kernel, init="torch", rng=rng)
    else:
        white = PatchWhitening(in_channels, whiten_kernel, eps=whiten_eps, bias_epochs=whiten_bias_epochs or None,
                               method=whiten_method, rng=rng)
    c = white.out_channels
    layers = [white, GELU()]
    for out in (scaled(b, width) for b in widths):
        layers += _block(c, out, rng, bn_momentum, bn_eps, conv_init, bn_scale)
        c = out
    layers += [MaxPool2d((h, w)), Flatten(), Linear(c, num_classes, bias=False, rng=rng), Scale(output_scale)]
    return record(Sequential(*layers), "speedrun_cifar", num_classes, in_channels, image_size=image_size,
                  widths=tuple(widths), whiten_kernel=whiten_kernel, whiten_eps=whiten_eps,
                  whiten_method=whiten_method, whiten_bias_epochs=whiten_bias_epochs, bn_momentum=bn_momentum,
                  bn_eps=bn_eps, output_scale=output_scale, conv_init=conv_init, bn_scale=bn_scale, width=width)
