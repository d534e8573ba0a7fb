"""Trainer callbacks: everything optional about training (Keras `Callback`, Chainer extensions).

Hooks: `on_train_begin()`, `on_epoch_begin(epoch)`, `on_batch_end(batch, logs)`, `on_epoch_end(epoch, logs)`,
`on_interrupt(logs)` (Ctrl-C / SIGTERM, after the current step) and `on_train_end(logs)`. Epochs and batches
are 0-based. A callback may set `trainer.stop_training`; it runs in ascending `order` (the explosion guard
first, checkpointing last so it saves what the others decided). `state_dict()` is saved with checkpoints.

Batch logs: loss, accuracy (of the batch), lr, size, iteration. Epoch logs: loss, accuracy, lr, time and,
with validation data, val_loss and val_accuracy.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import write_atomic


class Callback:
    order = 0

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self) -> None: ...
    def on_epoch_begin(self, epoch: int) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_interrupt(self, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self):
        return f"{type(self).__name__}()"


# ----- explosion guard --------------------------------------------------------------------------
class ExplosionGuard(Callback):
    """Stop within one step when the training loss is not finite or exceeds `factor` × the first loss, and
    never let an exploded state be checkpointed.

    The loss of a step is measured before its update, so the update of an epoch's last step would reach the
    epoch's checkpoint unchecked. Before every checkpoint (epoch end, interrupt) the state itself is
    checked: the epoch's validation loss, or without validation data one eval-mode forward pass of the last
    batch, must be finite and at most `factor` × the initial loss. Otherwise the guard sets
    `trainer.diverged` (so checkpointing saves nothing and the run ends with status "diverged") and
    `trainer.stop_reason`, a message naming epoch, step, loss and lr and suggesting a lower learning rate
    (Keras `TerminateOnNaN`, Chainer `FailOnNonNumber`). The check reads no random numbers and changes no
    state, so it never disturbs an exact resume."""

    order = -100

    def __init__(self, factor: float = 3.0):
        if not factor > 1:
            raise ValueError(f"ExplosionGuard: factor must be > 1, got {factor!r}")
        self.factor = float(factor)
        self.initial_loss: float | None = None

    def _exploded(self, loss: float) -> str | None:
        """Why `loss` counts as exploded, or None."""
        if not math.isfinite(loss):
            return "is not finite"
        if self.initial_loss is not None and loss > self.factor * self.initial_loss:
            return f"exceeds {self.factor:g}× the initial loss {self.initial_loss:.4g}"
        return None

    def _stop(self, where: str, what: str, loss: float, why: str, lr) -> None:
        lr_text = "n/a" if lr is None else f"{lr:.3g}"
        hint = "" if lr is None else f" (e.g. --lr {lr / 10:.1g})"
        t = self.trainer
        t.diverged = True
        t.stop_training = True
        t.stop_reason = (f"training diverged at {where}: {what} {loss:.4g} {why}, lr {lr_text}. "
                         f"Try a lower learning rate{hint}.")

    def on_batch_end(self, batch, logs):
        loss = logs["loss"]
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = loss
            return
        why = self._exploded(loss)
        if why is not None:
            t = self.trainer
            self._stop(f"epoch {t.epoch + 1}, step {batch + 1} (iteration {logs['iteration']})", "loss", loss, why,
                       logs.get("lr"))

    def check_state(self, logs: dict) -> None:
        """Refuse the state about to be checkpointed if its validation loss (else the last batch's loss after
        the last update) has exploded."""
        t = self.trainer
        if t.diverged:
            return
        if logs.get("val_loss") is not None:
            loss, what = float(logs["val_loss"]), "validation loss"
        else:
            batch = t.last_batch
            if batch is None:
                return
            loss, what = t.evaluate(batch)["loss"], "loss of the last batch after its update"
        why = self._exploded(loss)
        if why is not None:
            self._stop(f"the end of epoch {t.epoch}" if not t.batch else f"epoch {t.epoch + 1}, step {t.batch}",
                       what, loss, why, t.lr())

    def on_epoch_end(self, epoch, logs):
        self.check_state(logs)

    def on_interrupt(self, logs):
        if self.trainer.batch:  # mid-epoch: a checkpoint follows; at an epoch end the state was checked
            self.check_state({k: v for k, v in logs.items() if k != "val_loss"})

    def state_dict(self):
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state):
        self.initial_loss = state.get("initial_loss")

    def __repr__(self):
        return f"ExplosionGuard(factor={self.factor:g})"


# ----- early stopping ---------------------------------------------------------------------------
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


# ----- history ----------------------------------------------------------------------------------
class History(Callback):
    """Records per-iteration loss/lr and per-epoch logs in memory (`iterations`, `epochs`) and, given a
    `path`, appends them to a JSON-lines file as training goes (`{"type": "iteration" | "epoch", ...}`).
    On resume, lines past the restored iteration (written after the checkpoint) are dropped first."""

    order = -10

    def __init__(self, path: str | os.PathLike | None = None, flush_every: float = 2.0):
        self.path = None if path is None else Path(path)
        self.flush_every = flush_every
        self.iterations: list[dict] = []
        self.epochs: list[dict] = []
        self._file = None
        self._last_flush = 0.0

    def on_train_begin(self):
        done = self.trainer.iteration
        self.iterations = [r for r in self.iterations if r["iteration"] <= done]
        self.epochs = [r for r in self.epochs if r["iteration"] <= done]
        if self.path is None:
            return
        kept: list[str] = []
        if done and self.path.exists():
            records = []
            for line in self.path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:  # a torn last line from a killed run
                    continue
                if rec.get("iteration", 0) <= done:
                    kept.append(line)
                    records.append(rec)
            if not self.iterations and not self.epochs:
                self.iterations = [r for r in records if r.get("type") == "iteration"]
                self.epochs = [r for r in records if r.get("type") == "epoch"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the records past the restored iteration go, but never by truncating the file in place: a kill
        # at any moment leaves either the old file or the new one under its name (temp, fsync, rename)
        write_atomic(self.path, "".join(line + "\n" for line in kept))
        self._file = open(self.path, "a")

    def _write(self, rec, force=False):
        if self._file is None:
            return
        self._file.write(json.dumps(rec) + "\n")
        now = time.monotonic()
        if force or now - self._last_flush > self.flush_every:
            self._file.flush()
            self._last_flush = now

    def on_batch_end(self, batch, logs):
        rec = {"type": "iteration", "epoch": self.trainer.epoch, "batch": batch, "iteration": logs["iteration"],
               "loss": logs["loss"], "lr": logs.get("lr")}
        self.iterations.append(rec)
        self._write(rec)

    def on_epoch_end(self, epoch, logs):
        rec = {"type": "epoch", "epoch": epoch, "iteration": self.trainer.iteration,
               **{k: v for k, v in logs.items() if isinstance(v, int | float | str) or v is None}}
        self.epochs.append(rec)
        self._write(rec, force=True)

    def on_train_end(self, logs):
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __repr__(self):
        return f"History(path={str(self.path) if self.path else None!r})"


# ----- progress ---------------------------------------------------------------------------------
def _fmt_logs(logs: dict) -> str:
    parts = []
    for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
        if key in logs and logs[key] is not None:
            v = logs[key]
            parts.append(f"{label} {100 * v:.2f}%" if "acc" in label else f"{label} {v:.4f}")
    if logs.get("lr") is not None:
        parts.append(f"lr {logs['lr']:.3g}")
    if "time" in logs:
        parts.append(f"{logs['time']:.1f}s")
    return "  ".join(parts)


class Progress(Callback):
    """A tqdm bar per epoch (loss, accuracy, lr, ETA) on a terminal; one plain line per epoch otherwise."""

    order = -5

    def __init__(self, stream=None, bar: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.bar = bar
        self._tqdm = None
        self._loss_sum = 0.0
        self._correct = 0.0
        self._seen = 0

    def _use_bar(self) -> bool:
        if self.bar is not None:
            return self.bar
        return hasattr(self.stream, "isatty") and self.stream.isatty()

    def on_epoch_begin(self, epoch):
        t = self.trainer
        self._loss_sum, self._correct, self._seen = 0.0, 0.0, 0
        if self._use_bar():
            from tqdm import tqdm

            total = len(t.train_data) if hasattr(t.train_data, "__len__") else None
            self._tqdm = tqdm(total=total, initial=t.batch, file=self.stream, leave=True, dynamic_ncols=True,
                              desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch")

    def on_batch_end(self, batch, logs):
        n = logs["size"]
        self._loss_sum += logs["loss"] * n
        self._correct += logs["accuracy"] * n
        self._seen += n
        if self._tqdm is not None:
            self._tqdm.update(1)
            self._tqdm.set_postfix_str(f"loss {self._loss_sum / self._seen:.4f}  "
                                       f"acc {100 * self._correct / self._seen:.1f}%  lr {logs.get('lr') or 0:.3g}",
                                       refresh=False)

    def on_epoch_end(self, epoch, logs):
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(_fmt_logs(logs))
            self._tqdm.close()
            self._tqdm = None
        else:
            print(f"epoch {epoch + 1}/{self.trainer.epochs}  {_fmt_logs(logs)}", file=self.stream, flush=True)

    def _close(self):
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None

    def on_interrupt(self, logs):
        self._close()

    def on_train_end(self, logs):
        self._close()
        reason = self.trainer.stop_reason
        if reason:
            print(reason, file=self.stream, flush=True)


# ----- checkpointing ----------------------------------------------------------------------------
class ModelCheckpoint(Callback):
    """Saves `last` after every epoch (and on interrupt) and points `best` at the epoch with the highest
    `monitor` (val_accuracy, else training accuracy when there is no validation data).

    `meta` is stored with every checkpoint as-is (model config, fitted preprocessing, class names, ...):
    arrays in it go to safetensors. Nothing is saved once `trainer.diverged` is set."""

    order = 100

    def __init__(self, directory: str | os.PathLike, monitor: str = "val_accuracy", meta: dict | None = None):
        from .checkpoint import CheckpointStore

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
