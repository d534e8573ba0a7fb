"""Check 7: gradient statistics per layer — vanishing or exploding gradients, weights that get none.

The measure is the RMS of the gradient arriving at each weighted layer's output in the backward pass
(dL/dy), each layer below the top one compared with the top (nearest the loss): when it shrinks by
more than `vanish`× on the way down, the lower layers barely learn; when it grows by more than `explode`×
(`thresholds.Gradients`), updates will blow up. The cause comes from the activation statistics of the same
pass: vanishing with saturated units → weights too large, with dead units → dead units, otherwise → weights too small;
exactly-zero gradients below a dead layer → dead units, below all-equal weights → symmetric init."""

from __future__ import annotations

import math

from .. import thresholds
from ..check import Finding, register
from ..context import Context
from ..stats import LayerStats
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, PASS, SKIP, WARN, Verdict
from . import activations as _activations

CHECK = "gradients"


def _cause_from_activations(activations: Verdict | None, stats: list[LayerStats], default: str) -> str:
    """The cause the activation statistics of the same pass point to (their finding's cause), else `default`."""
    if activations is not None and activations.status in (WARN, FAIL) and activations.cause:
        return activations.cause
    if default == "weights_too_small" and any(s.saturated is not None and s.saturated > 0.2 for s in stats):
        return "weights_too_large"
    return default


def _zero_gradient(zero: list[str], stats: list[LayerStats], activations: Verdict) -> Finding:
    """Weight tensors that get exactly zero gradient, and why."""
    symptom = f"no gradient reaches {', '.join(zero[:3])}" + (f" (+{len(zero) - 3})" if len(zero) > 3 else "")
    dead = next((s for s in stats if s.zero is not None and s.zero >= 0.99), None)
    flat = next((s for s in stats if s.saturated is not None and s.saturated >= 0.99), None)
    const = [s for s in stats if s.weight_gain == 0.0]
    if const:
        cause, why = "symmetric_init", f"the weights of layer {const[0].name} ({const[0].layer}) are all zero"
    elif dead is not None:
        cause = _cause_from_activations(activations, stats, "dead_units")
        why = f"every unit of layer {dead.name} ({dead.layer}) is off, so no gradient flows below it"
    elif flat is not None:
        cause = _cause_from_activations(activations, stats, "weights_too_large")
        why = f"every unit of layer {flat.name} ({flat.layer}) is saturated, so no gradient flows below it"
    elif activations.status != PASS and activations.cause:
        cause, why = activations.cause, f"the activations show why: {activations.symptom or activations.value}"
    else:
        cause, why = "frozen", "they are not connected to the loss"
    return Finding(FAIL, cause, symptom, f"{len(zero)} weight tensor(s) get exactly zero gradient: {why}")


def _verdict(f: Finding, value: str, expected: str, details: dict) -> Verdict:
    return Verdict(CHECK, f.status, value, expected, f.advice, cause=f.cause, details=details, symptom=f.symptom)


def _scale(weighted: list[LayerStats], stats, activations, details: dict, t: thresholds.Gradients) -> Verdict:
    """Vanishing or exploding: the gradient RMS below the top layer against the top layer's."""
    last = weighted[-1]
    below = weighted[:-1] or weighted
    # the smallest (or largest) gradient below the top layer, relative to the top layer's
    lo, hi = min(below, key=lambda s: s.grad_rms), max(below, key=lambda s: s.grad_rms)
    scale = last.grad_rms if last.grad_rms > 0 else math.inf
    low_ratio, high_ratio = lo.grad_rms / scale, hi.grad_rms / scale
    first = lo if low_ratio < t.vanish_warn else hi
    ratio = low_ratio if low_ratio < t.vanish_warn else high_ratio
    details["ratio"] = ratio
    value = f"|dL/dy| {first.grad_rms:.2g} (layer {first.name}) vs {last.grad_rms:.2g} (layer {last.name})"
    expected = f"within {t.vanish_warn:g}× … {t.explode_warn:g}× from the top layer to the bottom"
    if ratio < t.vanish_warn:
        cause = _cause_from_activations(activations, stats, "weights_too_small")
        f = Finding(FAIL if ratio < t.vanish else WARN, cause,
                    f"gradients vanish towards the input ({ratio:.1g}× by layer {first.name})",
                    "the lower layers barely learn")
        return _verdict(f, value, expected, details)
    if ratio > t.explode_warn:
        cause = _cause_from_activations(activations, stats, "weights_too_large")
        f = Finding(FAIL if ratio > t.explode else WARN, cause,
                    f"gradients grow towards the input ({ratio:.0f}× by layer {first.name})", "updates will blow up")
        return _verdict(f, value, expected, details)
    return Verdict(CHECK, PASS, value, expected, "gradients keep their scale through the network", details=details)


def judge(stats: list[LayerStats], params: dict[str, dict], *, activations: Verdict | None = None,
          t: thresholds.Gradients = THRESHOLDS.gradients) -> Verdict:
    """activations: the activation verdict of the same pass (`activations.judge`); computed from `stats`
    when not given."""
    if activations is None:
        activations = _activations.judge(stats)
    weighted = [s for s in stats if s.kind in ("param", "relu-like") and s.grad_rms is not None]
    details = {"layers": [{"name": s.name, "layer": s.layer, "grad_rms": s.grad_rms} for s in weighted],
               "params": params}
    trainable = {n: p for n, p in params.items() if p.get("trainable", True)}
    if not trainable:
        return Verdict(CHECK, SKIP, "no trainable parameters", "n/a", "nothing to measure", details=details)
    nonfinite = [n for n, p in trainable.items() if not p["finite"]]
    if nonfinite:
        cause = _cause_from_activations(activations, stats, "weights_too_large")
        f = Finding(FAIL, cause, f"non-finite gradient in {nonfinite[0]}",
                    "the inputs contain NaN/inf" if cause == "nonfinite_inputs" else "the gradients overflow")
        return _verdict(f, f.symptom, "finite", details)
    zero = [n for n, p in trainable.items() if p["grad_norm"] == 0.0 and p.get("ndim", 2) >= 2]
    if zero:
        f = _zero_gradient(zero, stats, activations)
        return _verdict(f, f.symptom, "non-zero", details)
    if not weighted:
        return Verdict(CHECK, SKIP, "no weighted layers", "n/a", "", details=details)
    return _scale(weighted, stats, activations, details, t)


@register
class Gradients:
    """At initialisation and, after the short run, on the trained copy: gradients that go wrong only
    during training, with healthy activations, come from the updates (`lr_too_high`)."""

    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"nonfinite_inputs", "weights_too_large", "weights_too_small", "dead_units", "symmetric_init",
                        "frozen", "lr_too_high", "inputs_not_preprocessed"})
    after_training = True

    def run(self, ctx: Context) -> list[Verdict]:
        t, at = ctx.thresholds, ctx.thresholds.activations
        if ctx.trained is None:
            stats, params = ctx.statistics(n=256)
            a = _activations.judge(stats, _activations.input_rms(ctx.x[:256]), t=at)
            g = judge(stats, params, activations=a, t=t.gradients)
            g.check = f"{self.name} (at init)"
            return [g]
        if ctx.trained.diverged:
            return []
        stats, params = ctx.statistics(ctx.trained.model)
        a = _activations.judge(stats, _activations.input_rms(ctx.x[:512]),
                               baseline=ctx.earlier.get(_activations.CHECK), t=at)
        g = judge(stats, params, activations=a, t=t.gradients)
        before = ctx.earlier.get(self.name)
        if g.status != PASS and before is not None and before.status == PASS and a.status == PASS:
            g.cause = "lr_too_high"  # appeared during training, with healthy activations: the updates
        g.check = f"{self.name} (after {ctx.trained.trainer.iteration} steps)"
        g.details.pop("params", None)
        return [g]
