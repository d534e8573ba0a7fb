"""Check 1: gradient check of the whole model (float64, a few samples, dropout off) that names the
first layer whose backward is wrong.

The whole model is checked on Σ scores·R (R fixed random) by the public `gradcheck`, which also checks
every leaf layer alone on the input it saw in that forward pass, so a wrong layer is named even though its
error also spoils every gradient below it; the loss is checked on the model's scores. Thresholds follow the
notes: a relative error ≤ 1e-7 is excellent in float64, ≤ 1e-5 acceptable; 1e-5 … 1e-3 is suspicious (WARN),
above 1e-3 wrong. When every layer passes alone and only striate's containers join them, a whole-model
difference is numerical (kinks, rounding at extreme scales), not a wrong backward."""

from __future__ import annotations

import numpy as np

from ...nn.containers import Concat, Residual, Sequential
from ...nn.module import Module
from .. import thresholds
from ..check import Finding, register
from ..context import Context
from ..gradcheck import gradcheck
from ..inputs import fresh_copy
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "gradient check"
_TRUSTED = (Sequential, Concat, Residual)  # containers whose gradient routing striate's own tests check


SAMPLES, MAX_CHECKS, MODEL_CHECKS = 2, 24, 6


def judge(model: Module, loss, x: np.ndarray, y: np.ndarray, t: thresholds.GradientCheck = THRESHOLDS.gradient_check,
          seed: int = 0) -> Verdict:
    """x: a batch (only the first `SAMPLES` are used), y: its labels. Your model is not changed.

    Every leaf layer gets `MAX_CHECKS` elements per tensor checked on its own input; the whole model
    (which is what catches a container routing gradients wrongly) `MODEL_CHECKS` per tensor, since each
    of its evaluations is a full forward pass."""
    tol, fail_tol, max_checks, model_checks = t.tol, t.fail_tol, MAX_CHECKS, MODEL_CHECKS
    x = np.asarray(x[:SAMPLES], dtype=np.float64)
    y = np.asarray(y[:SAMPLES])
    expected = f"≤ {tol:.0e} (float64)"
    if not np.isfinite(x).all():
        return Verdict(CHECK, SKIP, "non-finite inputs", expected, "the first samples contain NaN/inf: nothing to "
                       "compare")
    m = fresh_copy(model).to(np.float64)
    m.eval()  # dropout and stochastic depth off; BatchNorm uses its (fixed) running statistics
    with np.errstate(all="ignore"):
        whole = gradcheck(m, x, tol=tol, max_checks=model_checks, layer_checks=max_checks, seed=seed)
        scores = m.forward(x)
        loss_report = gradcheck(loss, scores, target=y, tol=tol, max_checks=max_checks, seed=seed)
    loss_err = max(loss_report.errors.values(), default=0.0)
    errors = [e for e in [max(whole.errors.values(), default=0.0), loss_err] + [c.max_rel_error for c in whole.layers]]
    worst_err = max(errors) if all(np.isfinite(errors)) else float("inf")
    details = {"model": whole.errors, "layers": {(c.name or "model"): c.max_rel_error for c in whole.layers},
               "loss": loss_err, "tol": tol}
    value = f"max rel error {worst_err:.1e}"
    if whole.ok and loss_err <= tol:
        return Verdict(CHECK, PASS, value, expected, "analytic and numerical gradients agree", details=details)
    status = FAIL if worst_err > fail_tol else WARN
    wrong = whole.first_wrong_layer
    if wrong is not None and type(dict(m.named_modules()).get(wrong.name)) in _TRUSTED:
        wrong = None  # one of striate's containers over layers that all pass: numerical, see below
    if wrong is not None:
        where = wrong.where()
        details["first_failure"] = where
        others = [c.name for c in whole.layers if not c.ok and c is not wrong]
        symptom = f"the backward pass of {where} disagrees with its forward (rel error {wrong.max_rel_error:.1e})"
        return Finding(status, "wrong_backward", symptom, f"also wrong: {', '.join(others)}" if others else ""
                       ).verdict(CHECK, f"{value}; first wrong: {where}", expected, details)
    if loss_err > tol:
        details["first_failure"] = f"loss ({type(loss).__name__})"
        symptom = f"the gradient of {type(loss).__name__} is wrong (rel error {loss_err:.1e})"
        return Finding(status, "wrong_backward", symptom).verdict(CHECK, f"{value} in the loss", expected, details)
    first = whole.first_failure()
    if all(type(c) in _TRUSTED for c in m.modules() if c._modules):
        # every layer passes alone and striate's containers only chain them: the whole model's differences
        # are numerical (kinks or rounding at extreme activation scales), not a wrong backward
        return Verdict(CHECK, PASS, f"{value} (whole model); every layer passes alone", expected,
                       f"every layer's backward agrees with its forward; the whole model's finite differences are "
                       f"imprecise at {first.name if first else '?'} (tiny or huge activations)", details=details)
    details["first_failure"] = first.name if first else "model"
    symptom = f"the model's gradient disagrees with its forward (first bad tensor: {first.name if first else '?'})"
    return Finding(status, "wrong_backward", symptom, "every layer passes alone, so a container routes the gradients "
                   "wrongly").verdict(CHECK, value, expected, details)


@register
class GradientCheck:
    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"wrong_backward"})
    leads = frozenset({"wrong_backward"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [judge(ctx.model, ctx.loss, ctx.x, ctx.y, ctx.thresholds.gradient_check)]
