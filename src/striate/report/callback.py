"""`ReportWriter`: redraw a run's report.html while it trains, at an epoch end at most every `min_interval`
seconds, so that drawing never dominates short epochs. The final page is drawn once training has ended and
the test split has been evaluated (`striate.run.execute`), from the files the run wrote."""

from __future__ import annotations

import time

from ..train.callbacks import Callback


class ReportWriter(Callback):
    order = 110  # after checkpointing and the diagnostics, so the page shows the epoch just finished

    def __init__(self, run, min_interval: float = 30.0):
        self.run = run  # a RunDir
        self.min_interval = float(min_interval)
        self._last = -float("inf")
        self.written = 0

    def on_train_begin(self):
        self._last = time.monotonic()  # the first page is drawn `min_interval` into training (or at its end)

    def on_epoch_end(self, epoch, logs):
        if time.monotonic() - self._last >= self.min_interval:
            from .html import write_report

            write_report(self.run)
            self._last = time.monotonic()
            self.written += 1
