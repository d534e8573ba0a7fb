"""Check 9: learning curves — from a finished or running history (the trainer's `History`, or a run
directory's metrics.jsonl), diagnose an exploded run, validation at chance, eval mode doing worse than
training mode, overfitting, underfitting, a plateaued loss and a noisy loss (the notes' "babysitting"
figures). One primary finding: its advice alone is given (the others are in the details)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import thresholds
from ..check import Finding, judged, register
from ..context import Context
from ..curves import load_history, smooth
from ..inputs import scores_eval
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, SKIP, WARN, Verdict

CHECK = "learning curves"


def _num(v) -> float:
    return math.nan if v is None else float(v)


class _Curves(NamedTuple):
    """What the findings are read from: the losses per record and the records' iteration numbers, the epoch
    records, the last training / validation accuracy, the eval-mode training accuracy, the thresholds."""

    losses: np.ndarray
    numbers: list[int]
    epochs: list[dict]
    train_acc: float
    val_acc: float
    train_eval: float | None
    t: thresholds.LearningCurves


def _exploded(c: _Curves) -> list[Finding]:
    finite = c.losses[np.isfinite(c.losses)]
    if not len(c.losses):
        return []
    first = finite[0] if len(finite) else math.nan
    bad = ~np.isfinite(c.losses) | (c.losses > c.t.explode_factor * first)
    if not bad.any():
        return []
    k = int(np.argmax(bad))
    return [Finding(FAIL, "lr_too_high", f"the loss exploded at iteration {c.numbers[k]} ({c.losses[k]:.3g}, from "
                    f"{first:.3g})", value=f"loss {c.losses[k]:.3g} at iteration {c.numbers[k]} (initial {first:.3g})")]


def _eval_mismatch(c: _Curves) -> list[Finding]:
    tr, ev, va, t = c.train_acc, c.train_eval, c.val_acc, c.t
    if ev is None or not (math.isfinite(tr) and math.isfinite(va)) or tr - ev <= t.mismatch or ev - va >= t.gap_warn:
        return []
    symptom = (f"training accuracy {100 * tr:.0f} % in training mode but {100 * ev:.0f} % in eval mode on the same "
               f"data (validation {100 * va:.0f} %)")
    return [Finding(FAIL if tr - ev > 3 * t.mismatch else WARN, "eval_mismatch", symptom,
                    "eval mode computes something else — BatchNorm's running statistics",
                    value=f"train {100 * tr:.1f} % (training mode) vs {100 * ev:.1f} % (eval mode)")]


def _at_chance(c: _Curves, num_classes: int | None, details: dict) -> list[Finding]:
    if not num_classes or not math.isfinite(c.val_acc):
        return []
    chance = 1.0 / num_classes
    best_val = max(_num(e.get("val_accuracy")) for e in c.epochs)
    details["chance"] = chance
    if best_val > chance + c.t.chance_margin:
        return []
    value = f"val accuracy {100 * best_val:.1f} % ≈ chance {100 * chance:.0f} %"
    if c.train_acc > chance + c.t.chance_margin:
        return [Finding(FAIL, "labels_shuffled", f"validation accuracy stays at chance ({100 * best_val:.1f} %) while "
                        f"training accuracy reaches {100 * c.train_acc:.0f} %", "what is learned does not carry over",
                        value=value)]
    return [Finding(FAIL, "lr_too_low", f"validation accuracy stays at chance ({100 * best_val:.1f} %) and the loss "
                    "does not fall", "nothing is learned (if the other checks find nothing)", value=value)]


def _fit(c: _Curves, details: dict) -> list[Finding]:
    """Overfitting (a train/val gap) or underfitting (both low and close)."""
    if not (math.isfinite(c.train_acc) and math.isfinite(c.val_acc)):
        return []
    seen = c.train_eval if c.train_eval is not None else c.train_acc
    gap = seen - c.val_acc
    details["gap"] = gap
    if gap > c.t.gap_warn:
        return [Finding(FAIL if gap > c.t.gap_fail else WARN, "overfitting", f"training accuracy {100 * seen:.0f} % "
                        f"against validation {100 * c.val_acc:.0f} %", "the training data is learned, not the task",
                        value=f"train {100 * seen:.1f} % vs val {100 * c.val_acc:.1f} %")]
    if max(c.train_acc, seen) < c.t.good_accuracy:  # (gap ≤ gap_warn here: not overfitting)
        return [Finding(WARN, "underfitting", f"training accuracy {100 * c.train_acc:.0f} % ≈ validation "
                        f"{100 * c.val_acc:.0f} %, both low", "the model does not fit even the training data",
                        value=f"train {100 * c.train_acc:.1f} % ≈ val {100 * c.val_acc:.1f} %")]
    return []


def _shape(c: _Curves, details: dict) -> list[Finding]:
    """A noisy loss or a plateau, read from the smoothed curve's last quarter."""
    finite = c.losses[np.isfinite(c.losses)]
    if len(finite) < 50:
        return []
    sm = smooth(finite)
    tail = len(sm) // 4
    rel = (sm[-tail] - sm[-1]) / max(abs(sm[-tail]), 1e-12)
    # the step-to-step jumps against the loss at the start: near convergence a small loss jumps by a large
    # fraction of itself in any healthy minibatch run, so its own level is no yardstick
    resid = np.std(finite[-tail:] - sm[-tail:]) / max(abs(sm[0]), 1e-12)
    early = (sm[0] - sm[-tail]) / max(abs(sm[0]), 1e-12)
    details.update(tail_relative_drop=float(rel), tail_noise=float(resid))
    if resid > c.t.noise:
        return [Finding(WARN, "noisy_loss", f"the loss jumps by {resid:.0%} of its initial value from step to step",
                        value=f"loss noise {resid:.0%} of the initial loss in the last quarter")]
    if abs(rel) < c.t.plateau and early > 0.2 and sm[-1] > 0.2 * sm[0] and (
            not math.isfinite(c.train_acc) or c.train_acc < 0.99):
        return [Finding(WARN, "plateau", f"the loss stopped falling ({sm[-tail]:.3g} → {sm[-1]:.3g} over the last "
                        "quarter)", value=f"loss {sm[-tail]:.3g} → {sm[-1]:.3g} over the last quarter")]
    return []


def judge(source, num_classes: int | None = None, *, train_eval_accuracy: float | None = None,
          t: thresholds.LearningCurves = THRESHOLDS.learning_curves) -> Verdict:
    """The most severe finding decides the status; every finding is in `details['findings']`.

    exploded (`lr_too_high`); validation at chance — while the training accuracy rose or the loss fell, the
    labels do not belong to the images (`labels_shuffled`), else nothing is learned (`lr_too_low`); a
    train/val gap (`overfitting`); both low and close (`underfitting`); a plateau (`plateau`) or a noisy loss
    (`noisy_loss`). train_eval_accuracy: the trained model's eval-mode accuracy on training data — the
    training accuracy of the history is measured in training mode, batch by batch: when it is far above
    that, and that is no better than validation, eval mode is what is broken (`eval_mismatch`: BatchNorm's
    running statistics), not generalisation."""
    iters, epochs = load_history(source)
    details: dict = {"iterations": len(iters), "epochs": len(epochs)}
    if not len(iters) and not epochs:
        return Verdict(CHECK, SKIP, "no history", "n/a", "no training history to read")
    last = epochs[-1] if epochs else {}
    # a History holds a downsample of a long run (train/callbacks/history.py): count by the records' numbers
    c = _Curves(np.array([_num(r.get("loss")) for r in iters], dtype=np.float64),
                [int(r.get("iteration", i + 1)) for i, r in enumerate(iters)], epochs, _num(last.get("accuracy")),
                _num(last.get("val_accuracy")), train_eval_accuracy, t)
    details.update(train_accuracy=c.train_acc, val_accuracy=c.val_acc, train_eval_accuracy=train_eval_accuracy)
    # each later reading only when the earlier ones found nothing (an exploded run has no meaningful gap)
    findings = (_exploded(c) or _eval_mismatch(c) or _at_chance(c, num_classes, details)) or _fit(c, details)
    if not any(f.status == FAIL for f in findings):
        findings += _shape(c, details)
    return judged(CHECK, findings, "falling loss, small train/val gap", details, healthy=(_healthy(c), "the curves "
                                                                                                   "look healthy"))


def _healthy(c: _Curves) -> str:
    finite = c.losses[np.isfinite(c.losses)]
    if not math.isfinite(c.val_acc):
        return f"final loss {finite[-1]:.3g}" if len(finite) else "n/a"
    return f"train {100 * c.train_acc:.1f} %, val {100 * c.val_acc:.1f} %" + (
        f" (train in eval mode {100 * c.train_eval:.1f} %)" if c.train_eval is not None else "")


@register
class LearningCurves:
    name = CHECK
    needs = frozenset({"curves"})
    causes = frozenset({"lr_too_high", "eval_mismatch", "labels_shuffled", "lr_too_low", "overfitting",
                        "underfitting", "noisy_loss", "plateau"})

    def run(self, ctx: Context) -> list[Verdict]:
        run, x, y = ctx.trained, *ctx.sample
        seen = None if run.diverged else float(np.mean(scores_eval(run.model, x).argmax(axis=1) == y))
        return [judge(run.history, ctx.num_classes, train_eval_accuracy=seen, t=ctx.thresholds.learning_curves)]
