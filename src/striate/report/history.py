"""Reading the records of metrics.jsonl for the pages: epoch numbers and the best epoch."""

from __future__ import annotations

import math


def num(v) -> float:
    return math.nan if v is None else float(v)


def epoch_number(epochs: list[dict]):
    """A function from an epoch record to its number counted from 1 (metrics.jsonl files written before
    epochs were counted from 1 start at 0)."""
    offset = 1 if any(e.get("epoch") == 0 for e in epochs) else 0
    return lambda e: int(e["epoch"]) + offset


def best_epoch(epochs: list[dict]) -> dict | None:
    """The epoch record with the highest val_accuracy (else the lowest val_loss, else the lowest loss)."""
    for key, sign in (("val_accuracy", -1), ("val_loss", 1), ("loss", 1)):
        vals = [(sign * num(e.get(key)), i) for i, e in enumerate(epochs) if e.get(key) is not None]
        vals = [v for v in vals if math.isfinite(v[0])]
        if vals:
            return epochs[min(vals)[1]]
    return None
