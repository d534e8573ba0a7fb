"""Check 2: the loss at initialisation, regularisation off, against its chance value.

Softmax: ln C (every class equally likely); multiclass SVM with margin Δ: (C − 1)·Δ (all scores ≈ 0).
Far above chance: scores too large at init (weight scale, especially the last layer). Far below: the
model already "knows" the labels — a label leak, or a loss that is not the one you think. The band is two-sided:
|loss − chance| above `warn`·chance warns; above (1 + `fail`)·chance or below `fail_below`·chance fails."""

from __future__ import annotations

import math

import numpy as np

from ...nn.module import Module
from .. import thresholds
from ..check import Finding, register
from ..context import Context
from ..inputs import chance_loss, scores_eval
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "initial loss"


def _too_high_cause(model: Module, x: np.ndarray, scores: np.ndarray) -> tuple[str, str]:
    """(cause, why) of scores that start too large: weights far above the Xavier/He scale, unscaled inputs,
    or a per-class offset from the last layer's bias."""
    from ..stats import weight_gain, weight_of
    from .activations import input_rms

    large = THRESHOLDS.activations.large_gain, THRESHOLDS.activations.large_input

    layers = [(name, m) for name, m in model.named_modules() if not m._modules and weight_of(m) is not None]
    gains = [(name, weight_gain(weight_of(m).data)) for name, m in layers]
    if gains:
        name, g = next((t for t in gains if t[1] > large[0]), max(gains, key=lambda t: t[1]))
        if g > large[0]:
            return "weights_too_large", (f"the weights of layer {name} have RMS·√fan_in = {g:.2g} (Xavier/He: "
                                         "1.0/1.41): the weights are too large")
    rms = input_rms(x)
    if rms > large[1]:
        return "inputs_not_preprocessed", f"the inputs are large (RMS {rms:.3g}): not preprocessed"
    bias = layers[-1][1]._parameters.get("bias") if layers else None
    if bias is not None and bias.data.size > 1:
        b = bias.data.astype(np.float64)
        offset = float(b.max() - np.median(b))
        if offset > 2.0:
            k = int(b.argmax())
            return "bad_initial_loss", f"the last layer's bias favours class {k} by {offset:.3g} before any training"
    return "bad_initial_loss", "the scores are too large at initialisation (the last layer's scale)"


def judge(model: Module, loss, x: np.ndarray, y: np.ndarray, num_classes: int | None = None,
          t: thresholds.InitialLoss = THRESHOLDS.initial_loss) -> Verdict:
    """PASS when |loss − chance| ≤ warn·chance, on either side; FAIL above (1 + fail)·chance, below
    fail_below·chance, or non-finite; WARN between."""
    with np.errstate(all="ignore"):
        scores = scores_eval(model, x)
        value = float(loss(scores, y))
        acc = float(np.mean(scores.argmax(axis=1) == y))
    c = num_classes or int(max(y.max() + 1, 2))
    chance = chance_loss(loss, c)
    details = {"loss": value, "chance": chance, "num_classes": c, "accuracy": acc}
    if not math.isfinite(value):
        symptom = f"the initial loss is {value}"
        if not np.isfinite(x).all():
            cause, why = "nonfinite_inputs", "the inputs contain NaN/inf"
        else:
            cause, why = _too_high_cause(model, x, np.nan_to_num(scores))
            cause = "weights_too_large" if cause == "bad_initial_loss" else cause
        return Finding(FAIL, cause, symptom, why).verdict(CHECK, f"{value}", "finite", details)
    if chance is None:
        return Verdict(CHECK, SKIP, f"{value:.4g}", "n/a", f"no chance value known for {type(loss).__name__}",
                       details=details)
    expected = f"≈ {chance:.3f} ({'ln' if 'Softmax' in type(loss).__name__ else '(C−1)·Δ,'} C={c})"
    dev = (value - chance) / chance
    text = f"{value:.4f} ({dev:+.0%} vs chance)"
    if abs(dev) <= t.warn:
        return Verdict(CHECK, PASS, text, expected, "the scores start near uniform, as they should",
                       details=details)
    # two-sided: a loss cannot fall more than 100 % below chance, so the band below is its own
    status = FAIL if (dev > t.fail or value < t.fail_below * chance) else WARN
    if dev > 0:
        symptom = f"the initial loss is {dev:.0%} above chance"
        cause, why = _too_high_cause(model, x, scores)
    else:
        symptom = f"the initial loss is {-dev:.0%} below chance"
        cause, why = "bad_initial_loss", ("the model already \"knows\" the labels before training: the labels may "
                                          "leak into the inputs, or the loss/labels are not what you think")
    return Finding(status, cause, symptom, why).verdict(CHECK, text, expected, details)


@register
class InitialLoss:
    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"bad_initial_loss", "weights_too_large", "inputs_not_preprocessed", "nonfinite_inputs"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [judge(ctx.model, ctx.loss, *ctx.sample, ctx.num_classes, ctx.thresholds.initial_loss)]
