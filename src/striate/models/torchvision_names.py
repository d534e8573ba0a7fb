"""torchvision's module names for the zoo's ResNets and GoogLeNet, in striate's layer order.

`module_names(arch)` lists the torch module (prefix) of every Conv2d, BatchNorm and Linear of the striate model,
in the order `transfer.torch_name_map` walks them: for `resnet18/34/50` (`models.resnet`)

    conv1, bn1, layer1.0.conv1, layer1.0.bn1, layer1.0.conv2, layer1.0.bn2[, .conv3, .bn3][, .downsample.0,
    .downsample.1], layer1.1…, …, layer4.…, fc

(a block's body comes before its shortcut in both), and for `googlenet` (`models.googlenet_torchvision`)
conv1.conv, conv1.bn, conv2…, conv3…, then per Inception block branch1.{conv,bn}, branch2.{0,1}.{conv,bn},
branch3.{0,1}.{conv,bn}, branch4.1.{conv,bn}, and fc. `ignored(arch, key)`: source keys dropped on purpose
(GoogLeNet's auxiliary classifiers, used by torchvision only in training). `ZOO`: each torchvision arch's zoo
model (name and keywords), and `arch_of(model)` the reverse, from a model's `build_config`.
"""

from __future__ import annotations

from .googlenet_torchvision import STAGES
from .resnet import DEPTHS

ARCHES = (*DEPTHS, "googlenet")
_IGNORED = {"googlenet": ("aux1.", "aux2.")}
# torchvision arch → (zoo name, its keywords): the zoo model its state dicts load into
ZOO: dict[str, tuple[str, dict]] = {
    **{arch: (arch, {}) for arch in DEPTHS}, "googlenet": ("googlenet_torchvision", {}),
    "alexnet": ("alexnet", {"variant": "torchvision"}),
    **{f"vgg{d}{bn}": (f"vgg{d}{bn}", {}) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
}


def _resnet(arch: str) -> list[str]:
    kind, depths = DEPTHS[arch]
    convs = ("conv1", "bn1", "conv2", "bn2") + (("conv3", "bn3") if kind == "bottleneck" else ())
    names = ["conv1", "bn1"]
    for layer, blocks in enumerate(depths, start=1):
        for b in range(blocks):
            names += [f"layer{layer}.{b}.{c}" for c in convs]
            # torchvision's rule (stride ≠ 1 or a width change) holds at any width multiplier: only first blocks,
            # in every layer for bottlenecks (planes → 4·planes), from layer2 on for basic blocks (stride 2)
            if b == 0 and (layer > 1 or kind == "bottleneck"):
                names += [f"layer{layer}.0.downsample.0", f"layer{layer}.0.downsample.1"]
    return names + ["fc"]


def _googlenet() -> list[str]:
    names = [f"conv{i}.{part}" for i in (1, 2, 3) for part in ("conv", "bn")]
    branches = ("branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1")
    for block in " ".join(STAGES).split():
        names += [f"inception{block}.{b}.{part}" for b in branches for part in ("conv", "bn")]
    return names + ["fc"]


def module_names(arch: str) -> list[str] | None:
    """torch module names of `arch`'s parameterised layers in striate's order, or None for another arch."""
    if arch in DEPTHS:
        return _resnet(arch)
    if arch == "googlenet":
        return _googlenet()
    return None


def ignored(arch: str, key: str) -> bool:
    """Whether torch key `key` of an `arch` state dict is left out on purpose (reported as ignored)."""
    return key.startswith(_IGNORED.get(arch, ()))


def arch_of(model) -> str | None:
    """The torchvision arch whose state dicts load into `model` by name (from its `build_config`: a zoo model of
    `ZOO` built with those keywords), else None."""
    config = getattr(model, "build_config", None)
    if not isinstance(config, dict):
        return None
    for arch, (name, kw) in ZOO.items():
        if config.get("name") == name and all(config.get(k) == v for k, v in kw.items()):
            return arch
    return None
