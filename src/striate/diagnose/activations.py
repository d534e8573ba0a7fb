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

import math

import numpy as np

from ..nn.module import Module
from .causes import remedy
from .stats import LayerStats, layer_statistics
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "activations"
ACTIVATIONS = ("tanh", "sigmoid", "relu", "relu-like")
LARGE_INPUT = 5.0  # input RMS above which the input's scale is the visible cause
LARGE_GAIN, SMALL_GAIN = 2.5, 0.5  # weight RMS·√fan_in outside these: too large / too small (Xavier 1, He 1.41)
_BOUNDED_SCALE = {"tanh": 1.0, "sigmoid": 4.0}  # a sigmoid's output spread is a quarter of a tanh's


def _where(s: LayerStats) -> str:
    return f"layer {s.name} ({s.layer})"


def _feeding(stats: list[LayerStats], s: LayerStats) -> LayerStats | None:
    """The weighted layer that feeds activation `s` (the nearest weighted layer before it)."""
    before = stats[:stats.index(s)]
    return next((p for p in reversed(before) if p.weight_gain is not None), None)


def _small(p: LayerStats | None) -> bool:
    return p is not None and p.weight_gain < SMALL_GAIN


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


def _findings(stats, acts, input_rms, collapse, collapse_warn, shrink, shrink_warn, grow, grow_warn, saturated_fail,
              saturated_warn, dead_fail, dead_warn, zero_fail, zero_warn):
    """[(status, kind of finding, layer, cause, symptom, advice)] in order of precedence."""
    out = []
    big_input = input_rms is not None and input_rms > LARGE_INPUT
    input_text = f"the inputs are large (RMS {input_rms:.3g}): not preprocessed" if big_input else ""
    bad = next((s for s in stats if s.nonfinite > 0), None)
    if bad is not None:
        p = _feeding(stats, bad)
        symptom = f"{_percent(bad.nonfinite)} of the outputs of {_where(bad)} are NaN/inf"
        if input_rms is not None and not math.isfinite(input_rms):
            cause, why = "nonfinite_inputs", "the inputs contain NaN/inf — clean the data"
        else:
            cause = "inputs_not_preprocessed" if big_input else "weights_too_large"
            why = (input_text or "the forward pass overflows: " + _weights_text(p, bad.kind)) + \
                " — scale the inputs / initialise with Xavier or He"
        out.append((FAIL, "nonfinite", bad, cause, symptom, f"{symptom}: {why}"))
    for s in acts:
        if s.kind != "relu" or s.zero is None:
            continue
        units = len(s.active_units) if s.active_units is not None else 0
        # fractions need a layer wide enough to mean something (1 of 2 units is 50 %): a narrow one is
        # judged dead only when every unit is
        if units >= 8:
            level = FAIL if (s.zero >= zero_fail or s.dead >= dead_fail) else (
                WARN if (s.zero >= zero_warn or s.dead >= dead_warn) else None)
        else:
            level = FAIL if s.dead >= 1.0 else None
        if level is None:
            continue
        p = _feeding(stats, s)
        symptom = (f"{_percent(s.zero)} of the outputs of {_where(s)} are zero, {_percent(s.dead)} of its "
                   "units never fire")
        if p is not None and p.weight_gain == 0:
            cause, why = "symmetric_init", f"the weights of {_where(p)} are all zero"
        elif p is not None and p.bias_mean is not None and p.bias_mean < 0 and p.mean < -p.std:
            cause, why = "dead_units", (f"a negative bias: {_where(p)} has mean bias {p.bias_mean:.3g}, below the "
                                        f"spread of its outputs (std {p.std:.2g}), so nearly every input is cut off")
        elif big_input:
            cause, why = "inputs_not_preprocessed", input_text
        else:
            cause, why = "dead_units", "the pre-activations are mostly negative"
        fix = remedy(cause) if cause != "dead_units" else ("use zero or small positive biases, He initialisation "
                                                           "and a moderate learning rate (or LeakyReLU)")
        out.append((level, "dead", s, cause, symptom, f"{symptom}: {why} — {fix}"))
        break
    bounded = [s for s in acts if s.saturated is not None]
    for level, thr in ((FAIL, saturated_fail), (WARN, saturated_warn)):
        hit = next((s for s in bounded if s.saturated > thr), None)
        if hit is not None:
            p = _feeding(stats, hit)
            symptom = f"{100 * hit.saturated:.0f} % of the values of {_where(hit)} are saturated"
            if big_input and (p is None or p.weight_gain < LARGE_GAIN):
                cause, why = "inputs_not_preprocessed", input_text
            elif p is not None and p.bias_mean is not None and abs(p.bias_mean) > 2 and abs(p.mean) > p.std:
                cause, why = "weights_too_large", (f"a large bias: {_where(p)} has mean bias {p.bias_mean:.3g} — start "
                                                   "biases at 0")
            else:
                cause, why = "weights_too_large", (_weights_text(p, hit.kind) + ": weights too large"
                                                   if p is not None and p.weight_gain >= LARGE_GAIN
                                                   else "the pre-activations are too large: weights too large")
            fix = remedy(cause) if cause != "weights_too_large" else ("use Xavier initialisation for tanh/sigmoid, "
                                                                      "or batch normalisation")
            out.append((level, "saturated", hit, cause, symptom, f"{symptom} (gradient ≈ 0 there): {why} — {fix}"))
            break
    if not any(f[1] == "saturated" for f in out):
        out += _collapse(stats, acts, bounded, collapse, collapse_warn, shrink, shrink_warn)
    unbounded = [s for s in acts if s.saturated is None and math.isfinite(s.std)]
    ref = input_rms if input_rms else (unbounded[0].std if unbounded else 0.0)
    if unbounded and ref > 0:
        k = max(unbounded, key=lambda s: s.std)
        ratio = k.std / ref
        if ratio > grow_warn:
            big = max((s for s in stats if s.weight_gain is not None), key=lambda s: s.weight_gain, default=None)
            why = (_weights_text(big, k.kind) if big is not None and big.weight_gain >= LARGE_GAIN
                   else "the weights are too large for this depth")
            symptom = f"activations grow to {ratio:.3g}× the input's scale by {_where(k)} (std {k.std:.3g})"
            visible = big is not None and big.weight_gain >= LARGE_GAIN  # the weights show why: as sure as a FAIL
            out.append((FAIL if ratio > grow or visible else WARN, "explode", k, "weights_too_large", symptom,
                        f"{symptom}: {why} — use He (ReLU) / Xavier initialisation or batch normalisation"))
    return out


def _collapse(stats, acts, bounded, collapse, collapse_warn, shrink, shrink_warn):
    """Activations shrinking towards 0: bounded layers against their natural scale, the others as a trend."""
    out = []
    first = _BOUNDED_SCALE[bounded[0].kind] * bounded[0].std if bounded else 0.0
    # shrinking with depth, or (one layer) collapsed outright under small weights
    low = [s for s in bounded if _BOUNDED_SCALE[s.kind] * s.std < collapse_warn and (
        (s is not bounded[0] and _BOUNDED_SCALE[s.kind] * s.std < 0.5 * first)
        or (_small(_feeding(stats, s)) and (len(bounded) > 1 or _BOUNDED_SCALE[s.kind] * s.std < collapse)))]
    if low:
        s = min(low, key=lambda s: _BOUNDED_SCALE[s.kind] * s.std)  # the deepest collapse decides the status
        small = _smallest_weights(stats, s)
        why = _weights_text(small, s.kind) + ":" if _small(small) else "the weights are"
        symptom = f"the outputs of {_where(s)} have collapsed to std {s.std:.2g}" + (
            f" (from {bounded[0].std:.2g} in {_where(bounded[0])})" if s is not bounded[0] else "")
        out.append((FAIL if _BOUNDED_SCALE[s.kind] * s.std < collapse else WARN, "collapse", s, "weights_too_small",
                    symptom, f"{symptom}: {why} too small for this depth — use Xavier (tanh/sigmoid) initialisation "
                    "or batch normalisation"))
        return out
    free = [s for s in acts if s.saturated is None and math.isfinite(s.std)]
    if len(free) >= 2 and free[0].std > 0:
        for s in free[1:]:
            r = s.std / free[0].std
            if r < shrink_warn and not (s.zero is not None and s.zero > 0.8):
                small = _smallest_weights(stats, s)
                why = _weights_text(small, s.kind) + ":" if _small(small) else "the weights are"
                out.append((FAIL if r < shrink else WARN, "collapse", s, "weights_too_small",
                            f"activations shrink to {r:.2g}× the first layer's std by {_where(s)}",
                            f"activations collapse towards 0 by {_where(s)} (std {r:.1g}× the first activation "
                            f"layer's): {why} too small for this depth — use He (ReLU) / Xavier initialisation"))
                break
    return out


def diagnose_activations(stats: list[LayerStats], input_rms: float | None = None, *, baseline: Verdict | None = None,
                         collapse: float = 0.01, collapse_warn: float = 0.05, shrink: float = 0.05,
                         shrink_warn: float = 0.2, grow: float = 30.0,
                         grow_warn: float = 12.0, saturated_fail: float = 0.5, saturated_warn: float = 0.2,
                         dead_fail: float = 0.7, dead_warn: float = 0.4, zero_fail: float = 0.95,
                         zero_warn: float = 0.85) -> Verdict:
    """Judge the statistics of one pass (`layer_statistics`). input_rms: √mean(x²) of the input batch (names
    raw inputs as the cause). baseline: this check's verdict at initialisation, when judging a trained model.

    Thresholds: saturation WARN > 20 %, FAIL > 50 %; dead: the share of zero outputs WARN ≥ 85 %, FAIL ≥ 95 %,
    or units that never fire WARN ≥ 40 % (layers of ≥ 8 units), FAIL ≥ 70 % (the notes: "as much as 40 %" of a
    network can die; a trained digits net has ≈ 20 %); collapse: a bounded layer's std (a sigmoid's ×4) below
    0.05 (WARN) / 0.01 (FAIL), shrinking with depth or with small weights; an unbounded layer's std below 0.2×
    (WARN) / 0.05× (FAIL) the first activation layer's; growth: 12× (WARN) / 30× (FAIL) the input's RMS."""
    acts = [s for s in stats if s.kind in ACTIVATIONS] or [s for s in stats if s.kind == "param"]
    if not acts:
        return Verdict(CHECK, SKIP, "no layers", "n/a", "no activation layers to inspect")
    details = {"layers": [{"name": s.name, "layer": s.layer, "kind": s.kind, "mean": s.mean, "std": s.std,
                           "saturated": s.saturated, "dead": s.dead, "zero": s.zero, "nonfinite": s.nonfinite}
                          for s in acts], "input_rms": input_rms, "weight_gains": _gains(stats)}
    findings = _findings(stats, acts, input_rms, collapse, collapse_warn, shrink, shrink_warn, grow, grow_warn,
                         saturated_fail, saturated_warn, dead_fail, dead_warn, zero_fail, zero_warn)
    expected = f"std steady with depth; ≤ {saturated_warn:.0%} saturated, < {zero_warn:.0%} zero outputs"
    if not findings:
        summary = f"std {acts[0].std:.2g} → {acts[-1].std:.2g} over {len(acts)} layers"
        return Verdict(CHECK, PASS, summary, expected, "healthy activation scale through the network",
                       details=details)
    findings.sort(key=lambda f: f[0] != FAIL)  # stable: FAIL first, then in order of precedence
    status, kind, layer, cause, symptom, advice = findings[0]
    details["findings"] = [{"status": f[0], "finding": f[1], "layer": f[2].name, "symptom": f[4]} for f in findings]
    details["finding"] = kind
    before = {f["finding"] for f in (baseline.details.get("findings") or [])} if baseline is not None else None
    units = len(layer.active_units) if layer.active_units is not None else None
    if before is not None and kind not in before and kind == "dead" and units is not None and units < 8:
        # a layer this narrow can lose all its units to ordinary updates: the width is the problem
        cause = "underfitting"
        advice = (f"{symptom}, which was not the case at initialisation: with only {units} unit(s) the layer is too "
                  "narrow to keep any alive — make the model wider")
    elif before is not None and kind not in before:
        cause, why = _training_cause(stats, baseline)
        advice = f"{symptom}, which was not the case at initialisation: {why} — " + (
            "lower the weight penalty" if cause == "regularization_too_strong" else "lower the learning rate")
    return Verdict(CHECK, status, symptom, expected, advice, cause=cause, details=details, symptom=symptom)


def input_rms(x: np.ndarray) -> float:
    """√mean(x²) of `x` (an input's scale, its mean included); NaN when `x` holds NaN/inf."""
    with np.errstate(all="ignore"):
        return float(np.sqrt(np.mean(np.square(np.asarray(x), dtype=np.float64)))) if np.size(x) else math.nan


def check_activations(model: Module, x: np.ndarray, bins: int = 40) -> Verdict:
    """Check 6 at initialisation: statistics of one training-mode forward pass on `x`, diagnosed."""
    stats, _ = layer_statistics(model, x, bins=bins)
    v = diagnose_activations(stats, input_rms=input_rms(x))
    v.details["stats"] = [s.to_dict() for s in stats]
    return v
