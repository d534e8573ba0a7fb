"""Progress, the Keras way: one full line per epoch on stdout (every metric, validation included, the
learning rate and the time), a tqdm bar with its ETA and the running loss and accuracy within the epoch on
a terminal, and without one (a pipe, a log file, a terminal of 0 columns) a progress line at most every 30 s
once an epoch has run for a minute.

In a notebook (`console.in_notebook()`), as fastprogress does: one HTML display updated in place — a bar
with the ETA and the running loss and accuracy, and a table with a row per epoch (`progress_html`) — and
NO epoch lines on stdout, since the table holds them (a line per epoch per fit is what floods a cell); the
stop reason is written into the display."""

from __future__ import annotations

import contextlib
import sys
import time

from ... import console
from .base import Callback
from .progress_html import ProgressDisplay

QUIET_FOR = 60.0  # without a terminal, an epoch shorter than this prints only its epoch line


def format_logs(logs: dict) -> str:
    """'loss 0.4213  acc 87.50%  val_loss 0.3990  val_acc 88.89%  lr 0.001  3.2s'."""
    parts = []
    for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
        if logs.get(key) is not None:
            v = logs[key]
            parts.append(f"{label} {100 * v:.2f}%" if "acc" in label else f"{label} {v:.4f}")
    if logs.get("lr") is not None:
        parts.append(f"lr {logs['lr']:.3g}")
    if "time" in logs:
        parts.append(f"{logs['time']:.1f}s")
    return "  ".join(parts)


def with_progress(callbacks: list, progress: bool | None) -> list:
    """`callbacks`, plus a `Progress()` when none is there and `progress` is True, or None in a notebook (where
    a Trainer made without one shows the HTML display; in a terminal it stays as quiet as it was asked)."""
    wanted = console.in_notebook() if progress is None else progress
    if wanted and not any(isinstance(cb, Progress) for cb in callbacks):
        return [*callbacks, Progress()]
    return list(callbacks)


class Progress(Callback):
    """`stream` gets the epoch lines (default stdout); `bar_stream` the bar (default stderr, when it is a
    terminal; `bar=False` never draws one, `bar=True` always does). `notebook`: draw the HTML display
    instead of both (None: when in a notebook and neither `stream`, `bar` nor `bar_stream` is given)."""

    order = -5

    def __init__(self, stream=None, bar: bool | None = None, bar_stream=None, notebook: bool | None = None):
        self.stream = stream
        self.bar_stream = bar_stream
        self.bar = bar
        self.notebook = notebook
        self.display = None  # the notebook's ProgressDisplay during a fit
        self._tqdm = None
        self._sums = [0.0, 0.0, 0]  # loss·n, correct, seen in this process's part of the epoch
        self._epoch_start = self._last_line = 0.0
        self._start_batch = 0

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _bar_out(self):
        return self.bar_stream if self.bar_stream is not None else sys.stderr

    def _use_bar(self) -> bool:
        if self.bar is not None:
            return self.bar
        return console.terminal_width(self._bar_out()) is not None

    def _use_notebook(self) -> bool:
        if self.notebook is not None:
            return self.notebook
        return self.stream is None and self.bar is None and self.bar_stream is None and console.in_notebook()

    def on_train_begin(self):
        self.display = None
        if not self._use_notebook():
            return
        t = self.trainer
        total = len(t.train_data) if hasattr(t.train_data, "__len__") else None
        try:
            self.display = ProgressDisplay(t.epochs, t.epoch, total)
        except ImportError:  # STRIATE_NOTEBOOK=1 without IPython: the text display
            self.display = None

    def on_epoch_begin(self, epoch):
        t = self.trainer
        self._sums = [0.0, 0.0, 0]
        self._epoch_start = self._last_line = time.monotonic()
        self._start_batch = t.batch  # a resumed epoch starts part-way
        if self.display is not None:
            self.display.epoch_begin(epoch, t.batch)
        elif self._use_bar():
            from tqdm import tqdm

            total = len(t.train_data) if hasattr(t.train_data, "__len__") else None
            self._tqdm = tqdm(total=total, initial=t.batch, file=self._bar_out(), leave=False, dynamic_ncols=True,
                              desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch")

    def _running(self) -> str:
        loss, correct, seen = self._sums
        return f"loss {loss / max(seen, 1):.4f}  acc {100 * correct / max(seen, 1):.2f}%"

    def on_batch_end(self, batch, logs):
        n = logs["size"]
        self._sums[0] += logs["loss"] * n
        self._sums[1] += logs["accuracy"] * n
        self._sums[2] += n
        if self.display is not None:
            self.display.step(self.trainer.batch, self._running())
            return
        if self._tqdm is not None:
            try:
                self._tqdm.update(1)
                self._tqdm.set_postfix_str(self._running(), refresh=False)
            except OSError:  # the terminal closed (EIO, a lost ssh session): training goes on without the bar
                self._tqdm = None
            return
        now = time.monotonic()
        if now - self._epoch_start >= QUIET_FOR and now - self._last_line >= console.EVERY:
            self._last_line = now
            t = self.trainer
            total = len(t.train_data) if hasattr(t.train_data, "__len__") else None
            where = f"step {t.batch}/{total} ({100 * t.batch / total:.0f}%)" if total else f"step {t.batch}"
            eta = ""
            if total:
                per_step = (now - self._epoch_start) / max(t.batch - self._start_batch, 1)
                eta = f", about {console.duration(per_step * (total - t.batch))} left in the epoch"
            console.line(f"epoch {t.epoch + 1}/{t.epochs}  {where}  {self._running()}{eta}", self._out())

    def _close(self):
        if self._tqdm is not None:
            with contextlib.suppress(OSError):  # a closed terminal must not stop the checkpoint after it
                self._tqdm.close()
            self._tqdm = None

    def on_epoch_end(self, epoch, logs):
        self._close()
        if self.display is not None:
            self.display.epoch_end(epoch, logs)
            return
        console.line(f"epoch {epoch + 1}/{self.trainer.epochs}  {format_logs(logs)}", self._out())

    def on_interrupt(self, logs):
        self._close()

    def on_train_end(self, logs):
        self._close()
        reason = self.trainer.stop_reason
        if self.display is not None:
            self.display.finish(reason)
            self.display = None
        elif reason:
            console.line(reason, self._out())
