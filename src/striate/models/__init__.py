"""Model registry: `get(name, num_classes, in_channels, rng, **kw)` builds a model by name and records
the call in `model.build_config`; `from_config(config)` rebuilds it (weights come from a checkpoint)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from ..nn.module import Module

# name → "module:function" inside striate.models, imported on first use (keeps `import striate` light).
# Every builder is `f(num_classes, in_channels, image_size=..., *, rng, **its own keywords) -> Module`.
_BUILDERS: dict[str, str | Callable[..., Module]] = {
    "three_layer": "cifar:three_layer",
    "digits_net": "cifar:digits_net",
    "reference": "cifar:reference",
    "lenet5": "lenet:lenet5",
    "lenet5_cifar": "lenet:lenet5_cifar",
    "alexnet": "alexnet:alexnet",
    "alexnet_cifar": "alexnet:alexnet_cifar",
    "googlenet": "googlenet:googlenet",
    "googlenet_cifar": "googlenet:googlenet_cifar",
    "fast_cifar": "fast:fast_cifar",
    **{f"vgg{d}{suffix}": f"vgg:vgg{d}{suffix}" for d in (11, 13, 16, 19) for suffix in ("", "_bn", "_cifar")},
}


def names() -> list[str]:
    """Registered model names."""
    return sorted(_BUILDERS)


def register(name: str, builder: Callable[..., Module]) -> None:
    """Add a builder `f(num_classes, in_channels, *, rng, **kw) -> Module` under `name`."""
    if not callable(builder):
        raise TypeError(f"register({name!r}): builder must be callable, got {builder!r}")
    _BUILDERS[name] = builder


def _builder(name: str) -> Callable[..., Module]:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {names()}")
    target = _BUILDERS[name]
    if callable(target):
        return target
    module, attr = target.split(":")
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model {name!r} is registered as {target!r}, which cannot be loaded: {e}") from None


def get(name: str, num_classes: int, in_channels: int, rng: np.random.Generator | None = None, **kw) -> Module:
    """Build model `name` for `num_classes` classes and `in_channels` input channels. Keywords go to the
    builder (e.g. `image_size=(28, 28)`, `hidden=100`); an unknown keyword is an error naming it."""
    builder = _builder(name)
    rng = rng if rng is not None else np.random.default_rng()
    try:
        model = builder(int(num_classes), int(in_channels), rng=rng, **kw)
    except TypeError as e:
        raise TypeError(f"model {name!r}: {e}") from None
    config = {"name": name, "num_classes": int(num_classes), "in_channels": int(in_channels)}
    config.update({k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()})
    recorded = getattr(model, "build_config", None)  # a builder may record its full keyword set itself
    if not (isinstance(recorded, dict) and recorded.get("name") == name):
        object.__setattr__(model, "build_config", config)
    return model


def from_config(config: dict, rng: np.random.Generator | None = None) -> Module:
    """Rebuild a model from its `build_config` (freshly initialised; load the weights afterwards)."""
    config = dict(config)
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()
          if k not in ("name", "num_classes", "in_channels")}
    return get(config["name"], config["num_classes"], config["in_channels"], rng=rng, **kw)


__all__ = ["from_config", "get", "names", "register"]
