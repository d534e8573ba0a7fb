"""Continuing a run from its last checkpoint: the same configuration (only the resumable options may
change), the saved preprocessing statistics, every generator and the loader's position, so that k epochs
plus a resume equal the epochs in one go, bit for bit."""

from __future__ import annotations

from ..train.callbacks.history import read_metrics
from ..train.checkpoint import CheckpointError
from . import config as cfg
from .build import Run, build
from .directory import RunDir, load_weights


def resume(directory: RunDir, changes: dict, *, callbacks=(), stream=None, comm=None) -> Run | None:
    """The run in `directory`, rebuilt and restored, ready to continue with `changes` (option → value, from
    the command line). None when the run has already trained the epochs asked for (nothing to do).
    Nothing in the directory changes unless the checkpoint restores."""
    config = directory.read_config()
    resumes = config.pop("resume")
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
    run = build(new, directory, fitted=meta["preprocess"], callbacks=callbacks, stream=stream, comm=comm)
    load_weights(run.model, checkpoint, f"the model {directory.config_file} describes (was its model changed?)")
    run.trainer.restore(checkpoint)  # a refused checkpoint stops here, before anything is written
    _restore_loader(run, checkpoint)
    read_metrics(directory.metrics_file)  # so does a damaged metrics.jsonl (History reads it once training starts)
    changed = {k: v for k, v in new.items() if k in changes and config.get(k) != v}
    directory.record_resume(changed, done)
    run.config["resume"] = [*resumes, {"from_epoch": done, "changed": changed}]
    return run


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
