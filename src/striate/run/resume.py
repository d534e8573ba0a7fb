"""Continuing a run from its last checkpoint: the same configuration (only the resumable options may
change), the saved preprocessing statistics, every generator and the loader's position, so that k epochs
plus a resume equal the epochs in one go, bit for bit.

`--data PATH` is not a change of settings: it says where the SAME data is now (the run's folder moved). It
is checked against the checkpoint (the same classes, the same image shape) and recorded as the data's place."""

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
    if moved is not None:
        _check_same_data(run, meta, directory)
    run.trainer.restore(checkpoint)  # a refused checkpoint stops here, before anything is written
    changed = {k: v for k, v in new.items() if k in changes and config.get(k) != v}
    directory.record_resume(changed, done, data=None if moved is None else new["data"])
    run.config["resume"] = [*resumes, {"from_epoch": done, "changed": changed}]
    return run


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
