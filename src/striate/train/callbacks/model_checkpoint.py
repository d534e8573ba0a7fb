"""ModelCheckpoint: save `last` every epoch (and on interrupt) and track `best`."""

from __future__ import annotations

import math
import os

from ..checkpoint import CheckpointStore
from .base import Callback


class ModelCheckpoint(Callback):
    """Saves `last` after every epoch (and on interrupt) and points `best` at the epoch with the highest
    `monitor` (val_accuracy, else training accuracy when there is no validation data).

    `meta` is stored with every checkpoint as-is (model config, fitted preprocessing, class names, ...):
    arrays in it go to safetensors. Nothing is saved once `trainer.diverged` is set."""

    order = 100

    def __init__(self, directory: str | os.PathLike, monitor: str = "val_accuracy", meta: dict | None = None):
        self.store = CheckpointStore(directory)
        self.monitor = monitor
        self.meta = meta or {}
        self.best: float | None = None
        self.best_epoch: int | None = None
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
        if value is not None and math.isfinite(value) and (self.best is None or value > self.best):
            self.best, self.best_epoch = value, epoch
            tags.append("best")
        self.save(tags, logs)

    def on_interrupt(self, logs):
        if self.trainer.batch:  # mid-epoch; at an epoch boundary `last` is already current
            self.save(("last",), logs)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")

    def __repr__(self):
        return f"ModelCheckpoint({str(self.store.directory)!r}, monitor={self.monitor!r})"
