"""Small helpers shared by the zoo's constructors (lenet, alexnet, vgg, googlenet)."""

from __future__ import annotations

import numpy as np

from ..nn.module import Module


def spatial_size(image_size) -> tuple[int, int]:
    if isinstance(image_size, int | np.integer):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def scaled(channels: int, width: float) -> int:
    """A channel count times the width multiplier, at least 1."""
    if width <= 0:
        raise ValueError(f"width multiplier must be > 0, got {width!r}")
    return max(1, int(round(channels * width)))


def record(model: Module, name: str, num_classes: int, in_channels: int, **kw) -> Module:
    """Attach `build_config` in the registry's format (`striate.models.get` writes the same dict), so a
    model built by calling its constructor directly can be rebuilt with `striate.models.from_config`."""
    config = {"name": name, "num_classes": int(num_classes), "in_channels": int(in_channels)}
    config.update({k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()})
    object.__setattr__(model, "build_config", config)
    return model
