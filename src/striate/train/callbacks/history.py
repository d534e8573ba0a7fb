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
            records = [rec for rec in read_metrics(self.path) if rec["iteration"] <= done]
            kept = [json.dumps(rec) for rec in records]
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


_METRICS = ("loss", "accuracy", "lr", "time", "val_loss", "val_accuracy")  # numbers (or null) in every record


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics file, checked: each line a JSON object of type 'iteration' or 'epoch' with its
    whole-number `epoch` and `iteration` (and `batch`, when there is one), the metrics numbers or null, every
    value a scalar. A torn last line (a killed run: the start of a record, with no newline) is skipped; any
    other damage is a DamagedFile naming the file and the line. No file: no records."""
    from ..json_files import DamagedFile, kind_of, parse_json

    path = Path(path)
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    torn = lines.pop()  # b"" when the file ends with a newline, as every complete record does
    while lines and not lines[-1].strip():
        lines.pop()
    if torn.strip() and not _cut_short(torn):
        lines.append(torn)  # whole, or not the start of a record (records are ASCII): checked as any other line
    records = []
    for n, line in enumerate(lines, 1):
        where = f"{path} line {n}"
        rec = parse_json(line, where)
        if not isinstance(rec, dict):
            raise DamagedFile(f"{where} is damaged: it holds {kind_of(rec)}, not a record (a JSON object)")
        kind = rec.get("type")
        if kind not in ("iteration", "epoch"):
            raise DamagedFile(f"{where} is damaged: its type is {kind!r}, not 'iteration' or 'epoch'")
        for key, value in rec.items():
            if key in ("epoch", "iteration", "batch"):
                bad = not isinstance(value, int) or isinstance(value, bool) or value < 0
            elif key in _METRICS:
                bad = value is not None and (not isinstance(value, int | float) or isinstance(value, bool))
            else:
                bad = isinstance(value, dict | list)
            if bad:
                raise DamagedFile(f"{where} is damaged: {key} = {value!r:.60} is {kind_of(value)}")
        missing = [k for k in ("epoch", "iteration") if k not in rec]
        if missing:
            raise DamagedFile(f"{where} is damaged: its {kind} record lacks {missing[0]!r}")
        records.append(rec)
    return records


def _cut_short(line: bytes) -> bool:
    """A record's start cut short by a kill (ASCII from '{', not valid JSON)."""
    if not (line.isascii() and line.lstrip().startswith(b"{")):
        return False
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return True
    return False
