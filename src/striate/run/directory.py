"""`RunDir`: a run directory, and the one place that knows its files.

    config.json, config.toml   the resolved configuration: config.json is the run's record, which every command
                               reads; config.toml is written from it, a run file (`--config`) that starts a new
                               run like this one, and is never read back: a hand edit of it is refused by
                               `--resume` (`check_config_toml`), never silently lost
    metrics.jsonl              every iteration's loss and lr, every epoch's metrics (the History callback)
    checkpoints/               generations of weights + state; `last` and `best` point at them
    summary.json               status, epochs, best validation accuracy, the test result
    evaluation.json            the test split evaluated once: per-class accuracy, confusion matrix, the
                               most-confused pairs, the top losses (their images in top_losses/NN.png)
    diagnostics.json           per-layer statistics, update ratios and the doctor's verdicts
    report.html, plots/        the report drawn from the files above
    finetune.json              what a fine-tune loaded, re-initialised and froze
    train.log                  the console output of a run started by a search
    skipped_images.txt         the unreadable files of an image folder the run left out, with the reason
    snapshots/                 a snapshot ensemble's members, snapshot-<k>.safetensors
    .lock                      held while a command writes here (see `lock.py`); written first, so it also
                               marks a directory striate made (`claim`)

config.json records a data path absolute (`data`) and relative to the run directory (`data_relative`): the
data is found at its recorded place, else next to a run directory that moved together with it; reading the
configuration never needs the data (predict and finetune --from do not), only loading it does, and then a
missing folder is one line that suggests --data (`eval --data`, `train --resume --data`: its new place).

A checkpoint's `meta` (the `META` keys) holds what inference needs besides the weights: the model's
build configuration, the fitted preprocessing, the class names, the input shape and the dataset.

Every file is read back through a checked reader (`integrity.py`: `read_config_doc`, `check_meta`, `load_weights`; the
checkpoint store, `train.callbacks.history.read_metrics`, `train.json_files`): a damaged one is one
CheckpointError naming it (exit status 1), never a decoder's exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import remove_stale_temps, write_atomic
from ..markup import Displayed
from ..train.checkpoint import Checkpoint, CheckpointError, CheckpointStore
from ..train.json_files import DamagedFile, read_json
from . import config as cfg
from . import run_file
from .integrity import check_meta, load_weights, preprocessing, read_config_doc
from .lock import RunLock, RunLocked

META = ("model", "preprocess", "classes", "input_shape", "data")


@dataclass
class Trained:
    """A trained run's model (eval mode, weights loaded) with what inference needs."""

    model: object
    preprocess: object  # data.Preprocessing, fitted
    classes: list[str]
    input_shape: tuple[int, int, int]
    config: dict
    checkpoint: Checkpoint


class RunDir(Displayed):
    CONFIG_JSON, CONFIG_TOML, METRICS = "config.json", "config.toml", "metrics.jsonl"
    SUMMARY, EVALUATION, DIAGNOSTICS = "summary.json", "evaluation.json", "diagnostics.json"
    REPORT, PLOTS, FINETUNE, CHECKPOINTS = "report.html", "plots", "finetune.json", "checkpoints"
    LOG, TOP_LOSSES, SKIPPED, SNAPSHOTS = "train.log", "top_losses", "skipped_images.txt", "snapshots"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def new(cls, out: str = "") -> RunDir:
        """`out`, or a fresh runs/<timestamp>."""
        if out:
            return cls(out)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path, i = Path("runs") / stamp, 1
        while path.exists():
            i += 1
            path = Path("runs") / f"{stamp}-{i}"
        return cls(path)

    # the files, by role (report/ and diagnose/ are handed these paths, and never spell a file name)
    config_file = property(lambda self: self / self.CONFIG_JSON)
    metrics_file = property(lambda self: self / self.METRICS)
    summary_file = property(lambda self: self / self.SUMMARY)
    evaluation_file = property(lambda self: self / self.EVALUATION)
    diagnostics_file = property(lambda self: self / self.DIAGNOSTICS)
    report_file = property(lambda self: self / self.REPORT)
    plots_dir = property(lambda self: self / self.PLOTS)
    finetune_file = property(lambda self: self / self.FINETUNE)
    checkpoints_dir = property(lambda self: self / self.CHECKPOINTS)
    log_file = property(lambda self: self / self.LOG)
    skipped_file = property(lambda self: self / self.SKIPPED)
    snapshots_dir = property(lambda self: self / self.SNAPSHOTS)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    # a notebook's displays (`markup.Displayed`): the report's headline numbers, read from the files now
    def _text(self) -> str:
        from .headline import text

        return text(self)

    def _html(self) -> list[str]:
        from .headline import html_parts

        return html_parts(self)

    # ----- what is here ---------------------------------------------------------------------
    def is_run(self) -> bool:
        return (self / self.CONFIG_JSON).is_file()

    def require(self) -> RunDir:
        """Self, or ConfigError when this is not a run directory (a usage error: the path is wrong)."""
        if not self.path.is_dir():
            raise cfg.ConfigError(f"{str(self.path)!r} is not a run directory (no such directory)")
        if not self.is_run():
            raise cfg.ConfigError(f"{str(self.path)!r} is not a run directory (no {self.CONFIG_JSON})")
        return self

    def claim(self, command: str, option: str = "--out") -> RunDir:
        """This directory as the place of a new run (or a doctor's files), checked before anything is written:
        a path that does not exist yet, an empty directory, or a directory striate made (it holds the `.lock`
        every writing command takes first) whose run never reached a checkpoint (started again). A symlink is
        followed first and the rule applies to its target, which is returned. Anything else is a ConfigError
        naming the directory: a run with a checkpoint (resume it instead), a file, or a directory of someone
        else's files, which striate would overwrite (report.html, config.toml, metrics.jsonl are names people
        use too). `option`: where the path came from, as the message names it."""
        if "\0" in str(self.path):
            raise cfg.ConfigError(f"{option} {str(self.path)!r} is not a usable path (it holds a NUL character)")
        real = Path(os.path.realpath(self.path))
        shown = f"{option} '{self.path}'" + (f" (a link to '{real}')" if self.path.is_symlink() else "")
        target = RunDir(real) if self.path.is_symlink() else self
        if not real.exists():
            return target
        if not real.is_dir():
            raise cfg.ConfigError(f"{shown} is a file, not a directory; choose a new or an empty directory")
        entries = sorted(p.name for p in real.iterdir() if p.name != RunLock.NAME)
        if not entries:
            return target
        made_here = (real / RunLock.NAME).is_file()
        if made_here:  # a run in progress is named as such, whatever it has written yet
            try:
                RunLock(real).check_free()
            except RunLocked as e:
                raise cfg.ConfigError(str(e)) from None
        if made_here or target.is_run():
            try:
                holds_run = target.has_checkpoint("last")
            except CheckpointError:  # a damaged pointer is still a run's: never overwrite it
                holds_run = True
            if holds_run:
                resume = f"resume it with --resume {self.path} or " if command.endswith("train") else ""
                raise cfg.ConfigError(f"{shown} already holds a run; {resume}choose another {option}")
            if made_here:
                return target
        listed = ", ".join(entries[:4]) + (", …" if len(entries) > 4 else "")
        raise cfg.ConfigError(f"{shown} is not empty and holds no striate run ({listed}): {command} would "
                              "overwrite files there; choose a new or an empty directory")

    @contextlib.contextmanager
    def lock(self, command: str):
        """Hold the directory for `command`; ConfigError naming the holder when another process has it. The
        temporary files of writers that died mid-write (kill -9, see `atomic.remove_stale_temps`) go first.
        When the lock made the directory and the command fails before writing anything into it (a model
        refused at build time), the directory is removed again: a failed command leaves no run directory."""
        fresh = not self.path.exists()
        try:
            lock = RunLock(self.path).acquire(command)
        except RunLocked as e:
            raise cfg.ConfigError(str(e)) from None
        for folder in (self.path, self.path / self.CHECKPOINTS):  # what writers killed mid-write left
            remove_stale_temps(folder)
        done = False
        try:
            yield self
            done = True
        finally:
            lock.release()
            if fresh and not done:
                self._discard_unused()

    def _discard_unused(self) -> None:
        """Remove this directory if it holds nothing but its lock file (another process may have begun to use
        it since: then it stays)."""
        try:
            if os.listdir(self.path) == [RunLock.NAME]:
                os.unlink(self.path / RunLock.NAME)
                os.rmdir(self.path)
        except OSError:
            pass

    # ----- configuration --------------------------------------------------------------------
    def read_config(self, command: str = "train") -> dict:
        """The configuration in effect: the run's settings with every resume's changes applied in order
        (`config["resume"]` lists them)."""
        settings, resumes = self._saved_config(command)
        config = dict(settings)
        for r in resumes:
            config.update(cfg.resolve(r.get("changed", {}), where=f"{self / self.CONFIG_JSON} [[resume]]",
                                      base={}, command=command, recorded=True))
        config["resume"] = resumes
        return config

    def _saved_config(self, command: str) -> tuple[dict, list[dict]]:
        self.require()
        path = self / self.CONFIG_JSON
        saved = read_config_doc(path)
        resumes = saved.pop("resume", [])
        relative = saved.pop(self.DATA_RELATIVE, None)
        saved.pop(self.TOML_DIGEST, None)
        saved.pop(self.RANKS, None)
        command = "finetune" if "from" in saved else command  # a fine-tuned run records its source and freezing
        settings = cfg.resolve(saved, where=str(path), command=command, recorded=True)
        settings["data"] = self._located(settings["data"], relative)
        return settings, resumes

    DATA_RELATIVE = "data_relative"  # config.json: the data path relative to the run directory
    RANKS = "ranks"  # config.json: the MPI ranks the run started on (when more than one)
    TOML_DIGEST = "config_toml_sha256"  # config.json: the digest of the config.toml written with it (`config_edits`)

    def _located(self, data: str, relative) -> str:
        """Where the recorded data is now: its recorded path if that exists, else the same path relative to
        this run directory (the run moved together with its data), else the recorded path (whose loading
        then fails with one line that suggests --data)."""
        if not cfg.data_missing(data) or not isinstance(relative, str) or not relative:
            return data
        moved = os.path.normpath(os.path.join(os.path.realpath(self.path), relative))
        return data if cfg.data_missing(moved) else moved

    def _recorded_data(self, data) -> dict:
        """config.json's record of a data path: absolute, and relative to this run directory."""
        if not isinstance(data, str) or not data or cfg.is_dataset_name(data):
            return {}
        where = os.path.realpath(os.path.expanduser(data))
        return {"data": where, self.DATA_RELATIVE: os.path.relpath(where, os.path.realpath(self.path))}

    def write_config(self, settings: dict, resumes: list[dict] = (), ranks: int = 1) -> None:
        """config.json (the settings and the resumes) and config.toml (a run file of the original settings,
        which reproduces the first run, then one [[resume]] table per resume). A data path is recorded
        absolute in both, and relative to the run directory in config.json (`_located` reads it). `ranks`:
        the MPI processes the run started on, a fact rather than a setting (config.json's `ranks` and a
        comment in config.toml, when more than one)."""
        settings = {k: v for k, v in settings.items() if k != "resume"}
        recorded = self._recorded_data(settings.get("data"))
        if recorded:
            settings["data"] = recorded["data"]
        if ranks > 1:
            recorded[self.RANKS] = ranks
        text = run_file.to_toml(settings)  # first: a value TOML cannot hold fails before either file is written
        if ranks > 1:
            head, _, rest = text.partition("\n")
            text = (f"{head}\n# trained on {ranks} MPI ranks (mpiexec -n {ranks}); batch_size is the global batch, "
                    f"split over them\n{rest}")
        for r in resumes:
            text += "\n[[resume]]\n" + "".join(f"{k} = {run_file.toml_value(v)}\n" for k, v in r.items())
        self.path.mkdir(parents=True, exist_ok=True)
        digest = {self.TOML_DIGEST: hashlib.sha256(text.encode("utf-8")).hexdigest()}
        write_atomic(self / self.CONFIG_JSON, json.dumps({**settings, **recorded, **digest, "resume": list(resumes)},
                                                         indent=1) + "\n")
        write_atomic(self / self.CONFIG_TOML, text)

    def record_resume(self, changed: dict, epoch: int, command: str = "train", data: str | None = None,
                      ranks: int = 1) -> None:
        """Append a [[resume]] record: when, the epoch it started from, the settings it changed and, when more
        than one, the MPI ranks it runs on. `data`: the same data's new place (`--resume --data`), recorded in
        place of the old one (not a change). `resume` has refused an edited config.toml already, first."""
        settings, resumes = self._saved_config(command)
        if data is not None:
            settings["data"] = data
        resumes.append({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "from_epoch": int(epoch),
                        "changed": dict(changed), **({"ranks": ranks} if ranks > 1 else {})})
        self.write_config(settings, resumes, ranks=(self.read_json(self.CONFIG_JSON) or {}).get(self.RANKS, 1))

    def check_config_toml(self, command: str = "train") -> None:
        """Refuse a hand edit of config.toml (ConfigError naming the key) before a command rewrites it or goes
        on without it: config.json is the record (see `config_edits`)."""
        from .config_edits import check_config_toml

        check_config_toml(self, command)

    # ----- files ----------------------------------------------------------------------------
    def read_json(self, name: str) -> dict | None:
        try:
            return read_json(self / name)
        except (OSError, DamagedFile):
            return None

    def write_image(self, name: str, image: np.ndarray) -> str:
        """A uint8 (H, W, C) image as a PNG under the run directory (atomically); returns its relative name."""
        import io

        from PIL import Image

        path = self / name
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
        write_atomic(path, buf.getvalue())
        return name

    def write_json(self, name: str, doc) -> Path:
        path = self / name
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(doc, indent=1, allow_nan=True, ensure_ascii=False) + "\n")
        return path

    # ----- checkpoints ----------------------------------------------------------------------
    @property
    def store(self) -> CheckpointStore:
        return CheckpointStore(self.checkpoints_dir)

    def has_checkpoint(self, tag: str = "last") -> bool:
        return self.store.has(tag)

    def checkpoint(self, tag: str = "best") -> Checkpoint:
        """Checkpoint `tag`; 'best' falls back to 'last' for a run without a best epoch."""
        self.require()
        store = self.store
        if tag == "best" and not store.has("best"):
            tag = "last"
        if not store.has(tag):
            raise cfg.ConfigError(f"run {str(self.path)!r} has no '{tag}' checkpoint (it has not finished an "
                                  "epoch yet)")
        return store.load(tag)

    @staticmethod
    def meta(checkpoint: Checkpoint) -> dict:
        """The checkpoint's meta data, checked: every `META` key present."""
        meta = checkpoint.state.get("meta")
        if not isinstance(meta, dict) or any(k not in meta for k in META):
            have = sorted(meta) if isinstance(meta, dict) else []
            raise CheckpointError(f"checkpoint {checkpoint.path} lacks its 'meta' data ({', '.join(META)}; it has "
                                  f"{', '.join(have) or 'none'}): it was not written by striate train")
        check_meta(meta, checkpoint.path)
        return meta

    @staticmethod
    def make_meta(model, preprocess, classes, input_shape, data: str) -> dict:
        return {"model": model.build_config, "preprocess": preprocess.state(), "classes": list(classes),
                "input_shape": [int(d) for d in input_shape], "data": str(data)}

    def load_model(self, tag: str = "best", checkpoint: Checkpoint | None = None, averaged: bool = False) -> Trained:
        """The run's model with the weights of checkpoint `tag` (best, falling back to last), in eval mode,
        with its fitted preprocessing, class names, input shape and configuration. `averaged`: the weights
        averaged while training (a run with ema_decay or polyak) instead of the trained ones."""
        from ..models import from_config

        checkpoint = checkpoint or self.checkpoint(tag)
        meta = self.meta(checkpoint)
        try:
            model = from_config(meta["model"], rng=np.random.default_rng(0))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as e:
            raise CheckpointError(f"checkpoint {checkpoint.path}: its meta data's model {meta['model']!r} cannot be "
                                  f"built ({e})") from None
        load_weights(model, checkpoint, "the model its meta data describes")
        if averaged:
            callbacks = checkpoint.state.get("callbacks")
            saved = callbacks.get("WeightAveraging") if isinstance(callbacks, dict) else None
            if not isinstance(saved, dict) or not saved.get("shadow"):
                raise cfg.ConfigError(f"run '{self}' keeps no averaged weights (train with --ema-decay or --polyak)")
            try:
                model.load_state_dict(saved["shadow"], strict=False)
            except (ValueError, TypeError, AttributeError) as e:
                raise CheckpointError(f"checkpoint {checkpoint.path}: its averaged weights do not fit the model "
                                      f"({e})") from None
        model.eval()
        return Trained(model, preprocessing(meta, checkpoint.path), list(meta["classes"]),
                       tuple(meta["input_shape"]), self.read_config() if self.is_run() else {}, checkpoint)
