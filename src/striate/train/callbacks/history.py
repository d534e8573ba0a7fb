"""History: per-iteration and per-epoch logs, in memory and as a crash-safe JSON-lines file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ...atomic import write_atomic
from .base import Callback


class History(Callback):
    """Records per-iteration loss/lr and per-epoch logs in memory (`iterations`, `epochs`) and, given a
    `path`, appends them to a JSON-lines file as training goes (`{"type": "iteration" | "epoch", ...}`).
    Epochs, steps and iterations are counted from 1, as the console counts them. On resume, lines past the
    restored iteration (written after the checkpoint) are dropped first."""

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
        rec = {"type": "iteration", "epoch": self.trainer.epoch + 1, "batch": batch + 1,
               "iteration": logs["iteration"], "loss": logs["loss"], "lr": logs.get("lr")}
        self.iterations.append(rec)
        self._write(rec)

    def on_epoch_end(self, epoch, logs):
        rec = {"type": "epoch", "epoch": epoch + 1, "iteration": self.trainer.iteration,
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
