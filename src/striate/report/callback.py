"""`ReportWriter`: regenerate `<run>/report.html` during training (at most every `min_interval` seconds at
an epoch end, so drawing never dominates short epochs) and always at the end of training. The filters and
the confusion matrix (which need the best checkpoint and a pass over the test split) are drawn only at
the end."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..train.callbacks import Callback


class ReportWriter(Callback):
    order = 110  # after checkpointing and the diagnostics, so the page shows the epoch just finished

    def __init__(self, directory: str | os.PathLike, min_interval: float = 30.0):
        self.directory = Path(directory)
        self.min_interval = float(min_interval)
        self._last = -float("inf")
        self.written = 0

    def _write(self, final: bool = False):
        from .html import write_report

        write_report(self.directory, use_checkpoint=final)
        self._last = time.monotonic()
        self.written += 1

    def on_train_begin(self):
        self._last = time.monotonic()  # the first page is drawn `min_interval` into training (or at its end)

    def on_epoch_end(self, epoch, logs):
        if time.monotonic() - self._last >= self.min_interval:
            self._write()

    def on_train_end(self, logs):
        self._write(final=True)
