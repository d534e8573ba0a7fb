"""Fine-tuning onto new data: a source (a run directory or a weights file), the source architecture rebuilt
for the new data's image shape and classes, the source weights transferred layer by layer, and freezing.

A layer is the unit of transfer: it keeps the source's weights only if every one of its arrays fits (same
name, same shape); otherwise the whole layer keeps its fresh initialisation (a Linear whose weight changed
shape does not keep its old bias), and the reason is recorded: the shape changed, or the source has no such
arrays. A re-initialised layer is never frozen, whatever `freeze` asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config as cfg
from .data import INIT
from .directory import RunDir

PREPROCESSING = ("preprocess", "n_components", "whiten_eps")  # the keys that decide a run's net input, copied together
BASES = ("pca", "whiten", "zca")  # preprocessings whose fitted statistics are a basis of the source's data


@dataclass
class Source:
    build_config: dict
    weights: dict | None  # None: a PyTorch file, read by load_torch_weights
    preprocess: str | None  # the source run's preprocessing name (None for a weights file)
    input_shape: tuple | None
    description: str
    path: str
    torch_arch: str | None = None
    settings: dict = field(default_factory=dict)  # the source's PREPROCESSING keys (a run's, or published weights'
    # input convention: preprocess, image_size, shorter_side), applied unless the fine-tune's own flags say
    fitted: list | None = None  # the source checkpoint's fitted preprocessing statistics
    published: object = None  # a models.pretrained.Published: the architecture's name map, input convention

    def fitted_for(self, config: dict):
        """`build`'s `fitted=` for a fine-tune with `config`: the source's fitted statistics for images of the
        source's shape when the preprocessing settings match and the preprocessing is a basis fitted to the data
        (pca, whiten, zca: a refit would rotate the inputs the transferred first layer reads); None (refit)
        otherwise."""
        same = self.fitted is not None and all(config.get(k) == v for k, v in self.settings.items())
        if not same or self.settings.get("preprocess") not in BASES:
            return None
        return lambda shape: self.fitted if tuple(shape) == tuple(self.input_shape or ()) else None


def read_source(path: str, model: str = "", torch_arch: str | None = None) -> Source:
    """The source of a fine-tune: a run directory (its best checkpoint, else its last); published weights
    'torchvision:NAME' (`models.pretrained`: downloaded once into the cache, verified); or a weights file of
    the architecture `model` names — a PyTorch file (.pth/.pt, or a .safetensors whose keys are torchvision's)
    of a published NAME, read with that architecture's name map, or a file holding striate's own keys (any
    format `read_weights` reads). `torch_arch` names the PyTorch key layout of a file whose architecture is
    not torchvision's ('sequential': an nn.Sequential laid out like the striate model)."""
    from ..models import pretrained
    from ..models.transfer import read_weights

    if pretrained.is_published(path):
        try:
            entry = pretrained.lookup(path)
        except ValueError as e:
            raise cfg.ConfigError(f"--from: {e}") from None
        if model and model not in (entry.name, entry.model):
            raise cfg.ConfigError(f"--from {path} names its architecture ({entry.model}): drop --model {model}")
        return _published(entry, str(pretrained.fetch(entry)), f"{path} ({pretrained.cached_path(entry)})")
    p = Path(path)
    if p.is_dir():
        directory = RunDir(p).require()
        checkpoint = directory.checkpoint("best")
        meta = RunDir.meta(checkpoint)
        tag = "best" if "best" in checkpoint.tags else "last"
        config = directory.read_config()
        return Source(dict(meta["model"]), dict(checkpoint.weights), config.get("preprocess"),
                      tuple(meta["input_shape"]), f"{p} ({tag} checkpoint)", str(p),
                      settings={k: config[k] for k in PREPROCESSING if k in config}, fitted=meta.get("preprocess"))
    if not p.is_file():
        raise cfg.ConfigError(f"--from {path!r}: no such run directory, weights file or torchvision:NAME")
    if not model and not torch_arch:
        raise cfg.ConfigError(f"--from a weights file needs --model NAME (the architecture: a zoo model, or one of "
                              f"torchvision's for a PyTorch file: {', '.join(pretrained.names())})")
    entry = _entry(model, torch_arch)
    if torch_arch:
        if entry is None:  # a layout of the user's own (sequential): the file's keys are torch's
            return Source({"name": model}, None, None, None, str(p), str(p), torch_arch)
        from ..console import note

        note(f"--torch-arch {torch_arch} is not needed: --model {entry.name} names the architecture and its "
             "PyTorch layout")
        return _published(entry, str(p), str(p), torch_arch)
    if p.suffix.lower() in TORCH_SUFFIXES and entry is not None:
        return _published(entry, str(p), str(p))
    weights, where = read_weights(p)
    if entry is not None and _torch_keys(weights, entry):
        return _published(entry, str(p), where)
    return Source({"name": model}, weights, None, None, where, str(p))


TORCH_SUFFIXES = (".pth", ".pt")  # files torch.save writes: always PyTorch's key names and layouts


def _entry(model: str, torch_arch: str | None):
    """The published architecture `model` (or the deprecated `torch_arch`) names: by published name
    ('googlenet') or zoo name ('googlenet_torchvision'), agreeing with `torch_arch` when both are given."""
    from ..models.pretrained import PUBLISHED

    for e in PUBLISHED.values():
        if (not model or model in (e.name, e.model)) and (not torch_arch or torch_arch == e.arch):
            return e
    return None


def _torch_keys(weights: dict, entry) -> bool:
    """Whether a .safetensors file holds PyTorch's keys for `entry`'s architecture rather than striate's."""
    from ..models import registry
    from ..models.transfer import torch_name_map
    from ..nn.init import shapes_only

    with shapes_only():
        model = registry.get(entry.model, 1000, 3, rng=np.random.default_rng(0), **entry.keywords)
    names = torch_name_map(model, entry.arch)
    return len(set(weights) & set(names.values())) > len(set(weights) & set(names))


def _published(entry, path: str, description: str, torch_arch: str | None = None) -> Source:
    """A PyTorch file of a published architecture: its zoo model, its name map, its input convention."""
    c = entry.convention
    settings = {"preprocess": c.preprocess, "image_size": f"{c.crop}x{c.crop}x3", "shorter_side": c.resize}
    return Source(entry.build_config(), None, None, None, description, path, torch_arch or entry.arch,
                  settings=settings, published=entry)


@dataclass
class Transfer:
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[dict] = field(default_factory=list)  # {layer, class, arrays, reason}
    frozen: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"loaded": self.loaded, "reinitialised": self.reinitialised, "frozen_parameters": self.frozen,
                "unexpected": self.unexpected}


def _layers(model) -> dict[str, list[str]]:
    """Each layer with parameters or buffers (dotted path) → the names of its arrays."""
    layers: dict[str, list[str]] = {}
    for name in model.state_dict():
        layers.setdefault(name.rpartition(".")[0], []).append(name)
    return layers


def transfer(source: Source, model, freeze: int = 0, cast: bool = False, freeze_names=()) -> Transfer:
    """Load the source's weights into `model` layer by layer, then freeze the first `freeze` layers with
    weights and the layers or parameters named in `freeze_names` (`Module.freeze`), except those left
    re-initialised. Returns what happened."""
    from ..models.transfer import load_pretrained, load_torch_weights

    fresh = model.state_dict()
    if source.torch_arch:
        report = load_torch_weights(model, source.path, arch=source.torch_arch, skip_mismatched=True, strict=False,
                                    cast=cast)
    else:
        report = load_pretrained(model, source.weights, skip_mismatched=True, strict=False, cast=cast)
    loaded, modules = set(report.loaded), dict(model.named_modules())
    result = Transfer(unexpected=list(report.unexpected))
    source_shapes = {k: tuple(v.shape) for k, v in (source.weights or {}).items()}
    source_shapes.update({k: None for k in report.skipped if k not in source_shapes})  # a torch file's: not kept
    restore = {}
    for layer, arrays in _layers(model).items():
        missing = [a for a in arrays if a not in loaded]
        if not missing:
            result.loaded += arrays
            continue
        restore.update({a: fresh[a] for a in arrays})  # the whole layer keeps its fresh initialisation
        changed = [a for a in missing if a in source_shapes]
        if changed:
            a = changed[0]
            had = source_shapes[a]
            reason = (f"shape changed: the source's {a} is {had}, here {tuple(fresh[a].shape)}" if had is not None else
                      f"shape changed: {a} is {tuple(fresh[a].shape)} here, another shape in the source")
        else:
            reason = f"absent from the source ({', '.join(missing)})"
        result.reinitialised.append({"layer": layer, "class": modules[layer].describe(), "arrays": arrays,
                                     "reason": reason})
    if restore:
        model.load_state_dict(restore, strict=False)
    if not result.loaded:
        raise ValueError(f"fine-tune: nothing in {source.description} fits {source.build_config['name']!r}:\n"
                         f"{report}")
    if freeze or freeze_names:
        try:
            model.freeze(freeze, names=list(freeze_names))
        except (KeyError, ValueError) as e:
            raise cfg.ConfigError(f"--freeze/--freeze-layers: {e.args[0]}") from None
        reinit = {r["layer"] for r in result.reinitialised}
        for name, p in model.named_parameters():
            if name.rpartition(".")[0] in reinit:
                p.requires_grad = True  # re-initialised: it has everything to learn
    result.frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    return result


def source_model(source: Source, num_classes: int, shape: tuple[int, int, int], seed: int):
    """The source architecture, with every keyword it was built with, sized for the new images and classes."""
    from ..models import from_config

    h, w, c = shape
    config = {**source.build_config, "num_classes": num_classes, "in_channels": c, "image_size": [h, w]}
    try:
        return from_config(config, rng=np.random.default_rng([seed, INIT]))
    except ValueError as e:
        raise cfg.ConfigError(f"model {config['name']!r} cannot be built for images {h}×{w}×{c}: {e}") from None
