"""Transfer learning: freezing, new heads, and loading pretrained weights — from a striate run or weights
file, or from a PyTorch / torchvision state dict: a `.pth`/`.pt` file (read without torch by
`torch_file.read_state_dict`) or safetensors.

PyTorch → striate conversion (per layer, by the striate layer's type):
- Conv2d `weight` (O, I, KH, KW) → (KH, KW, I, O); `bias` as is;
- Linear `weight` (out, in) → (in, out); when the Linear reads a flattened spatial volume (Flatten after an
  (H, W, C) map) its input axis is also re-ordered from torch's C·H·W flattening to striate's H·W·C;
- BatchNorm `weight`/`bias` → `gamma`/`beta`; `running_mean`, `running_var`, `num_batches_tracked` as is.
Names: `torch_name_map(model, arch)` pairs striate's parameterised layers, in order, with torch module names
— for torchvision's `alexnet` (use `alexnet(variant="torchvision")`), `vgg11…vgg19` and `vgg*_bn`, `resnet18`,
`resnet34`, `resnet50` and `googlenet` (the zoo's `googlenet_torchvision`; its auxiliary heads' keys are reported
as ignored), names in `torchvision_names.py`, or `"sequential"` for an `nn.Sequential` laid out exactly like the
striate model (same indices). Every load returns a `LoadReport` naming missing, unexpected, shape-mismatched and
ignored keys.
Values are never cast lossily: float64 arrays load only when every value is exactly a float32 (pass
`cast=True` to round), integer/bool arrays never load into weights (`nn.state.convert_for_load`), and a
refused load — bad dtype, or with `strict` a missing/unexpected/mismatched key — leaves the model unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..nn.containers import Sequential
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.norm import BatchNorm
from ..nn.shape import Flatten
from ..nn.state import convert_for_load
from . import torchvision_names
from .torch_file import read_state_dict
from .vgg import CONFIGS

# torch attribute names of each striate layer type's parameters and buffers
_TORCH_ATTRS = {
    Conv2d: {"weight": "weight", "bias": "bias"},
    Linear: {"weight": "weight", "bias": "bias"},
    BatchNorm: {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var",
                "num_batches_tracked": "num_batches_tracked"},
}


# ----- freezing and heads ------------------------------------------------------------------------
def freeze(model: Module, layers: int | None = None, *, names=None, upto: int | None = None) -> Module:
    """`model.freeze(layers, names=…, upto=…)`: see `Module.freeze`."""
    return model.freeze(layers, names=names, upto=upto)


def unfreeze(model: Module) -> Module:
    return model.unfreeze()


def replace_head(model: Sequential, num_classes: int, rng: np.random.Generator | None = None) -> Linear:
    """A fresh last Linear layer with `num_classes` outputs (see `Sequential.replace_head`)."""
    return _sequential(model, "replace_head").replace_head(num_classes, rng)


def trainable_parameters(model: Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def frozen_parameters(model: Module) -> list[str]:
    return [n for n, p in model.named_parameters() if not p.requires_grad]


def _sequential(model, what: str) -> Sequential:
    if not isinstance(model, Sequential):
        raise TypeError(f"{what}: expected a Sequential model, got {type(model).__name__}")
    return model


# ----- reports -------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What a load did. `missing`: the model's keys nothing was loaded into; `unexpected`: source keys
    nothing used; `mismatched`: (key, model shape, source shape); `ignored`: source keys dropped on purpose;
    `skipped`: model keys left as they were on request (e.g. a new head)."""
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} arrays" + (f" from {self.source}" if self.source else "")]
        if self.missing:
            lines.append(f"missing (left as initialised): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected (unused): {', '.join(self.unexpected)}")
        for key, want, got in self.mismatched:
            lines.append(f"shape mismatch: {key}: model {want}, source {got}")
        if self.skipped:
            lines.append(f"skipped on request: {', '.join(self.skipped)}")
        if self.ignored:
            lines.append(f"ignored: {', '.join(self.ignored)}")
        return "\n".join(lines)


def _finish(report: LoadReport, pending: list, strict: bool, what: str) -> LoadReport:
    """Copy the checked arrays `pending` [(target, value)] into the model, unless `strict` refuses the
    load: only after every array passed, so a refused load changes nothing."""
    if strict and not report.ok:
        raise KeyError(f"{what}: {report}")
    for target, value in pending:
        target[...] = value
    return report


# ----- striate weights ---------------------------------------------------------------------------
def read_weights(source) -> tuple[dict[str, np.ndarray], str]:
    """Arrays from a dict, a weights file (`.safetensors`, or a PyTorch `.pth`/`.pt` file in either of torch's
    formats: `read_state_dict`), or a striate run directory / checkpoints folder (its 'best' checkpoint, else
    'last'). Torch tensors in a dict are converted to NumPy."""
    if isinstance(source, dict):
        return {k: _numpy(v) for k, v in source.items()}, "a state dict"
    path = Path(os.fspath(source))
    if path.is_file():
        return read_state_dict(path), str(path)
    from ..train.checkpoint import CheckpointStore

    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    store = CheckpointStore(folder)
    tag = "best" if store.has("best") else "last"
    if not store.has(tag):
        raise FileNotFoundError(f"{str(source)!r} is neither a weights file nor a run directory with checkpoints")
    ckpt = store.load(tag)
    return dict(ckpt.weights), f"{path} ({tag} checkpoint {ckpt.generation})"


def _numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def load_pretrained(model: Module, source, *, skip_mismatched: bool = False, exclude=(), strict: bool = True,
                    cast: bool = False) -> LoadReport:
    """Load striate weights (dict, `.safetensors` or `.pth` file, or a run directory) into `model` in place.

    `skip_mismatched=True` leaves keys whose shapes differ as initialised (fine-tuning with a new head
    for a different number of classes) and lists them under `skipped`; `exclude` names keys (or dotted
    prefixes) not to load. With `strict`, missing or unexpected keys (after those) raise KeyError.
    `cast=True` rounds floating values the model's dtype cannot hold exactly (else: ValueError)."""
    arrays, where = read_weights(source)
    own = model._state_arrays()
    what = f"load_pretrained into {type(model).__name__}"
    report, pending = LoadReport(source=where), []
    excluded = [str(e) for e in exclude]

    def is_excluded(key):
        return any(key == e or key.startswith(f"{e}.") for e in excluded)

    for key, value in arrays.items():
        if key not in own:
            (report.ignored if is_excluded(key) else report.unexpected).append(key)
            continue
        if is_excluded(key):
            report.skipped.append(key)
            continue
        if tuple(value.shape) != tuple(np.shape(own[key])):
            if skip_mismatched:
                report.skipped.append(key)
            else:
                report.mismatched.append((key, tuple(np.shape(own[key])), tuple(value.shape)))
            continue
        pending.append((own[key], convert_for_load(key, value, own[key], cast=cast, what=what)))
        report.loaded.append(key)
    report.missing = sorted(set(own) - set(report.loaded) - set(report.skipped))
    return _finish(report, pending, strict, what)


# ----- torch weights -----------------------------------------------------------------------------
def _param_layers(model: Module) -> list[tuple[str, Module]]:
    """(name, layer) of every Conv2d, Linear and BatchNorm, in network order."""
    return [(n, m) for n, m in model.named_modules() if type(m) in _TORCH_ATTRS]


def _vgg_indices(depth: int, batch_norm: bool) -> list[str]:
    names, i = [], 0
    for v in CONFIGS[depth]:
        if v == "M":
            i += 1
            continue
        names.append(f"features.{i}")
        if batch_norm:
            names.append(f"features.{i + 1}")
        i += 3 if batch_norm else 2
    return names + ["classifier.0", "classifier.3", "classifier.6"]


def _torch_modules(arch: str) -> list[str] | None:
    if arch == "alexnet":
        return [f"features.{i}" for i in (0, 3, 6, 8, 10)] + [f"classifier.{i}" for i in (1, 4, 6)]
    for depth in CONFIGS:
        if arch in (f"vgg{depth}", f"vgg{depth}_bn"):
            return _vgg_indices(depth, arch.endswith("_bn"))
    return torchvision_names.module_names(arch)


def torch_arches() -> list[str]:
    """The `arch` names `torch_name_map` knows."""
    vggs = [f"vgg{d}{bn}" for d in CONFIGS for bn in ("", "_bn")]
    return ["alexnet", *vggs, *torchvision_names.ARCHES, "sequential"]


def torch_name_map(model: Module, arch: str | None = None) -> dict[str, str]:
    """striate key → torch key for every parameter and buffer of `model`.

    arch: torchvision's 'alexnet' (for `alexnet(variant="torchvision")`), 'vgg11'…'vgg19', 'vgg11_bn'…'vgg19_bn',
    'resnet18', 'resnet34', 'resnet50', 'googlenet' (for the zoo's `googlenet_torchvision`), or 'sequential' (a
    torch `nn.Sequential` with the striate model's layout); `torch_arches()` lists them. None: the model's own
    torchvision arch when it is a zoo model with torchvision's layout (`torchvision_names.arch_of`), else
    'sequential'."""
    if arch is None:
        arch = torchvision_names.arch_of(model) or "sequential"
    layers = _param_layers(model)
    if arch == "sequential":
        prefixes = [n for n, _ in layers]
    else:
        prefixes = _torch_modules(arch)
        if prefixes is None:
            raise ValueError(f"torch_name_map: unknown arch {arch!r}; choose from {', '.join(torch_arches())}")
        if len(prefixes) != len(layers):
            raise ValueError(f"torch_name_map: {arch!r} has {len(prefixes)} parameterised layers, the model has "
                             f"{len(layers)} ({', '.join(type(m).__name__ for _, m in layers[:8])}…): not that "
                             "architecture (alexnet needs variant='torchvision', "
                             "googlenet the zoo's googlenet_torchvision)")
    mapping = {}
    for (name, layer), tprefix in zip(layers, prefixes, strict=True):
        attrs = dict(_TORCH_ATTRS[type(layer)])
        if getattr(layer, "bias", True) is None:
            attrs.pop("bias")
        for ours, theirs in attrs.items():
            mapping[f"{name}.{ours}" if name else ours] = f"{tprefix}.{theirs}"
    return mapping


def _flattened_volumes(model: Module, input_shape) -> dict[int, tuple[int, int, int]]:
    """id(Linear) → the (H, W, C) volume it reads through a Flatten, for the top-level Sequential."""
    out: dict[int, tuple[int, int, int]] = {}
    if not isinstance(model, Sequential) or input_shape is None:
        return out
    shape, pending = (1, *tuple(input_shape)), None
    for m in model:
        if isinstance(m, Flatten) and len(shape) == 4:
            pending = tuple(shape[1:])
        elif isinstance(m, Linear) and pending is not None:
            if pending[0] * pending[1] > 1:
                out[id(m)] = pending
            pending = None
        elif m.num_parameters():
            pending = None
        shape = m.output_shape(shape)
    return out


def _default_input_shape(model: Module):
    config = getattr(model, "build_config", None) or {}
    if "image_size" in config and "in_channels" in config:
        size = config["image_size"]
        h, w = (size, size) if isinstance(size, int) else size
        return (int(h), int(w), int(config["in_channels"]))
    return None


def convert_torch_array(layer: Module, attr: str, value: np.ndarray, volume=None) -> np.ndarray:
    """One torch array in striate's layout for `layer`'s parameter `attr` (see the module docstring)."""
    value = np.asarray(value)
    if isinstance(layer, Conv2d) and attr == "weight" and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if isinstance(layer, Linear) and attr == "weight" and value.ndim == 2:
        if volume is not None:
            h, w, c = volume
            return value.reshape(value.shape[0], c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, value.shape[0])
        return value.T
    return value


def load_torch_weights(model: Module, source, *, arch: str | None = None, name_map: dict[str, str] | None = None,
                       input_shape=None, skip_mismatched: bool = False, strict: bool = True,
                       cast: bool = False) -> LoadReport:
    """Load a PyTorch state dict (a `.pth`/`.pt` or `.safetensors` file, or a dict of arrays/tensors) into `model`.

    `name_map` (striate key → torch key) defaults to `torch_name_map(model, arch)` (arch None: the zoo model's
    torchvision arch, else 'sequential'); keys the arch drops on purpose
    (GoogLeNet's auxiliary classifiers `aux1.*`, `aux2.*`) are reported as ignored. `input_shape` (H, W, C)
    locates the FC layers that read a flattened volume (default: from `model.build_config`). Torch's
    `num_batches_tracked` is loaded when the model has it and otherwise ignored; `skip_mismatched` keeps
    differently shaped keys (a head for another number of classes) as initialised. `cast=True` rounds
    floating values the model's dtype cannot hold exactly (else: ValueError); integer/bool arrays never load."""
    arrays, where = read_weights(source)
    arch = arch if arch is not None else torchvision_names.arch_of(model) or "sequential"
    mapping = torch_name_map(model, arch) if name_map is None else dict(name_map)
    volumes = _flattened_volumes(model, input_shape if input_shape is not None else _default_input_shape(model))
    layers = dict(model.named_modules())
    own = model._state_arrays()
    what = f"load_torch_weights into {type(model).__name__}"
    report, pending, used = LoadReport(source=where), [], set()
    for key, tkey in mapping.items():
        if key not in own:
            raise KeyError(f"load_torch_weights: name_map names {key!r}, which the model does not have")
        if tkey not in arrays:
            report.missing.append(key)
            continue
        used.add(tkey)
        lname, _, attr = key.rpartition(".")
        layer = layers[lname]
        value = convert_torch_array(layer, attr, arrays[tkey], volumes.get(id(layer)))
        if tuple(value.shape) != tuple(np.shape(own[key])):
            if skip_mismatched:
                report.skipped.append(key)
            else:
                report.mismatched.append((f"{key} ← {tkey}", tuple(np.shape(own[key])), tuple(value.shape)))
            continue
        pending.append((own[key], convert_for_load(f"{key} ← {tkey}", value, own[key], cast=cast, what=what)))
        report.loaded.append(key)
    report.missing += sorted(set(own) - set(mapping))
    for tkey in sorted(set(arrays) - used):
        dropped = tkey.endswith("num_batches_tracked") or torchvision_names.ignored(arch, tkey)
        (report.ignored if dropped else report.unexpected).append(tkey)
    return _finish(report, pending, strict, what)
