"""Check 6: activation statistics judged by what each nonlinearity should look like, with the visible cause.

- bounded (tanh, sigmoid): saturation = the fraction of values near the bounds; collapse = the output's std
  against the scale such a layer should have (an absolute threshold: tanh ~ 0.1–0.6, sigmoid a quarter of
  that), never against the input's std — a saturated layer's std is large, a collapsed one's tiny.
- unbounded (ReLU and friends): collapse and explosion as a trend with depth (std relative to the first
  activation layer; explosion also against the input's scale); dead units: both the share of zero outputs
  per layer ("98 % of the outputs of layer 2 are zero") and the units that never fire in the batch.

One primary finding per check (never both saturation and collapse), with the cause it points to: the
preceding weighted layer's mean bias against its output's spread (a negative bias kills ReLUs), its weight
scale RMS·√fan_in against Xavier's 1 / He's √2, or the input's scale (raw 0 … 255 pixels). A finding that
was not there at initialisation (`baseline`) comes from training: the learning rate (weights grew) or the
regularisation (weights shrank).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from .. import thresholds
from ..check import Finding, judged, primary, register
from ..context import Context
from ..stats import LayerStats
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, SKIP, WARN, Verdict

CHECK = "activations"
ACTIVATIONS = ("tanh", "sigmoid", "relu", "relu-like")
_BOUNDED_SCALE = {"tanh": 1.0, "sigmoid": 4.0}  # a sigmoid's output spread is a quarter of a tanh's


def _where(s: LayerStats) -> str:
    return f"layer {s.name} ({s.layer})"


def _feeding(stats: list[LayerStats], s: LayerStats) -> LayerStats | None:
    """The weighted layer that feeds activation `s` (the nearest weighted layer before it)."""
    before = stats[:stats.index(s)]
    return next((p for p in reversed(before) if p.weight_gain is not None), None)


def _small(p: LayerStats | None) -> bool:
    return p is not None and p.weight_gain < THRESHOLDS.activations.small_gain


def _smallest_weights(stats: list[LayerStats], s: LayerStats) -> LayerStats | None:
    """The first weighted layer before `s` with too small weights, else the one with the smallest."""
    before = [p for p in stats[:stats.index(s)] if p.weight_gain is not None]
    return next((p for p in before if _small(p)), min(before, key=lambda p: p.weight_gain, default=None))


def _percent(f: float) -> str:
    return f"{100 * f:.1f} %" if f >= 0.001 or f == 0 else f"{100 * f:.2g} %"


def _gains(stats: list[LayerStats]) -> list[float]:
    return [s.weight_gain for s in stats if s.weight_gain is not None]


def _weights_text(p: LayerStats | None, kind: str) -> str:
    ref = "He's 1.41" if kind.startswith("relu") else "Xavier's 1.0"
    return f"the weights of {_where(p)} have RMS·√fan_in = {p.weight_gain:.2g} (vs {ref})" if p else "the weights"


def _training_cause(stats: list[LayerStats], baseline: Verdict | None) -> tuple[str, str]:
    """(cause, why) for a finding that appeared during training: the weights grew (learning rate) or
    shrank (regularisation) relative to initialisation."""
    before = (baseline.details.get("weight_gains") or []) if baseline is not None else []
    now = _gains(stats)
    if before and len(before) == len(now):
        change = float(np.exp(np.mean(np.log(np.maximum(now, 1e-30)) - np.log(np.maximum(before, 1e-30)))))
        if change < 0.5:
            return "regularization_too_strong", f"the weights shrank {1 / change:.0f}× during training"
    return "lr_too_high", "it appeared during training: the updates are too large"


class _Pass(NamedTuple):
    """What the findings of one pass are read from: all layers' statistics, the activation layers', the
    input's RMS, the thresholds, and the input's scale as a visible cause ('' when it is not one)."""

    stats: list[LayerStats]
    acts: list[LayerStats]
    input_rms: float | None
    t: thresholds.Activations
    input_text: str


def _nonfinite(ps: _Pass) -> list[Finding]:
    bad = next((s for s in ps.stats if s.nonfinite > 0), None)
    if bad is None:
        return []
    p = _feeding(ps.stats, bad)
    symptom = f"{_percent(bad.nonfinite)} of the outputs of {_where(bad)} are NaN/inf"
    if ps.input_rms is not None and not math.isfinite(ps.input_rms):
        cause, why = "nonfinite_inputs", "the inputs contain NaN/inf"
    else:
        cause = "inputs_not_preprocessed" if ps.input_text else "weights_too_large"
        why = ps.input_text or "the forward pass overflows: " + _weights_text(p, bad.kind)
    return [Finding(FAIL, cause, symptom, why, kind="nonfinite", where=bad.name)]


def _dead_level(s: LayerStats, t: thresholds.Activations) -> str | None:
    units = len(s.active_units) if s.active_units is not None else 0
    # fractions need a layer wide enough to mean something (1 of 2 units is 50 %): a narrow one is
    # judged dead only when every unit is
    if units < 8:
        return FAIL if s.dead >= 1.0 else None
    if s.zero >= t.zero_fail or s.dead >= t.dead_fail:
        return FAIL
    return WARN if (s.zero >= t.zero_warn or s.dead >= t.dead_warn) else None


def _dead(ps: _Pass) -> list[Finding]:
    for s in ps.acts:
        level = _dead_level(s, ps.t) if s.kind == "relu" and s.zero is not None else None
        if level is None:
            continue
        p = _feeding(ps.stats, s)
        symptom = (f"{_percent(s.zero)} of the outputs of {_where(s)} are zero, {_percent(s.dead)} of its "
                   "units never fire")
        if p is not None and p.weight_gain == 0:
            cause, why = "symmetric_init", f"the weights of {_where(p)} are all zero"
        elif p is not None and p.bias_mean is not None and p.bias_mean < 0 and p.mean < -p.std:
            cause, why = "dead_units", (f"a negative bias: {_where(p)} has mean bias {p.bias_mean:.3g}, below the "
                                        f"spread of its outputs (std {p.std:.2g}), so nearly every input is cut off")
        elif ps.input_text:
            cause, why = "inputs_not_preprocessed", ps.input_text
        else:
            cause, why = "dead_units", "the pre-activations are mostly negative"
        return [Finding(level, cause, symptom, why, kind="dead", where=s.name)]
    return []


def _saturated(ps: _Pass, bounded: list[LayerStats]) -> list[Finding]:
    t = ps.t
    for level, thr in ((FAIL, t.saturated_fail), (WARN, t.saturated_warn)):
        hit = next((s for s in bounded if s.saturated > thr), None)
        if hit is None:
            continue
        p = _feeding(ps.stats, hit)
        symptom = f"{100 * hit.saturated:.0f} % of the values of {_where(hit)} are saturated"
        if ps.input_text and (p is None or p.weight_gain < t.large_gain):
            cause, why = "inputs_not_preprocessed", ps.input_text
        elif p is not None and p.bias_mean is not None and abs(p.bias_mean) > 2 and abs(p.mean) > p.std:
            cause, why = "weights_too_large", f"a large bias: {_where(p)} has mean bias {p.bias_mean:.3g}"
        else:
            cause, why = "weights_too_large", (_weights_text(p, hit.kind) + ": weights too large"
                                               if p is not None and p.weight_gain >= t.large_gain
                                               else "the pre-activations are too large: weights too large")
        return [Finding(level, cause, symptom, f"the gradient is ≈ 0 there; {why}", kind="saturated",
                        where=hit.name)]
    return []


def _collapse_bounded(ps: _Pass, bounded: list[LayerStats]) -> list[Finding]:
    """Bounded layers (tanh, sigmoid) against their natural scale."""
    t = ps.t
    first = _BOUNDED_SCALE[bounded[0].kind] * bounded[0].std if bounded else 0.0
    # shrinking with depth, or (one layer) collapsed outright under small weights
    low = [s for s in bounded if _BOUNDED_SCALE[s.kind] * s.std < t.collapse_warn and (
        (s is not bounded[0] and _BOUNDED_SCALE[s.kind] * s.std < 0.5 * first)
        or (_small(_feeding(ps.stats, s)) and (len(bounded) > 1 or _BOUNDED_SCALE[s.kind] * s.std < t.collapse)))]
    if not low:
        return []
    s = min(low, key=lambda s: _BOUNDED_SCALE[s.kind] * s.std)  # the deepest collapse decides the status
    small = _smallest_weights(ps.stats, s)
    why = _weights_text(small, s.kind) + ":" if _small(small) else "the weights are"
    symptom = f"the outputs of {_where(s)} have collapsed to std {s.std:.2g}" + (
        f" (from {bounded[0].std:.2g} in {_where(bounded[0])})" if s is not bounded[0] else "")
    return [Finding(FAIL if _BOUNDED_SCALE[s.kind] * s.std < t.collapse else WARN, "weights_too_small", symptom,
                    f"{why} too small for this depth", kind="collapse", where=s.name)]


def _collapse_unbounded(ps: _Pass) -> list[Finding]:
    """Unbounded layers (ReLU and friends) as a trend against the first activation layer."""
    free = [s for s in ps.acts if s.saturated is None and math.isfinite(s.std)]
    if len(free) < 2 or free[0].std <= 0:
        return []
    for s in free[1:]:
        r = s.std / free[0].std
        if r < ps.t.shrink_warn and not (s.zero is not None and s.zero > 0.8):
            small = _smallest_weights(ps.stats, s)
            why = _weights_text(small, s.kind) + ":" if _small(small) else "the weights are"
            return [Finding(FAIL if r < ps.t.shrink else WARN, "weights_too_small",
                            f"activations shrink to {r:.2g}× the first layer's std by {_where(s)}",
                            f"they collapse towards 0 ({r:.1g}× the first activation layer's std): {why} too small "
                            "for this depth", kind="collapse", where=s.name)]
    return []


def _explode(ps: _Pass) -> list[Finding]:
    unbounded = [s for s in ps.acts if s.saturated is None and math.isfinite(s.std)]
    ref = ps.input_rms if ps.input_rms else (unbounded[0].std if unbounded else 0.0)
    if not unbounded or ref <= 0:
        return []
    k = max(unbounded, key=lambda s: s.std)
    ratio = k.std / ref
    if ratio <= ps.t.grow_warn:
        return []
    big = max((s for s in ps.stats if s.weight_gain is not None), key=lambda s: s.weight_gain, default=None)
    visible = big is not None and big.weight_gain >= ps.t.large_gain  # the weights show why: as sure as a FAIL
    why = _weights_text(big, k.kind) if visible else "the weights are too large for this depth"
    symptom = f"activations grow to {ratio:.3g}× the input's scale by {_where(k)} (std {k.std:.3g})"
    return [Finding(FAIL if ratio > ps.t.grow or visible else WARN, "weights_too_large", symptom, why,
                    kind="explode", where=k.name)]


def _findings(ps: _Pass) -> list[Finding]:
    """Every finding of one pass, in order of precedence (never both saturation and collapse)."""
    bounded = [s for s in ps.acts if s.saturated is not None]
    out = _nonfinite(ps) + _dead(ps)
    saturated = _saturated(ps, bounded)
    out += saturated or (_collapse_bounded(ps, bounded) or _collapse_unbounded(ps))
    return out + _explode(ps)


def _from_training(lead: Finding, stats: list[LayerStats], baseline: Verdict, layer: LayerStats) -> Finding:
    """`lead`, a finding the pass at initialisation did not have, put down to training."""
    units = len(layer.active_units) if layer.active_units is not None else None
    if lead.kind == "dead" and units is not None and units < 8:
        # a layer this narrow can lose all its units to ordinary updates: the width is the problem
        return dataclasses.replace(lead, cause="underfitting", reason=(
            f"not the case at initialisation: with only {units} unit(s) the layer is too narrow to keep any alive"))
    cause, why = _training_cause(stats, baseline)
    return dataclasses.replace(lead, cause=cause, reason=f"not the case at initialisation: {why}")


def judge(stats: list[LayerStats], input_rms: float | None = None, *, baseline: Verdict | None = None,
          t: thresholds.Activations = THRESHOLDS.activations) -> Verdict:
    """Judge the statistics of one pass (`stats.layer_statistics`). input_rms: √mean(x²) of the input batch
    (names raw inputs as the cause). baseline: this check's verdict at initialisation, when judging a trained
    model: a finding it did not have comes from training.

    Thresholds (`thresholds.Activations`): saturation WARN > 20 %, FAIL > 50 %; dead: the share of zero outputs
    WARN ≥ 85 %, FAIL ≥ 95 %, or units that never fire WARN ≥ 40 % (layers of ≥ 8 units), FAIL ≥ 70 % (the notes:
    "as much as 40 %" of a network can die; a trained digits net has ≈ 20 %); collapse: a bounded layer's std (a
    sigmoid's ×4) below 0.05 (WARN) / 0.01 (FAIL), shrinking with depth or with small weights; an unbounded
    layer's std below 0.2× (WARN) / 0.05× (FAIL) the first activation layer's; growth: 12× (WARN) / 30× (FAIL)
    the input's RMS."""
    acts = [s for s in stats if s.kind in ACTIVATIONS] or [s for s in stats if s.kind == "param"]
    if not acts:
        return Verdict(CHECK, SKIP, "no layers", "n/a", "no activation layers to inspect")
    details = {"layers": [{"name": s.name, "layer": s.layer, "kind": s.kind, "mean": s.mean, "std": s.std,
                           "saturated": s.saturated, "dead": s.dead, "zero": s.zero, "nonfinite": s.nonfinite}
                          for s in acts], "input_rms": input_rms, "weight_gains": _gains(stats)}
    big_input = input_rms is not None and input_rms > t.large_input
    findings = _findings(_Pass(stats, acts, input_rms, t,
                               f"the inputs are large (RMS {input_rms:.3g}): not preprocessed" if big_input else ""))
    expected = f"std steady with depth; ≤ {t.saturated_warn:.0%} saturated, < {t.zero_warn:.0%} zero outputs"
    if findings:
        lead = primary(findings)
        details["finding"] = lead.kind
        before = {f["finding"] for f in (baseline.details.get("findings") or [])} if baseline is not None else None
        if before is not None and lead.kind not in before:
            layer = next(s for s in stats if s.name == lead.where)
            findings[findings.index(lead)] = _from_training(lead, stats, baseline, layer)
    summary = f"std {acts[0].std:.2g} → {acts[-1].std:.2g} over {len(acts)} layers"
    return judged(CHECK, findings, expected, details, healthy=(summary, "healthy activation scale through the network"))


def input_rms(x: np.ndarray) -> float:
    """√mean(x²) of `x` (an input's scale, its mean included); NaN when `x` holds NaN/inf."""
    with np.errstate(all="ignore"):
        return float(np.sqrt(np.mean(np.square(np.asarray(x), dtype=np.float64)))) if np.size(x) else math.nan


@register
class Activations:
    """At initialisation (on 256 samples) and, after the short run, on the trained copy (512 samples: "dead"
    then means never active on any)."""

    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"nonfinite_inputs", "inputs_not_preprocessed", "symmetric_init", "dead_units",
                        "weights_too_large", "weights_too_small", "lr_too_high", "regularization_too_strong",
                        "underfitting"})
    after_training = True

    def run(self, ctx: Context) -> list[Verdict]:
        if ctx.trained is None:
            stats, _ = ctx.statistics(n=256)
            v = judge(stats, input_rms(ctx.x[:256]), t=ctx.thresholds.activations)
            v.check = f"{self.name} (at init)"
            v.details["stats"] = [s.to_dict() for s in stats]
            return [v]
        if ctx.trained.diverged:
            return []
        stats, _ = ctx.statistics(ctx.trained.model)
        v = judge(stats, input_rms(ctx.x[:512]), baseline=ctx.earlier.get(self.name), t=ctx.thresholds.activations)
        v.check = f"{self.name} (after {ctx.trained.trainer.iteration} steps)"
        return [v]
