"""Check 9: learning curves — from a finished or running history (the trainer's `History`, or a run
directory's metrics.jsonl), diagnose an exploded run, validation at chance, overfitting, underfitting,
a plateaued loss and a noisy loss (the notes' "babysitting" figures)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "learning curves"


def load_history(source) -> tuple[list[dict], list[dict]]:
    """(iteration records, epoch records) from a metrics file's path (JSON lines), a `History` callback, or a
    list of records ({"type": "iteration" | "epoch", ...}). Torn lines are skipped."""
    if hasattr(source, "iterations") and hasattr(source, "epochs"):
        return list(source.iterations), list(source.epochs)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        records = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
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


def _num(v) -> float:
    return math.nan if v is None else float(v)


def diagnose_curves(source, num_classes: int | None = None, explode_factor: float = 3.0, gap_warn: float = 0.1,
                    gap_fail: float = 0.25, good_accuracy: float = 0.9, chance_margin: float = 0.05,
                    plateau: float = 0.01, noise: float = 0.25) -> Verdict:
    """The most severe finding decides the status; every finding is in `details['findings']`."""
    iters, epochs = load_history(source)
    losses = np.array([_num(r.get("loss")) for r in iters], dtype=np.float64)
    details: dict = {"iterations": len(iters), "epochs": len(epochs)}
    if not len(iters) and not epochs:
        return Verdict(CHECK, SKIP, "no history", "n/a", "no training history to read")
    findings: list[tuple[str, str, str, str]] = []
    if len(losses):
        first = losses[np.isfinite(losses)][0] if np.isfinite(losses).any() else math.nan
        bad = ~np.isfinite(losses) | (losses > explode_factor * first)
        if bad.any():
            k = int(np.argmax(bad))
            findings.append((FAIL, "exploded", f"loss {losses[k]:.3g} at iteration {k + 1} (initial {first:.3g})",
                             "the run exploded: lower the learning rate (10×), check the initialisation"))
    last = epochs[-1] if epochs else {}
    train_acc, val_acc = _num(last.get("accuracy")), _num(last.get("val_accuracy"))
    details.update(train_accuracy=train_acc, val_accuracy=val_acc)
    if num_classes and math.isfinite(val_acc):
        chance = 1.0 / num_classes
        best_val = max(_num(e.get("val_accuracy")) for e in epochs)
        details["chance"] = chance
        if best_val <= chance + chance_margin:
            more = (f" while training accuracy reached {100 * train_acc:.0f} %" if train_acc > chance + chance_margin
                    else "")
            findings.append((FAIL, "chance", f"val accuracy {100 * best_val:.1f} % ≈ chance {100 * chance:.0f} %",
                             f"validation never beats chance{more}: nothing that generalises is learned — are "
                             "the labels shuffled relative to the images (data/label misalignment)?"))
    if math.isfinite(train_acc) and math.isfinite(val_acc):
        gap = train_acc - val_acc
        details["gap"] = gap
        if gap > gap_warn and not any(f[1] == "chance" for f in findings):
            findings.append((FAIL if gap > gap_fail else WARN, "overfitting",
                             f"train {100 * train_acc:.1f} % vs val {100 * val_acc:.1f} %",
                             "overfitting (large train/val gap): more regularisation (L2, dropout), "
                             "augmentation or more data"))
        elif train_acc < good_accuracy and gap < gap_warn / 2 and not findings:
            findings.append((WARN, "underfitting", f"train {100 * train_acc:.1f} % ≈ val {100 * val_acc:.1f} %",
                             "underfitting (both low and close): a bigger model, longer training or a higher "
                             "learning rate"))
    finite = losses[np.isfinite(losses)]
    if len(finite) >= 50 and not any(f[0] == FAIL for f in findings):
        s = smooth(finite)
        tail = len(s) // 4
        rel = (s[-tail] - s[-1]) / max(abs(s[-tail]), 1e-12)
        resid = np.std(finite[-tail:] - s[-tail:]) / max(abs(np.mean(s[-tail:])), 1e-12)
        early = (s[0] - s[-tail]) / max(abs(s[0]), 1e-12)
        details.update(tail_relative_drop=float(rel), tail_noise=float(resid))
        if resid > noise and np.mean(finite[-tail:]) > 0.05:
            findings.append((WARN, "noisy", f"loss noise {resid:.0%} of its level in the last quarter",
                             "noisy loss: a larger batch or a lower learning rate (decay it)"))
        elif abs(rel) < plateau and early > 0.2 and s[-1] > 0.2 * s[0] and (
                not math.isfinite(train_acc) or train_acc < 0.99):
            findings.append((WARN, "plateau", f"loss {s[-tail]:.3g} → {s[-1]:.3g} over the last quarter",
                             "the loss has plateaued: decay the learning rate (step / cosine schedule)"))
    if not findings:
        acc = f"train {100 * train_acc:.1f} %, val {100 * val_acc:.1f} %" if math.isfinite(val_acc) else (
            f"final loss {finite[-1]:.3g}" if len(finite) else "n/a")
        return Verdict(CHECK, PASS, acc, "falling loss, small train/val gap", "the curves look healthy",
                       details=details)
    findings.sort(key=lambda f: f[0] != FAIL)
    details["findings"] = [{"status": f[0], "cause": f[1], "value": f[2], "advice": f[3]} for f in findings]
    status, cause, value, advice = findings[0]
    more = "; ".join(f[3] for f in findings[1:])
    return Verdict(CHECK, status, value, "falling loss, small train/val gap",
                   advice + (f". Also: {more}" if more else ""), cause=cause, details=details)
