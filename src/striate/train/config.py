"""The run configuration shared by `striate train` flags and `--config run.toml`: one table of keys, types,
defaults and checks, so both edges turn strings into values the same way and quote a bad value."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A bad key or value in a run configuration (the message quotes it)."""


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULES = ("constant", "cosine", "step", "exp", "poly")
AUGMENTS = ("crop", "flip")
PREPROCESS = ("scale", "mean-image", "per-channel-mean", "standardize")
TTA = ("none", "flip")


@dataclass(frozen=True)
class Key:
    name: str
    type: type
    default: object
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    exclusive: bool = False  # the minimum itself is not allowed


KEYS: tuple[Key, ...] = (
    Key("data", str, "digits", "dataset: cifar10, mnist, digits, or a path to an image folder / archive"),
    Key("model", str, "", "model name (default: digits_net for digits, three_layer otherwise)"),
    Key("width", float, 1.0, "width multiplier for the zoo's models (1: as published)", minimum=0.0,
        exclusive=True),
    Key("optimizer", str, "adam", "optimizer", OPTIMIZERS),
    Key("lr", float, 1e-3, "base learning rate", minimum=0.0, exclusive=True),
    Key("momentum", float, 0.9, "momentum for sgd/momentum/nesterov", minimum=0.0),
    Key("weight_decay", float, 0.0, "L2 weight decay (the optimizer's weight_decay)", minimum=0.0),
    Key("label_smoothing", float, 0.0, "label smoothing ε of the cross-entropy (PyTorch's label_smoothing)",
        minimum=0.0),
    Key("schedule", str, "constant", "learning-rate schedule over the whole run", SCHEDULES),
    Key("warmup", float, 0.0, "linear warm-up length in epochs", minimum=0.0),
    Key("epochs", int, 10, "epochs to train (in total, counting resumed ones)", minimum=1),
    Key("batch_size", int, 64, "minibatch size", minimum=1),
    Key("augment", list, [], "augmentations, comma-separated: crop, flip"),
    Key("tta", str, "none", "test-time augmentation for validation and test: none, or flip (average the "
        "probabilities of the image and its mirror)", TTA),
    Key("preprocess", str, "per-channel-mean", "preprocessing after scaling to [0, 1]", PREPROCESS),
    Key("seed", int, 0, "seed for initialisation, the validation split, shuffling and augmentation", minimum=0),
    Key("val_fraction", float, 0.1, "fraction of the training split held out for validation", minimum=0.0),
    Key("limit", int, 0, "use only this many training images (0: all)", minimum=0),
    Key("patience", int, 0, "early stopping patience in epochs on val accuracy (0: off)", minimum=0),
    Key("explode_factor", float, 3.0, "stop when the loss exceeds this × the initial loss", minimum=1.0,
        exclusive=True),
    Key("diagnostics", int, 100, "every this many iterations record per-layer activation and gradient "
        "statistics (update/weight ratios 10× as often) into diagnostics.json (0: off)", minimum=0),
    Key("report", str, "on", "write report.html (plots, the doctor's verdicts) at epoch ends and at the end",
        ("on", "off")),
    Key("out", str, "", "run directory (default runs/<timestamp>)"),
)
BY_NAME = {k.name: k for k in KEYS}
# keys `--resume` may change: the rest are baked into the data split, model, optimizer state or loader
RESUMABLE = ("epochs", "lr", "patience", "explode_factor", "tta")


def _convert(key: Key, value, where: str):
    """`value` (a string from the command line, or a TOML value) as the key's type; ConfigError otherwise."""
    bad = f"{where}: {key.name} = {value!r}"
    if key.type is list:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = list(value)
        else:
            raise ConfigError(f"{bad} is not a comma-separated string or a list of strings")
        unknown = [v for v in items if v not in AUGMENTS]
        if unknown:
            raise ConfigError(f"{bad}: unknown augmentation {unknown[0]!r}; choose from {list(AUGMENTS)}")
        return items
    if key.type is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{bad} is not an integer")
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(f"{bad} is not an integer") from None
    elif key.type is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{bad} is not a number")
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{bad} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{bad} is not a finite number")
    elif not isinstance(value, str):
        raise ConfigError(f"{bad} is not a string")
    if key.choices is not None and value not in key.choices:
        raise ConfigError(f"{bad}: unknown {key.name}; choose from {list(key.choices)}")
    if key.minimum is not None and (value < key.minimum or (key.exclusive and value == key.minimum)):
        op = ">" if key.exclusive else "≥"
        raise ConfigError(f"{bad}: must be {op} {key.minimum:g}")
    if key.name in ("val_fraction", "label_smoothing") and value >= 1:
        raise ConfigError(f"{bad}: must be < 1")
    if key.name == "data":
        check_data(value, bad)
    if key.name == "model" and value:
        from ..models import names

        if value not in names():
            raise ConfigError(f"{bad}: unknown model; choose from {names()}")
    return value


def check_data(value: str, where: str) -> None:
    """A dataset name or an existing path, or ConfigError saying which it is not."""
    from ..data.datasets import NAMES

    if value in NAMES:
        return
    if not value:
        raise ConfigError(f"{where}: give a dataset: {', '.join(NAMES)}, or a path to an image folder / archive")
    if not Path(value).expanduser().exists():
        looks_like_path = any(ch in value for ch in "/\\.~")
        what = "no such file or directory" if looks_like_path else "unknown dataset"
        raise ConfigError(f"{where}: {what}; give one of {', '.join(NAMES)}, or a path to an image folder / "
                          "archive")


def defaults() -> dict:
    return {k.name: (list(k.default) if isinstance(k.default, list) else k.default) for k in KEYS}


def resolve(values: dict, where: str = "config", base: dict | None = None) -> dict:
    """`base` (default: the defaults) updated with `values`, each key checked and converted."""
    out = dict(base) if base is not None else defaults()
    for name, value in values.items():
        norm = name.replace("-", "_")
        if norm not in BY_NAME:
            raise ConfigError(f"{where}: unknown key {name!r}; known keys: {', '.join(BY_NAME)}")
        out[norm] = _convert(BY_NAME[norm], value, where)
    return out


def read_toml(path: str | Path, error: type[Exception] = ConfigError, what: str = "config file") -> dict:
    """Parse a TOML file; a missing or malformed file raises `error` quoting the path."""
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {str(path)!r}: {e}") from None


def load_toml(path: str | Path) -> dict:
    """Read a run.toml (flat table of the keys above, or under a [train] table) and check its keys/values."""
    doc = read_toml(path)
    if set(doc) == {"train"} and isinstance(doc["train"], dict):
        doc = doc["train"]
    return resolve(doc, where=str(path), base={})


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def to_toml(config: dict) -> str:
    lines = ["# striate run configuration (striate train --config this-file)"]
    lines += [f"{k} = {_toml_value(config[k])}" for k in BY_NAME if k in config]
    return "\n".join(lines) + "\n"
