"""Learning curves read back: a history's records (from a `History`, a metrics file or a list) and their
bias-corrected moving average. The doctor's check of them is `checks/learning_curves.py`."""

from __future__ import annotations

import math
import os

import numpy as np


def load_history(source) -> tuple[list[dict], list[dict]]:
    """(iteration records, epoch records) from a metrics file's path (JSON lines), a `History` callback, or a
    list of records ({"type": "iteration" | "epoch", ...}). A torn last line is skipped; a damaged file is a
    DamagedFile naming it (`read_metrics`)."""
    if hasattr(source, "iterations") and hasattr(source, "epochs"):
        return list(source.iterations), list(source.epochs)
    if isinstance(source, (str, os.PathLike)):
        from ..train.callbacks.history import read_metrics

        records = read_metrics(source)
    else:
        records = list(source)
    return ([r for r in records if r.get("type") == "iteration"], [r for r in records if r.get("type") == "epoch"])


def smooth(values, beta: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average (NaN stays NaN from where it appears)."""
    out, avg = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * (v if v is not None else math.nan)
        out[i] = avg / (1 - beta ** (i + 1))
    return out
