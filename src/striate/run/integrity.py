"""A damaged run directory is one CheckpointError naming the file (exit status 1), never a decoder's
exception: the checked readers of config.json (`read_config_doc`) and of a checkpoint's meta data
(`check_meta`, `preprocessing`), and the weights loaded only when every tensor fits (`load_weights`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..train.checkpoint import Checkpoint, CheckpointError
from ..train.json_files import DamagedFile, kind_of, read_json
from . import config as cfg


def read_config_doc(path: Path) -> dict:
    """config.json as saved: an object whose `resume` (if any) lists tables with `time` (text), `from_epoch`
    (an integer) and `changed` (a table of resumable options); DamagedFile naming the file otherwise. The
    values themselves are checked by `config.resolve` (a ConfigError naming the key)."""
    saved = read_json(path)
    resumes = saved.get("resume", [])
    if not isinstance(resumes, list):
        raise DamagedFile(f"{path} is damaged: 'resume' is {kind_of(resumes)}, not a list of resume records")
    resumable = set(cfg.resumable())
    for n, r in enumerate(resumes, 1):
        where = f"{path} is damaged: resume record {n}"
        if not isinstance(r, dict):
            raise DamagedFile(f"{where} is {kind_of(r)}, not a table")
        for key, types in (("time", str), ("from_epoch", int), ("changed", dict)):
            if key in r and (not isinstance(r[key], types) or isinstance(r[key], bool)):
                raise DamagedFile(f"{where}: {key} = {r[key]!r} is {kind_of(r[key])}, not {kind_of(types())}")
        unknown = sorted(str(k) for k in r.get("changed", {}) if str(k).replace("-", "_") not in resumable)
        if unknown:
            raise DamagedFile(f"{where} changes {unknown[0]!r}, which a resume cannot change")
    return saved


def check_meta(meta: dict, where: Path) -> None:
    """The types of a checkpoint's meta data (`META`), or CheckpointError naming the checkpoint."""
    model, shape = meta["model"], meta["input_shape"]
    problems = [
        (not isinstance(model, dict) or not isinstance(model.get("name"), str)
         or any(not _whole(model.get(k)) for k in ("num_classes", "in_channels")),
         "model is not a table with a name, num_classes and in_channels"),
        (not isinstance(meta["preprocess"], list), "preprocess is not a list of steps"),
        (not isinstance(meta["classes"], list) or not all(isinstance(c, str) for c in meta["classes"]),
         "classes is not a list of names"),
        (not isinstance(shape, list) or len(shape) != 3 or not all(_whole(d) and d > 0 for d in shape),
         "input_shape is not [height, width, channels]"),
        (not isinstance(meta["data"], str), "data is not a string"),
    ]
    for bad, what in problems:
        if bad:
            raise CheckpointError(f"checkpoint {where}: its meta data is damaged: {what}")


def _whole(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def preprocessing(meta: dict, where: Path):
    """The fitted preprocessing a checkpoint's meta data holds, or CheckpointError naming the checkpoint."""
    from ..data import DataError, Preprocessing

    try:
        return Preprocessing.from_state(meta["preprocess"])
    except (DataError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {where}: its meta data's preprocessing is damaged ({e})") from None


def weights_mismatch(model, weights: dict) -> str | None:
    """The first tensor of `weights` that does not fit `model` (missing, unexpected or of another shape)."""
    own = model.state_dict()
    for name, value in own.items():
        if name not in weights:
            return f"tensor {name!r} of the model is missing from the checkpoint"
        if tuple(np.shape(weights[name])) != tuple(np.shape(value)):
            return (f"tensor {name!r} is {tuple(np.shape(weights[name]))} in the checkpoint, "
                    f"{tuple(np.shape(value))} in the model")
    extra = [name for name in weights if name not in own]
    return f"the checkpoint's tensor {extra[0]!r} is not in the model" if extra else None


def load_weights(model, checkpoint: Checkpoint, whose: str) -> None:
    """`checkpoint`'s weights into `model`, or CheckpointError naming the checkpoint, `whose` (what built the
    model) and the first tensor that does not fit; a refused load changes nothing."""
    mismatch = weights_mismatch(model, checkpoint.weights)
    try:
        if mismatch is None:
            model.load_state_dict(checkpoint.weights)
    except (KeyError, ValueError) as e:
        mismatch = e.args[0] if e.args else str(e)
    if mismatch is not None:
        raise CheckpointError(f"the weights of checkpoint {checkpoint.path} do not fit {whose}: {mismatch}")
