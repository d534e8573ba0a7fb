"""Continuing a run from its last checkpoint: the same configuration (only the resumable options may
change), the saved preprocessing statistics, every generator and the loader's position, so that k epochs
plus a resume equal the epochs in one go, bit for bit."""

from __future__ import annotations

from . import config as cfg
from .build import Run, build
from .directory import RunDir


def resume(directory: RunDir, changes: dict, *, callbacks=(), stream=None, comm=None) -> Run | None:
    """The run in `directory`, rebuilt and restored, ready to continue with `changes` (option → value, from
    the command line). None when the run has already trained the epochs asked for (nothing to do).
    Nothing in the directory changes unless the checkpoint restores."""
    config = directory.read_config()
    directory.check_config_toml()  # an edit of config.toml would be ignored, then overwritten: refused
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
    progress = checkpoint.state.get("progress") or {}
    done, mid_epoch = int(progress.get("epoch", 0)), bool(progress.get("batch"))
    new = cfg.resolve(changes, where="command line", base=config)
    if new["epochs"] < done + mid_epoch:
        raise cfg.ConfigError(f"--epochs {new['epochs']} is below the {done} epochs '{directory}' has done"
                              + (" (and it stopped inside the next)" if mid_epoch else "")
                              + f"; give --epochs {done + 1} or more to train further")
    if new["epochs"] == done and not mid_epoch:
        return None
    run = build(new, directory, fitted=meta["preprocess"], callbacks=callbacks, stream=stream, comm=comm)
    run.trainer.restore(checkpoint)  # a refused checkpoint stops here, before anything is written
    changed = {k: v for k, v in new.items() if k in changes and config.get(k) != v}
    directory.record_resume(changed, done)
    run.config["resume"] = [*resumes, {"from_epoch": done, "changed": changed}]
    return run
