"""Check 7: gradient statistics per layer — vanishing or exploding gradients, parameters that get none.

The measure is the RMS of the gradient arriving at each weighted layer's output in the backward pass
(dL/dy), each layer below the top one compared with the top (nearest the loss): when it shrinks by
more than `vanish`× on the way down, the lower layers barely learn (small weights, saturated tanh/sigmoid,
dead ReLUs); when it grows by more than `explode`×, updates will blow up."""

from __future__ import annotations

import numpy as np

from ..nn.module import Module
from .stats import LayerStats, layer_statistics
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "gradients"


def diagnose_gradients(stats: list[LayerStats], params: dict[str, dict], vanish: float = 1e-3,
                       vanish_warn: float = 1e-2, explode: float = 1e3, explode_warn: float = 1e2) -> Verdict:
    weighted = [s for s in stats if s.kind in ("param", "relu-like") and s.grad_rms is not None]
    details = {"layers": [{"name": s.name, "layer": s.layer, "grad_rms": s.grad_rms} for s in weighted],
               "params": params}
    nonfinite = [n for n, p in params.items() if not p["finite"]]
    if nonfinite:
        return Verdict(CHECK, FAIL, f"non-finite gradient in {nonfinite[0]}", "finite",
                       "gradients overflow: learning rate or weights far too large", cause="not_finite",
                       details=details)
    zero = [n for n, p in params.items() if p["grad_norm"] == 0.0]
    if len(weighted) < 1:
        return Verdict(CHECK, SKIP, "no weighted layers", "n/a", "", details=details)
    last = weighted[-1]
    below = weighted[:-1] or weighted
    # the smallest (or largest) gradient below the top layer, relative to the top layer's
    lo, hi = min(below, key=lambda s: s.grad_rms), max(below, key=lambda s: s.grad_rms)
    scale = last.grad_rms if last.grad_rms > 0 else np.inf
    low_ratio, high_ratio = lo.grad_rms / scale, hi.grad_rms / scale
    first = lo if low_ratio < vanish_warn else hi
    ratio = low_ratio if low_ratio < vanish_warn else high_ratio
    details["ratio"] = ratio
    value = f"|dL/dy| {first.grad_rms:.2g} (layer {first.name}) vs {last.grad_rms:.2g} (layer {last.name})"
    expected = f"within {vanish_warn:g}× … {explode_warn:g}× from the top layer to the bottom"
    if zero:
        return Verdict(CHECK, FAIL, f"no gradient reaches {', '.join(zero[:3])}", "non-zero",
                       f"{len(zero)} parameter tensor(s) get exactly zero gradient: dead ReLUs above them "
                       "(a large negative bias?), or they are not connected to the loss", cause="zero",
                       details=details)
    if ratio < vanish_warn:
        status = FAIL if ratio < vanish else WARN
        return Verdict(CHECK, status, value, expected,
                       f"gradients vanish towards the input ({ratio:.1g}× by layer {first.name}): weights too "
                       "small, or saturated tanh/sigmoid units — use Xavier/He init, ReLU, batch normalisation",
                       cause="vanishing", details=details)
    if ratio > explode_warn:
        status = FAIL if ratio > explode else WARN
        return Verdict(CHECK, status, value, expected,
                       f"gradients grow towards the input ({ratio:.0f}× by layer {first.name}): weights too large"
                       " — use Xavier/He init, batch normalisation or gradient clipping", cause="exploding",
                       details=details)
    return Verdict(CHECK, PASS, value, expected, "gradients keep their scale through the network", details=details)


def check_gradient_stats(model: Module, loss, x: np.ndarray, y: np.ndarray) -> Verdict:
    """Check 7 at initialisation: one forward/backward pass of a copy on (x, y)."""
    stats, params = layer_statistics(model, x, loss, y)
    return diagnose_gradients(stats, params)
