"""Progress: a tqdm bar per epoch on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import sys

from .base import Callback


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
