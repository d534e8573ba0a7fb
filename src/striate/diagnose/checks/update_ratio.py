"""Check 8: the update-to-weight ratio ‖ΔW‖/‖W‖ per weight tensor (the notes: around 1e-3; far below →
learning rate too low, far above → too high). Biases and normalisation parameters are left out: a bias
that starts at 0 has an undefined ratio."""

from __future__ import annotations

import numpy as np

from ...nn.module import Module
from .. import thresholds
from ..check import Finding, register
from ..context import Context
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, PASS, SKIP, WARN, Verdict

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
            step = float(np.linalg.norm(new - old))
            out[name] = step / w if w > 0 else (0.0 if step == 0 else float("inf"))  # 0/0: a weight that stays 0
    return out


def judge(records: list[dict], *, loss_drop: float | None = None,
          t: thresholds.UpdateRatio = THRESHOLDS.update_ratio) -> Verdict:
    """records: [{"iteration": i, "ratios": {name: ratio}}] in time order. The median ratio per tensor
    (after the first `skip_first` of the records, when the optimizer's state warms up) is judged;
    the typical value is their geometric mean, and the most extreme tensor is named. loss_drop: the
    relative fall of the training loss over the same steps — tiny updates after the loss fell by half or
    more are the optimizer settling, not a learning rate that is too low. A single tensor far out of the
    band is noted in the advice (per-layer rates), not judged: the typical ratio is the learning rate's."""
    low, high, low_fail, high_fail = t.low, t.high, t.low_fail, t.high_fail
    if not records:
        return Verdict(CHECK, SKIP, "no updates recorded", f"{low:g} … {high:g}", "")
    use = records[int(len(records) * t.skip_first):] or records
    med = {}
    for n in use[0]["ratios"]:
        vals = np.array([r["ratios"].get(n, np.nan) for r in use], dtype=np.float64)
        vals = np.where(np.isnan(vals), np.inf, vals)  # NaN weights = blown up
        med[n] = float(np.median(vals))
    details: dict = {"median": med, "records": len(records), "loss_drop": loss_drop}
    expected = f"≈ 1e-3 ({low:g} … {high:g})"
    if not med:
        return Verdict(CHECK, SKIP, "no weight tensors", expected, "", details=details)
    arr = np.array(list(med.values()))
    if np.all(arr == 0):
        details["typical"] = 0.0
        symptom = "the weights never change"
        # the plainest reading is a learning rate of 0: any cause of zero gradients (dead units, frozen or
        # all-equal weights) found by the other checks is more fundamental and explains it
        return Finding(FAIL, "lr_too_low", symptom, "the learning rate is 0, or no gradient reaches the weights"
                       ).verdict(CHECK, f"0 (median over {len(use)} updates)", expected, details)
    finite = np.isfinite(arr) & (arr > 0)
    typical = float(np.exp(np.mean(np.log(arr[finite])))) if finite.all() else (
        float("inf") if np.isinf(arr).any() else float(np.exp(np.mean(np.log(arr[finite])))) if finite.any() else 0.0)
    details["typical"] = typical
    value = f"{typical:.2g} (median over {len(use)} updates, geometric mean over {len(med)} tensors)"
    hi_name = max(med, key=med.get)
    lo_name = min(med, key=med.get)
    if typical > high:
        symptom = f"the updates are large relative to the weights ({typical:.2g}; largest {hi_name} at " \
                  f"{med[hi_name]:.2g})"
        return Finding(FAIL if typical > high_fail else WARN, "lr_too_high", symptom,
                       "the learning rate is too high").verdict(CHECK, value, expected, details)
    if typical < low:
        symptom = f"the updates are tiny relative to the weights ({typical:.2g}; smallest {lo_name} at " \
                  f"{med[lo_name]:.2g})"
        if loss_drop is not None and loss_drop >= 0.5:
            return Verdict(CHECK, PASS, value, expected, f"{symptom}, after the loss fell {loss_drop:.0%}: the "
                           "optimizer is settling", details=details)
        return Finding(FAIL if typical < low_fail else WARN, "lr_too_low", symptom,
                       "the learning rate is too low").verdict(CHECK, value, expected, details)
    outlier = [n for n, v in med.items() if v > high_fail or v < low_fail]
    note = ""
    if outlier:
        o = outlier[0]
        note = f"; {o} is at {med[o]:.2g}: that layer learns {'fast' if med[o] > high else 'slowly'} " \
               "(per-layer learning rates or a different init)"
        details["outlier"] = o
    return Verdict(CHECK, PASS, value, expected, "update sizes are in the healthy range" + note, details=details)


@register
class UpdateRatio:
    name = CHECK
    needs = frozenset({"trained"})
    causes = frozenset({"lr_too_high", "lr_too_low"})

    def run(self, ctx: Context) -> list[Verdict]:
        p = np.asarray(ctx.trained.losses, dtype=np.float64)
        n = max(len(p) // 10, 1)
        drop = float((p[:n].mean() - p[-n:].mean()) / max(abs(p[:n].mean()), 1e-12)) if len(p) else None
        return [judge(ctx.trained.diagnostics.ratios.records, loss_drop=drop, t=ctx.thresholds.update_ratio)]
