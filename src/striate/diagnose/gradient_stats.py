"""Check 7: gradient statistics per layer — vanishing or exploding gradients, weights that get none.

The measure is the RMS of the gradient arriving at each weighted layer's output in the backward pass
(dL/dy), each layer below the top one compared with the top (nearest the loss): when it shrinks by
more than `vanish`× on the way down, the lower layers barely learn; when it grows by more than `explode`×,
updates will blow up. The cause comes from the activation statistics of the same pass: vanishing with
saturated units → weights too large, with dead units → dead units, otherwise → weights too small;
exactly-zero gradients below a dead layer → dead units, below all-equal weights → symmetric init."""

from __future__ import annotations

import math

import numpy as np

from ..nn.module import Module
from .activations import diagnose_activations, input_rms
from .stats import LayerStats, layer_statistics
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "gradients"


def _cause_from_activations(activations: Verdict | None, stats: list[LayerStats], default: str) -> str:
    """The cause the activation statistics of the same pass point to (their finding's cause), else `default`."""
    if activations is not None and activations.status in (WARN, FAIL) and activations.cause:
        return activations.cause
    if default == "weights_too_small" and any(s.saturated is not None and s.saturated > 0.2 for s in stats):
        return "weights_too_large"
    return default


def diagnose_gradients(stats: list[LayerStats], params: dict[str, dict], vanish: float = 1e-3,
                       vanish_warn: float = 1e-2, explode: float = 1e3, explode_warn: float = 1e2, *,
                       activations: Verdict | None = None) -> Verdict:
    """activations: the activation verdict of the same pass (`diagnose_activations`); computed from `stats`
    when not given."""
    if activations is None:
        activations = diagnose_activations(stats)
    weighted = [s for s in stats if s.kind in ("param", "relu-like") and s.grad_rms is not None]
    details = {"layers": [{"name": s.name, "layer": s.layer, "grad_rms": s.grad_rms} for s in weighted],
               "params": params}
    trainable = {n: p for n, p in params.items() if p.get("trainable", True)}
    if not trainable:
        return Verdict(CHECK, SKIP, "no trainable parameters", "n/a", "nothing to measure", details=details)
    nonfinite = [n for n, p in trainable.items() if not p["finite"]]
    if nonfinite:
        symptom = f"non-finite gradient in {nonfinite[0]}"
        cause = _cause_from_activations(activations, stats, "weights_too_large")
        why = "the inputs contain NaN/inf" if cause == "nonfinite_inputs" else "the gradients overflow"
        return Verdict(CHECK, FAIL, symptom, "finite", f"{symptom}: {why} — {_remedy(cause)}", cause=cause,
                       details=details, symptom=symptom)
    zero = [n for n, p in trainable.items() if p["grad_norm"] == 0.0 and p.get("ndim", 2) >= 2]
    if zero:
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
        return Verdict(CHECK, FAIL, symptom, "non-zero", f"{len(zero)} weight tensor(s) get exactly zero gradient: "
                       f"{why} — {_remedy(cause)}", cause=cause, details=details, symptom=symptom)
    if not weighted:
        return Verdict(CHECK, SKIP, "no weighted layers", "n/a", "", details=details)
    last = weighted[-1]
    below = weighted[:-1] or weighted
    # the smallest (or largest) gradient below the top layer, relative to the top layer's
    lo, hi = min(below, key=lambda s: s.grad_rms), max(below, key=lambda s: s.grad_rms)
    scale = last.grad_rms if last.grad_rms > 0 else math.inf
    low_ratio, high_ratio = lo.grad_rms / scale, hi.grad_rms / scale
    first = lo if low_ratio < vanish_warn else hi
    ratio = low_ratio if low_ratio < vanish_warn else high_ratio
    details["ratio"] = ratio
    value = f"|dL/dy| {first.grad_rms:.2g} (layer {first.name}) vs {last.grad_rms:.2g} (layer {last.name})"
    expected = f"within {vanish_warn:g}× … {explode_warn:g}× from the top layer to the bottom"
    if ratio < vanish_warn:
        cause = _cause_from_activations(activations, stats, "weights_too_small")
        symptom = f"gradients vanish towards the input ({ratio:.1g}× by layer {first.name})"
        return Verdict(CHECK, FAIL if ratio < vanish else WARN, value, expected,
                       f"{symptom}: the lower layers barely learn — {_remedy(cause)}", cause=cause,
                       details=details, symptom=symptom)
    if ratio > explode_warn:
        symptom = f"gradients grow towards the input ({ratio:.0f}× by layer {first.name})"
        cause = _cause_from_activations(activations, stats, "weights_too_large")
        return Verdict(CHECK, FAIL if ratio > explode else WARN, value, expected,
                       f"{symptom}: {_remedy(cause)}", cause=cause, details=details, symptom=symptom)
    return Verdict(CHECK, PASS, value, expected, "gradients keep their scale through the network", details=details)


def _remedy(cause: str) -> str:
    from .causes import remedy

    return {"weights_too_small": "the weights are too small: use Xavier/He initialisation or batch normalisation",
            "weights_too_large": "the weights are too large (saturated or exploding units): use Xavier/He "
                                 "initialisation or batch normalisation",
            "dead_units": "dead ReLUs block the gradient: use zero or small positive biases and He "
                          "initialisation",
            "lr_too_high": "the updates were too large: lower the learning rate"}.get(cause, remedy(cause))


def check_gradient_stats(model: Module, loss, x: np.ndarray, y: np.ndarray) -> Verdict:
    """Check 7 at initialisation: one forward/backward pass of a copy on (x, y)."""
    stats, params = layer_statistics(model, x, loss, y)
    return diagnose_gradients(stats, params, activations=diagnose_activations(stats, input_rms(x)))
