"""History: per-iteration and per-epoch logs, in memory and as a crash-safe JSON-lines file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ...atomic import write_atomic
from .base import Callback
from .downsample import Downsample


class History(Callback):
    """Records per-iteration loss/lr and per-epoch logs in memory (`iterations`, `epochs`) and, given a
    `path`, appends them to a JSON-lines file as training goes (`{"type": "iteration" | "epoch", ...}`).
    Epochs, steps and iterations are counted from 1, as the console counts them. On resume, lines past the
    restored iteration (written after the checkpoint) are dropped first.

    Memory stays bounded over any run length: `epochs` keeps every epoch record, but `iterations` keeps at
    most `max_iterations` records of iterations 1, 1 + s, 1 + 2s, … (s = 1, doubled, keeping every 2nd
    record, whenever there would be more) plus always the latest one (`iterations[-1]` is the last step).
    What is kept depends only on the iterations seen, so a resumed run holds the same records as a straight
    one. The file keeps every record: read it when you need them all. `max_iterations=None` keeps all."""

    order = -10
    MAX_ITERATIONS = 2048

    def __init__(self, path: str | os.PathLike | None = None, flush_every: float = 2.0,
                 max_iterations: int | None = MAX_ITERATIONS):
        if max_iterations is not None and max_iterations < 2:
            raise ValueError(f"History: max_iterations must be ≥ 2 (or None: keep all), got {max_iterations!r}")
        self.path = None if path is None else Path(path)
        self.flush_every = flush_every
        self.max_iterations = max_iterations
        self._sample = Downsample(max_iterations)  # iterations 1, 1 + stride, 1 + 2·stride, … and the latest
        self.epochs: list[dict] = []
        self._file = None
        self._last_flush = 0.0

    @property
    def iterations(self) -> list[dict]:
        return self._sample.records

    @property
    def stride(self) -> int:
        return self._sample.stride

    def on_train_begin(self):
        done = self.trainer.iteration
        self._sample.reset([r for r in self.iterations if r["iteration"] <= done])
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
            # from the file, which has every record: the downsample a straight run holds at `done`, whatever
            # this object held before (its stride may have doubled past `done`)
            self._sample.reset([r for r in records if r.get("type") == "iteration"])
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
        self._sample.add(rec)
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
