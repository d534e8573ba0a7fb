"""Check 9: learning curves — from a finished or running history (the trainer's `History`, or a run
directory's metrics.jsonl), diagnose an exploded run, validation at chance, eval mode doing worse than
training mode, overfitting, underfitting, a plateaued loss and a noisy loss (the notes' "babysitting"
figures). One primary finding: its advice alone is given (the others are in the details)."""

from __future__ import annotations

import math
import os

import numpy as np

from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "learning curves"


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


def _num(v) -> float:
    return math.nan if v is None else float(v)


def diagnose_curves(source, num_classes: int | None = None, explode_factor: float = 3.0, gap_warn: float = 0.1,
                    gap_fail: float = 0.25, good_accuracy: float = 0.9, chance_margin: float = 0.05,
                    plateau: float = 0.01, noise: float = 0.05, *, train_eval_accuracy: float | None = None,
                    mismatch: float = 0.05) -> Verdict:
    """The most severe finding decides the status; every finding is in `details['findings']`.

    exploded (`lr_too_high`); validation at chance — while the training accuracy rose or the loss fell, the
    labels do not belong to the images (`labels_shuffled`), else nothing is learned (`lr_too_low`); a
    train/val gap (`overfitting`); both low and close (`underfitting`); a plateau (`plateau`) or a noisy loss
    (`noisy_loss`). train_eval_accuracy: the trained model's eval-mode accuracy on training data — the
    training accuracy of the history is measured in training mode, batch by batch: when it is far above
    that, and that is no better than validation, eval mode is what is broken (`eval_mismatch`: BatchNorm's
    running statistics), not generalisation."""
    iters, epochs = load_history(source)
    losses = np.array([_num(r.get("loss")) for r in iters], dtype=np.float64)
    # a History holds a downsample of a long run (train/callbacks/history.py): count by the records' numbers
    numbers = [int(r.get("iteration", i + 1)) for i, r in enumerate(iters)]
    details: dict = {"iterations": len(iters), "epochs": len(epochs)}
    if not len(iters) and not epochs:
        return Verdict(CHECK, SKIP, "no history", "n/a", "no training history to read")
    findings: list[tuple[str, str, str, str, str]] = []  # status, cause, value, symptom, advice
    first = losses[np.isfinite(losses)][0] if np.isfinite(losses).any() else math.nan
    finite = losses[np.isfinite(losses)]
    if len(losses):
        bad = ~np.isfinite(losses) | (losses > explode_factor * first)
        if bad.any():
            k = int(np.argmax(bad))
            symptom = f"the loss exploded at iteration {numbers[k]} ({losses[k]:.3g}, from {first:.3g})"
            findings.append((FAIL, "lr_too_high",
                             f"loss {losses[k]:.3g} at iteration {numbers[k]} (initial {first:.3g})", symptom,
                             f"{symptom}: lower the learning rate (10×)"))
    last = epochs[-1] if epochs else {}
    train_acc, val_acc = _num(last.get("accuracy")), _num(last.get("val_accuracy"))
    details.update(train_accuracy=train_acc, val_accuracy=val_acc, train_eval_accuracy=train_eval_accuracy)
    if train_eval_accuracy is not None and math.isfinite(train_acc) and math.isfinite(val_acc) and not findings \
            and train_acc - train_eval_accuracy > mismatch and train_eval_accuracy - val_acc < gap_warn:
        symptom = (f"training accuracy {100 * train_acc:.0f} % in training mode but {100 * train_eval_accuracy:.0f} % "
                   f"in eval mode on the same data (validation {100 * val_acc:.0f} %)")
        findings.append((FAIL if train_acc - train_eval_accuracy > 3 * mismatch else WARN, "eval_mismatch",
                         f"train {100 * train_acc:.1f} % (training mode) vs {100 * train_eval_accuracy:.1f} % "
                         "(eval mode)", symptom, f"{symptom}: eval mode computes something else — BatchNorm's "
                         "running statistics (check its momentum)"))
    if num_classes and math.isfinite(val_acc) and not findings:
        chance = 1.0 / num_classes
        best_val = max(_num(e.get("val_accuracy")) for e in epochs)
        details["chance"] = chance
        if best_val <= chance + chance_margin:
            value = f"val accuracy {100 * best_val:.1f} % ≈ chance {100 * chance:.0f} %"
            if train_acc > chance + chance_margin:
                symptom = (f"validation accuracy stays at chance ({100 * best_val:.1f} %) while training accuracy "
                           f"reaches {100 * train_acc:.0f} %")
                findings.append((FAIL, "labels_shuffled", value, symptom, f"{symptom}: what is learned does not "
                                 "carry over — are the labels shuffled against the images?"))
            else:
                symptom = f"validation accuracy stays at chance ({100 * best_val:.1f} %) and the loss does not fall"
                findings.append((FAIL, "lr_too_low", value, symptom, f"{symptom}: nothing is learned — the learning "
                                 "rate is too low (if the other checks find nothing)"))
    if math.isfinite(train_acc) and math.isfinite(val_acc) and not findings:
        seen = train_eval_accuracy if train_eval_accuracy is not None else train_acc
        gap = seen - val_acc
        details["gap"] = gap
        if gap > gap_warn:
            symptom = f"training accuracy {100 * seen:.0f} % against validation {100 * val_acc:.0f} %"
            findings.append((FAIL if gap > gap_fail else WARN, "overfitting",
                             f"train {100 * seen:.1f} % vs val {100 * val_acc:.1f} %", symptom,
                             f"{symptom}: overfitting — more regularisation (L2, dropout), augmentation or more data"))
        elif max(train_acc, seen) < good_accuracy:  # (gap ≤ gap_warn here: not overfitting)
            symptom = f"training accuracy {100 * train_acc:.0f} % ≈ validation {100 * val_acc:.0f} %, both low"
            findings.append((WARN, "underfitting", f"train {100 * train_acc:.1f} % ≈ val {100 * val_acc:.1f} %",
                             symptom, f"{symptom}: underfitting — a bigger model, less regularisation or longer "
                             "training"))
    if len(finite) >= 50 and not any(f[0] == FAIL for f in findings):
        sm = smooth(finite)
        tail = len(sm) // 4
        rel = (sm[-tail] - sm[-1]) / max(abs(sm[-tail]), 1e-12)
        # the step-to-step jumps against the loss at the start: near convergence a small loss jumps by a large
        # fraction of itself in any healthy minibatch run, so its own level is no yardstick
        resid = np.std(finite[-tail:] - sm[-tail:]) / max(abs(sm[0]), 1e-12)
        early = (sm[0] - sm[-tail]) / max(abs(sm[0]), 1e-12)
        details.update(tail_relative_drop=float(rel), tail_noise=float(resid))
        if resid > noise:
            symptom = f"the loss jumps by {resid:.0%} of its initial value from step to step"
            findings.append((WARN, "noisy_loss", f"loss noise {resid:.0%} of the initial loss in the last quarter",
                             symptom,
                             f"{symptom}: a larger batch or a lower learning rate (decay it)"))
        elif abs(rel) < plateau and early > 0.2 and sm[-1] > 0.2 * sm[0] and (
                not math.isfinite(train_acc) or train_acc < 0.99):
            symptom = f"the loss stopped falling ({sm[-tail]:.3g} → {sm[-1]:.3g} over the last quarter)"
            findings.append((WARN, "plateau", f"loss {sm[-tail]:.3g} → {sm[-1]:.3g} over the last quarter", symptom,
                             f"{symptom}: decay the learning rate (step / cosine schedule)"))
    if not findings:
        acc = f"train {100 * train_acc:.1f} %, val {100 * val_acc:.1f} %" + (
            f" (train in eval mode {100 * train_eval_accuracy:.1f} %)" if train_eval_accuracy is not None else "") \
            if math.isfinite(val_acc) else (
            f"final loss {finite[-1]:.3g}" if len(finite) else "n/a")
        return Verdict(CHECK, PASS, acc, "falling loss, small train/val gap", "the curves look healthy",
                       details=details)
    findings.sort(key=lambda f: f[0] != FAIL)
    details["findings"] = [{"status": f[0], "cause": f[1], "value": f[2], "symptom": f[3]} for f in findings]
    status, cause, value, symptom, advice = findings[0]
    return Verdict(CHECK, status, value, "falling loss, small train/val gap", advice, cause=cause, details=details,
                   symptom=symptom)
