"""Check 3: cranking up the weight penalty must raise the initial loss — and the penalty you train with must
not drown the data loss.

The notes' second sanity check: the data loss plus `penalty(reg)` for increasing `reg`; a penalty that
touches no parameter, or whose value does not grow with `reg`, is a wiring bug (`regularization_ineffective`;
a model with nothing trainable is `frozen`, all-zero weights `symmetric_init`). The penalty you train with
(`used`, and an optimizer's L2 `weight_decay`) is then compared with the data loss at initialisation: above
2× it (WARN) / 10× (FAIL) the optimizer mostly shrinks the weights (`regularization_too_strong`)."""

from __future__ import annotations

import numpy as np

from ...nn.losses import L2, l2
from ...nn.module import Module
from .. import thresholds
from ..check import Finding, register
from ..context import Context
from ..inputs import fresh_copy, loss_and_accuracy, make_optimizer
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "regularisation raises loss"
REGS = (0.0, 1e-3, 1e-1, 1e1)


def judge(model: Module, loss, x: np.ndarray, y: np.ndarray, penalty=l2, *, used=None, weight_decay: float = 0.0,
          t: thresholds.Regularisation = THRESHOLDS.regularisation) -> Verdict:
    """penalty: a factory `reg -> Penalty` (st.nn.l2 / st.nn.l1); used: the Penalty you train with (or None);
    weight_decay: your optimizer's L2 weight decay. Your model is not changed."""
    regs = REGS
    with np.errstate(all="ignore"):
        data_loss, _ = loss_and_accuracy(model, loss, x, y)
        totals = [data_loss + penalty(r).value(model) for r in regs]
    rises = all(b > a for a, b in zip(totals, totals[1:], strict=False))
    details = {"regs": list(regs), "losses": totals}
    value = f"{totals[0]:.4g} → {totals[-1]:.4g} (reg {regs[0]:g} → {regs[-1]:g})"
    expected = "strictly increasing with reg"
    if not np.isfinite(totals).all():
        return Verdict(CHECK, SKIP, value, expected, "the loss is not finite: the penalty cannot be judged",
                       details=details)
    if not rises:
        weights = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.data.ndim >= 2]
        symptom = "the weight penalty does not raise the loss"
        if not any(p.requires_grad for p in model.parameters()):
            cause, why = "frozen", "no parameter is trainable, so the penalty has nothing to act on"
        elif weights and all(not np.any(p.data) for _, p in weights):
            cause, why = "symmetric_init", "every weight is zero"
        else:
            cause, why = "regularization_ineffective", ("it touches no parameter (are the weights named "
                                                        "'weight'?) or is not added to the loss")
        return Finding(FAIL, cause, symptom, why).verdict(CHECK, value, expected, details)
    if used is not None and getattr(used, "reg", None) == 0:
        symptom = f"the penalty you train with, {used!r}, has reg = 0"
        return Finding(WARN, "regularization_ineffective", symptom, "it does nothing (give it a strength, 1e-4 … "
                       "1e-2, or leave it out)").verdict(CHECK, value, expected, details)
    strengths = [(repr(p), p.value(model)) for p in ([used] if used is not None else [])] + (
        [(f"weight_decay={weight_decay:g}", L2(weight_decay).value(model))] if weight_decay > 0 else [])
    if strengths:
        name, term = max(strengths, key=lambda s: s[1])
        ratio = term / max(data_loss, 1e-12)
        details.update(penalty=name, penalty_value=term, penalty_ratio=ratio)
        if ratio > t.strong_warn:
            symptom = f"the penalty {name} is {term:.3g} at initialisation, {ratio:.0f}× the data loss {data_loss:.3g}"
            return Finding(FAIL if ratio > t.strong_fail else WARN, "regularization_too_strong", symptom,
                           "training would mostly shrink the weights (lower reg 10×–100×)").verdict(
                CHECK, value, expected + f", penalty ≤ {t.strong_warn:g}× the data loss", details)
    return Verdict(CHECK, PASS, value, expected, "the penalty is wired in", details=details)


def _penalty_factory(penalty):
    """A factory `reg -> Penalty` of the kind you train with (L2 by default)."""
    if penalty is None:
        return l2
    try:
        type(penalty)(1e-3)
    except Exception:
        return l2
    return type(penalty)


def _weight_decay(optimizer, model, lr) -> float:
    """Your optimizer's coupled L2 weight decay (AdamW's decoupled decay is not an L2 term)."""
    opt = make_optimizer(optimizer, fresh_copy(model), lr)
    return 0.0 if type(opt).__name__ == "AdamW" else float(getattr(opt, "weight_decay", 0.0) or 0.0)


@register
class Regularisation:
    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"regularization_ineffective", "regularization_too_strong", "frozen", "symmetric_init"})

    def run(self, ctx: Context) -> list[Verdict]:
        s = ctx.settings
        decay = _weight_decay(s.optimizer, ctx.model, s.lr) if ctx.trainable else 0.0
        return [judge(ctx.model, ctx.loss, *ctx.sample, _penalty_factory(s.penalty), used=s.penalty,
                      weight_decay=decay, t=ctx.thresholds.regularisation)]
