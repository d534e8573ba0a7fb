"""EarlyStopping: stop when a monitored metric stops improving, optionally restoring the best weights."""

from __future__ import annotations

import numpy as np

from .base import Callback
from .monitor import Monitor


class EarlyStopping(Callback):
    """Stop when `monitor` (default val_accuracy) has not improved by more than `min_delta` for `patience`
    epochs (Keras semantics); with `restore_best`, the best epoch's weights are put back. `mode`: 'max',
    'min' or 'auto' (from the metric's name, refused when the name does not tell; see `Monitor`)."""

    order = 50

    def __init__(self, patience: int = 5, monitor: str = "val_accuracy", min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "auto"):
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be ≥ 1, got {patience!r}")
        self.tracker = Monitor(monitor, mode, min_delta, owner="EarlyStopping")
        self.patience, self.monitor, self.mode = int(patience), monitor, self.tracker.mode
        self.restore_best = restore_best
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_train_begin(self):
        self.stopped_epoch = None  # a resumed run restores best weights only if it stops early again

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors '{self.monitor}', but the epoch logs only have {sorted(logs)}"
                           " (pass validation data to fit)")
        if self.tracker.update(float(logs[self.monitor]), epoch):
            self.wait = 0
            if self.restore_best:
                self.best_weights = self.trainer.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True
            self.trainer.stop_reason = (f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved "
                                        f"for {self.patience} epochs (best {self.best:.4f} at epoch "
                                        f"{self.best_epoch + 1})")

    def on_train_end(self, logs):
        if self.stopped_epoch is not None and self.restore_best and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)

    @property
    def min_delta(self) -> float:
        return self.tracker.min_delta

    @property
    def best(self) -> float | None:
        return self.tracker.best

    @property
    def best_epoch(self) -> int | None:
        return self.tracker.best_epoch

    def state_dict(self):
        return {**self.tracker.state_dict(), "wait": self.wait, "stopped_epoch": self.stopped_epoch,
                "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.tracker.load_state_dict(state)
        self.wait, self.stopped_epoch = int(state.get("wait", 0)), state.get("stopped_epoch")
        self.best_weights = state.get("best_weights")

    def __repr__(self):
        return f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r}, mode={self.mode!r})"
