"""ModelCheckpoint: save `last` every epoch (and on interrupt) and track `best`."""

from __future__ import annotations

import math
import os

from ..checkpoint import CheckpointStore
from .base import Callback
from .monitor import Monitor


class ModelCheckpoint(Callback):
    """Saves `last` after every epoch (and on interrupt) and points `best` at the epoch with the best
    `monitor` (val_accuracy, else training accuracy when there is no validation data): the highest or the
    lowest as `mode` says ('auto': from the metric's name, refused when the name does not tell; see `Monitor`).

    `meta` is stored with every checkpoint as-is (model config, fitted preprocessing, class names, ...):
    arrays in it go to safetensors. Nothing is saved once `trainer.diverged` is set."""

    order = 100

    def __init__(self, directory: str | os.PathLike, monitor: str = "val_accuracy", meta: dict | None = None,
                 mode: str = "auto"):
        self.store = CheckpointStore(directory)
        self.tracker = Monitor(monitor, mode, owner="ModelCheckpoint")
        self.monitor, self.mode = monitor, self.tracker.mode
        self.meta = meta or {}
        self.saved: list[str] = []

    def _value(self, logs):
        if self.monitor in logs:
            return float(logs[self.monitor])
        fallback = self.monitor.removeprefix("val_")
        return float(logs[fallback]) if fallback in logs else None

    def save(self, tags=("last",), logs=None) -> str | None:
        t = self.trainer
        if t.diverged:
            return None
        state = t.state_dict()
        meta = dict(self.meta)
        if "model" not in meta and hasattr(t.model, "build_config"):
            meta["model"] = t.model.build_config  # lets a checkpoint rebuild a registry model
        state["meta"] = meta
        state["logs"] = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float | str)}
        gen = self.store.save(t.model.state_dict(), state, tags=tags)
        self.saved.append(gen)
        return gen

    def on_epoch_end(self, epoch, logs):
        if self.trainer.diverged:
            return
        value = self._value(logs)
        tags = ["last"]
        if value is not None and math.isfinite(value) and self.tracker.update(value, epoch):
            tags.append("best")
        self.save(tags, logs)

    def on_interrupt(self, logs):
        if self.trainer.batch:  # mid-epoch; at an epoch boundary `last` is already current
            self.save(("last",), logs)

    @property
    def best(self) -> float | None:
        return self.tracker.best

    @property
    def best_epoch(self) -> int | None:
        return self.tracker.best_epoch

    def state_dict(self):
        return self.tracker.state_dict()

    def load_state_dict(self, state):
        self.tracker.load_state_dict(state)

    def __repr__(self):
        return f"ModelCheckpoint({str(self.store.directory)!r}, monitor={self.monitor!r}, mode={self.mode!r})"
