"""The model registry, the one table from a model's name to its builder.

Every builder is `f(num_classes, in_channels, image_size=..., *, rng, **its own keywords) -> Module`;
`get` records the call in `model.build_config`, so `from_config` rebuilds the architecture from a
checkpoint (the weights come from the checkpoint). A builder's defaults for `num_classes`, `in_channels`
and `image_size` are its native input: `native_input(name)`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable

import numpy as np

from ..nn.module import Module
from . import alexnet, cifar, fast, googlenet, googlenet_torchvision, layers, lenet, resnet, speedrun, vgg
from .keywords import check_value, describe

_BUILDERS: dict[str, Callable[..., Module]] = {
    "three_layer": cifar.three_layer, "digits_net": cifar.digits_net, "reference": cifar.reference,
    "fast_cifar": fast.fast_cifar, "speedrun_cifar": speedrun.speedrun_cifar,
    "lenet5": lenet.lenet5, "lenet5_cifar": lenet.lenet5_cifar,
    "alexnet": alexnet.alexnet, "alexnet_cifar": alexnet.alexnet_cifar,
    "googlenet": googlenet.googlenet, "googlenet_cifar": googlenet.googlenet_cifar,
    "googlenet_torchvision": googlenet_torchvision.googlenet_torchvision,
    "resnet18": resnet.resnet18, "resnet34": resnet.resnet34, "resnet50": resnet.resnet50,
    "vgg11": vgg.vgg11, "vgg13": vgg.vgg13, "vgg16": vgg.vgg16, "vgg19": vgg.vgg19,
    "vgg11_bn": vgg.vgg11_bn, "vgg13_bn": vgg.vgg13_bn, "vgg16_bn": vgg.vgg16_bn, "vgg19_bn": vgg.vgg19_bn,
    "vgg11_cifar": vgg.vgg11_cifar, "vgg13_cifar": vgg.vgg13_cifar, "vgg16_cifar": vgg.vgg16_cifar,
    "vgg19_cifar": vgg.vgg19_cifar,
    "layers": layers.layer_list,  # a run file's [model] layers = [...]
}
_FIXED = ("num_classes", "in_channels", "image_size", "rng")  # every builder's, set by the caller
SET_BY_STRIATE = {  # a run's [model] table may not give these: where they come from instead
    "num_classes": "the dataset's class count",
    "in_channels": "the images' channels; image_size = \"HxWxC\" at the run file's top level converts them",
    "image_size": "the images' size; image_size = \"HxW\" at the run file's top level resizes them",
    "rng": "the run's seed; give seed = N",
}


def names() -> list[str]:
    """Registered model names."""
    return sorted(_BUILDERS)


def register(name: str, builder: Callable[..., Module]) -> None:
    """Add a builder `f(num_classes, in_channels, *, rng, **kw) -> Module` under `name`."""
    if not callable(builder):
        raise TypeError(f"register({name!r}): builder must be callable, got {builder!r}")
    _BUILDERS[name] = builder


def builder(name: str) -> Callable[..., Module]:
    """The builder registered under `name` (ValueError naming the nearest names otherwise)."""
    if name not in _BUILDERS:
        hint = difflib.get_close_matches(name, names(), n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"unknown model {name!r}{maybe}; choose from {', '.join(names())}")
    return _BUILDERS[name]


def keywords(name: str) -> dict[str, object] | None:
    """The builder's own keywords and their defaults (None when it takes any keyword)."""
    params = inspect.signature(builder(name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {k: p.default for k, p in params.items() if k not in _FIXED and p.kind is p.KEYWORD_ONLY}


def takes(name: str) -> str:
    """'channels=16, width=1.0, hidden=64': the keywords a user may give model `name`, with their defaults."""
    if builder(name) is layers.layer_list:
        return "layers (a list of layer tables)"
    return describe(inspect.signature(builder(name)).parameters, skip=_FIXED)


def check_keywords(name: str, kw: dict, user: bool = False) -> None:
    """ValueError naming a keyword the builder does not take, with the ones it does. `user`: `kw` is a run's
    [model] table, which may not set the keywords striate sets itself (num_classes, in_channels, image_size,
    rng), and whose values must have the types of the builder's signature."""
    own = keywords(name)
    if user:
        check_fixed(name, kw)
    for k in kw:
        if own is not None and k not in own and k not in _FIXED:
            hint = difflib.get_close_matches(k, list(own), n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"model {name!r} takes no keyword {k!r}{maybe}; its keywords: {takes(name)}")
    if user:
        params = inspect.signature(builder(name)).parameters
        for k, v in kw.items():
            if k in params and k != "layers":  # a layer list is checked table by table (layers.check)
                check_value(v, params[k], f"model.{k}")


def check_fixed(name: str, kw: dict) -> None:
    """ValueError when a run's [model] table `kw` for model `name` gives a keyword striate sets itself."""
    for k in kw:
        if k in SET_BY_STRIATE:
            raise ValueError(f"model.{k} is set by striate ({SET_BY_STRIATE[k]}), not in [model]; model {name!r} takes "
                             f"{takes(name)}")


def native_input(name: str) -> tuple[int, int, int] | None:
    """(H, W, C) from the builder's defaults, or None when it has no default image size."""
    params = inspect.signature(builder(name)).parameters
    size = params.get("image_size")
    channels = params.get("in_channels")
    if size is None or channels is None or inspect.Parameter.empty in (size.default, channels.default):
        return None
    h, w = (size.default, size.default) if isinstance(size.default, int) else size.default
    return int(h), int(w), int(channels.default)


def default_classes(name: str) -> int:
    """The builder's default number of classes (1000 for the ImageNet models), else 10."""
    p = inspect.signature(builder(name)).parameters.get("num_classes")
    return int(p.default) if p is not None and p.default is not inspect.Parameter.empty else 10


def get(name: str, num_classes: int, in_channels: int, rng: np.random.Generator | None = None, **kw) -> Module:
    """Build model `name` for `num_classes` classes and `in_channels` input channels. Keywords go to the
    builder (e.g. `image_size=(28, 28)`, `hidden=100`); an unknown keyword is an error naming it."""
    fn = builder(name)
    check_keywords(name, kw)
    model = fn(int(num_classes), int(in_channels), rng=rng if rng is not None else np.random.default_rng(), **kw)
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
