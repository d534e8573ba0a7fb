"""EarlyStopping: stop when a monitored metric stops improving, optionally restoring the best weights."""

from __future__ import annotations

import numpy as np

from .base import Callback


class EarlyStopping(Callback):
    """Stop when `monitor` (default val_accuracy, higher is better) has not improved by more than
    `min_delta` for `patience` epochs; with `restore_best`, the best epoch's weights are put back."""

    order = 50

    def __init__(self, patience: int = 5, monitor: str = "val_accuracy", min_delta: float = 0.0,
                 restore_best: bool = True):
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be ≥ 1, got {patience!r}")
        self.patience, self.monitor = int(patience), monitor
        self.min_delta, self.restore_best = float(min_delta), restore_best
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None

    def on_train_begin(self):
        self.stopped_epoch = None  # a resumed run restores best weights only if it stops early again

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors '{self.monitor}', but the epoch logs only have {sorted(logs)}"
                           " (pass validation data to fit)")
        value = float(logs[self.monitor])
        if self.best is None or value > self.best + self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
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

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.wait, self.stopped_epoch = int(state.get("wait", 0)), state.get("stopped_epoch")
        self.best_weights = state.get("best_weights")

    def __repr__(self):
        return f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r})"
