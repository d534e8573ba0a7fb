"""Check 8: the update-to-weight ratio ‖ΔW‖/‖W‖ per weight tensor (the notes: around 1e-3; far below →
learning rate too low, far above → too high). Biases and normalisation parameters are left out: a bias
that starts at 0 has an undefined ratio."""

from __future__ import annotations

import numpy as np

from ..nn.module import Module
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "update/weight ratio"


def weight_tensors(model: Module) -> list[tuple[str, object]]:
    """(name, Parameter) of the trainable tensors with ≥ 2 axes (Linear/Conv weights)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.data.ndim >= 2]


def update_ratios(before: dict[str, np.ndarray], model: Module) -> dict[str, float]:
    """‖W_now − W_before‖ / ‖W_now‖ per tensor in `before` (NaN/inf propagate: an exploded run shows)."""
    out = {}
    params = dict(model.named_parameters())
    for name, old in before.items():
        new = params[name].data
        with np.errstate(all="ignore"):
            w = float(np.linalg.norm(new))
            out[name] = float(np.linalg.norm(new - old)) / w if w > 0 else float("inf")
    return out


def diagnose_update_ratio(records: list[dict], low: float = 1e-4, high: float = 3e-2, low_fail: float = 1e-5,
                          high_fail: float = 0.1, skip_first: float = 0.1) -> Verdict:
    """records: [{"iteration": i, "ratios": {name: ratio}}] in time order. The median ratio per tensor
    (after the first `skip_first` of the records, when the optimizer's state warms up) is judged;
    the typical value is their geometric mean, and the most extreme tensor is named."""
    if not records:
        return Verdict(CHECK, SKIP, "no updates recorded", f"{low:g} … {high:g}", "")
    use = records[int(len(records) * skip_first):] or records
    names = list(use[0]["ratios"])
    med = {}
    for n in names:
        vals = np.array([r["ratios"].get(n, np.nan) for r in use], dtype=np.float64)
        vals = np.where(np.isnan(vals), np.inf, vals)  # NaN weights = blown up
        med[n] = float(np.median(vals))
    arr = np.array(list(med.values()))
    finite = np.isfinite(arr) & (arr > 0)
    typical = float(np.exp(np.mean(np.log(arr[finite])))) if finite.all() else (
        float("inf") if np.isinf(arr).any() else 0.0)
    details = {"median": med, "typical": typical, "records": len(records)}
    expected = f"≈ 1e-3 ({low:g} … {high:g})"
    value = f"{typical:.2g} (median over {len(use)} updates, geometric mean over {len(med)} tensors)"
    hi_name = max(med, key=med.get)
    lo_name = min(med, key=med.get)
    if typical > high:
        status = FAIL if typical > high_fail else WARN
        return Verdict(CHECK, status, value, expected,
                       f"updates are too large relative to the weights (largest: {hi_name} at {med[hi_name]:.2g}):"
                       " the learning rate is too high — lower it", cause="too_high", details=details)
    if typical < low:
        status = FAIL if typical < low_fail else WARN
        return Verdict(CHECK, status, value, expected,
                       f"updates are tiny relative to the weights (smallest: {lo_name} at {med[lo_name]:.2g}): "
                       "the learning rate is too low — raise it", cause="too_low", details=details)
    outlier = [n for n, v in med.items() if v > high_fail or v < low_fail]
    if outlier:
        o = outlier[0]
        pace = "too fast" if med[o] > high else "too slowly"
        return Verdict(CHECK, WARN, value, expected, f"typical ratio is fine but {o} is at {med[o]:.2g}: that "
                       f"layer learns {pace} (per-layer learning rates or a different init)", cause="layer_outlier",
                       details=details)
    return Verdict(CHECK, PASS, value, expected, "update sizes are in the healthy range", details=details)
