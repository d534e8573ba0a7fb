"""Continuing a run from its last checkpoint: the same configuration (only the resumable options may
change), the saved preprocessing statistics, every generator and the loader's position, so that k epochs
plus a resume equal the epochs in one go, bit for bit.

`--data PATH` is not a change of settings: it says where the SAME data is now (the run's folder moved). It
is checked against the checkpoint (the same classes, the same image shape) and recorded as the data's place."""

from __future__ import annotations

from ..train.callbacks.history import read_metrics
from ..train.checkpoint import CheckpointError
from . import config as cfg
from . import features
from .build import Run, build
from .directory import RunDir
from .integrity import load_weights


def resume(directory: RunDir, changes: dict, *, callbacks=(), stream=None, comm=None) -> Run | None:
    """The run in `directory`, rebuilt and restored, ready to continue with `changes` (option → value, from
    the command line). None when the run has already trained the epochs asked for (nothing to do).
    Nothing in the directory changes unless the checkpoint restores."""
    config = directory.read_config()
    directory.check_config_toml()  # an edit of config.toml would be ignored, then overwritten: refused
    resumes = config.pop("resume")
    changes = dict(changes)
    moved = changes.pop("data", None)
    if moved is not None:
        config["data"] = cfg.resolve({"data": moved}, where="command line", base={})["data"]
    not_resumable = sorted(set(changes) - set(cfg.resumable()))
    if not_resumable:
        allowed = ", ".join("--" + k.replace("_", "-") for k in cfg.resumable())
        raise cfg.ConfigError(f"--resume continues the saved configuration; only {allowed} may change, got "
                              f"--{not_resumable[0].replace('_', '-')}")
    if not directory.has_checkpoint("last"):
        raise cfg.ConfigError(f"run '{directory}' has no checkpoint to resume from (it stopped before the end of "
                              "its first epoch): start it again")
    checkpoint = directory.store.load("last")
    meta = RunDir.meta(checkpoint)
    done, mid_epoch = _progress(checkpoint)
    new = cfg.resolve(changes, where="command line", base=config)
    if new["epochs"] < done + mid_epoch:
        raise cfg.ConfigError(f"--epochs {new['epochs']} is below the {done} epochs '{directory}' has done"
                              + (" (and it stopped inside the next)" if mid_epoch else "")
                              + f"; give --epochs {done + 1} or more to train further")
    if new["epochs"] == done and not mid_epoch:
        return None
    run = build(new, directory, model=_frozen_as_recorded(directory, new), fitted=meta["preprocess"],
                callbacks=callbacks, stream=stream, comm=comm)
    if moved is not None:  # before the weights: other data's classes would not fit them either
        _check_same_data(run, meta, directory)
    load_weights(run.model, checkpoint, f"the model {directory.config_file} describes (was its model changed?)")
    if new.get("freeze") == features.ALL:  # a fixed feature extractor's run goes on training its head on the codes
        run = features.train_on_codes(run)
    run.trainer.restore(checkpoint)  # a refused checkpoint stops here, before anything is written
    _restore_loader(run, checkpoint)
    read_metrics(directory.metrics_file)  # so does a damaged metrics.jsonl (History reads it once training starts)
    changed = {k: v for k, v in new.items() if k in changes and config.get(k) != v}
    directory.record_resume(changed, done, data=None if moved is None else new["data"],
                            ranks=1 if comm is None else comm.size)
    run.config["resume"] = [*resumes, {"from_epoch": done, "changed": changed}]
    return run


def _frozen_as_recorded(directory: RunDir, config: dict):
    """A fine-tuned run's model factory that freezes the parameters finetune.json lists as frozen (its
    optimizer state covers only the others); None for any other run."""
    frozen = (directory.read_json(RunDir.FINETUNE) or {}).get("frozen_parameters") if "from" in config else None
    if not frozen:
        return None
    from .build import make_model

    return lambda num_classes, shape: make_model(config, num_classes, shape).freeze(names=list(frozen))


def _check_same_data(run: Run, meta: dict, directory: RunDir) -> None:
    """--resume --data points at the run's own data in a new place: the classes and the image shape the
    checkpoint was trained on, or a ConfigError saying what differs."""
    have = (list(run.data.classes), [int(d) for d in run.data.shape])
    want = (list(meta["classes"]), [int(d) for d in meta["input_shape"]])
    if have != want:
        def show(classes, shape):
            return f"{len(classes)} classes ({', '.join(map(str, classes[:4]))}{', …' if len(classes) > 4 else ''})" \
                   f", images {'×'.join(map(str, shape))}"

        raise cfg.ConfigError(f"--data {run.config['data']!r} is not the data run '{directory}' was trained on: it "
                              f"has {show(*have)}, the run {show(*want)}; --resume --data gives the same data's new "
                              "place (for other data: striate finetune --from RUN --data …)")


def _progress(checkpoint) -> tuple[int, bool]:
    """(epochs done, stopped inside the next) from the checkpoint's progress, or CheckpointError naming it."""
    progress = checkpoint.state.get("progress")
    epoch = progress.get("epoch") if isinstance(progress, dict) else None
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise CheckpointError(f"checkpoint {checkpoint.path}: its state 'progress' is malformed ({progress!r:.80})")
    return epoch, bool(progress.get("batch"))


def _restore_loader(run: Run, checkpoint) -> None:
    """The loader's position from the checkpoint now (`fit` applies it again), so a damaged one stops the
    resume before anything is written."""
    from ..data import DataError

    state = checkpoint.state.get("loader")
    if state is None:
        raise CheckpointError(f"checkpoint {checkpoint.path} holds no data-loader position (its 'loader' state is "
                              "empty): resuming it would start a fresh shuffle, not continue exactly")
    try:
        run.train_loader.load_state_dict(state)
    except (DataError, TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {checkpoint.path}: its 'loader' state is damaged ({e})") from None
