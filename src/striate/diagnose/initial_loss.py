"""Check 2: the loss at initialisation, regularisation off, against its chance value.

Softmax: ln C (every class equally likely); multiclass SVM with margin Δ: (C − 1)·Δ (all scores ≈ 0).
Far above chance: scores too large at init (weight scale, especially the last layer). Far below: the
model already "knows" the labels — a label leak, or a loss that is not the one you think."""

from __future__ import annotations

import math

import numpy as np

from ..nn.module import Module
from .inputs import chance_loss, loss_and_accuracy
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "initial loss"


def check_initial_loss(model: Module, loss, x: np.ndarray, y: np.ndarray, num_classes: int | None = None,
                       warn: float = 0.25, fail: float = 1.0) -> Verdict:
    """PASS when |loss − chance| ≤ warn·chance, FAIL beyond fail·chance (or non-finite)."""
    value, acc = loss_and_accuracy(model, loss, x, y)
    c = num_classes or int(max(y.max() + 1, 2))
    chance = chance_loss(loss, c)
    details = {"loss": value, "chance": chance, "num_classes": c, "accuracy": acc}
    if not math.isfinite(value):
        return Verdict(CHECK, FAIL, f"{value}", "finite", "the loss is not finite at initialisation: "
                       "weights far too large or invalid inputs (NaN in the data?)", cause="not_finite",
                       details=details)
    if chance is None:
        return Verdict(CHECK, SKIP, f"{value:.4g}", "n/a", f"no chance value known for {type(loss).__name__}",
                       details=details)
    expected = f"≈ {chance:.3f} ({'ln' if 'Softmax' in type(loss).__name__ else '(C−1)·Δ,'} C={c})"
    dev = (value - chance) / chance
    text = f"{value:.4f} ({dev:+.0%} vs chance)"
    if abs(dev) <= warn:
        return Verdict(CHECK, PASS, text, expected, "the scores start near uniform, as they should",
                       details=details)
    status = FAIL if abs(dev) > fail else WARN
    if dev > 0:
        advice = ("loss well above chance at initialisation: the scores are too large — scale the weights "
                  "down (Xavier/He, or a smaller last layer)")
        cause = "too_high"
    else:
        advice = ("loss well below chance before any training: the labels may leak into the inputs, or the "
                  "loss/labels are not what you think")
        cause = "too_low"
    return Verdict(CHECK, status, text, expected, advice, cause=cause, details=details)
