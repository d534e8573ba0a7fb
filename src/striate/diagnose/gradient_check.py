"""Check 1: gradient check of the whole model (float64, a few samples, dropout off) that names the
first layer whose backward is wrong.

The whole model is checked on Σ scores·R (R fixed random), then every leaf layer alone on the input it
saw in that forward pass, so a wrong layer is named even though its error also spoils every gradient
below it; the loss is checked on the model's scores. Thresholds follow the notes: a relative error
≤ 1e-7 is excellent in float64, ≤ 1e-5 acceptable; 1e-5 … 1e-3 is suspicious (WARN), above 1e-3 wrong."""

from __future__ import annotations

import numpy as np

from ..nn.module import Module
from .gradcheck import gradcheck
from .hooks import leaf_modules, tap
from .inputs import fresh_copy
from .verdict import FAIL, PASS, WARN, Verdict

CHECK = "gradient check"


def check_gradients(model: Module, loss, x: np.ndarray, y: np.ndarray, samples: int = 2, tol: float = 1e-5,
                    fail_tol: float = 1e-3, max_checks: int = 24, model_checks: int = 6, seed: int = 0) -> Verdict:
    """x: a batch (only the first `samples` are used), y: its labels. Your model is not changed.

    Every leaf layer gets `max_checks` elements per tensor checked on its own input; the whole model
    (which is what catches a container routing gradients wrongly) `model_checks` per tensor, since each
    of its evaluations is a full forward pass."""
    x = np.asarray(x[:samples], dtype=np.float64)
    y = np.asarray(y[:samples])
    m = fresh_copy(model).to(np.float64)
    m.eval()  # dropout and stochastic depth off; BatchNorm uses its (fixed) running statistics

    whole = gradcheck(m, x, tol=tol, max_checks=model_checks, seed=seed)
    inputs: dict[str, np.ndarray] = {}
    leaves = leaf_modules(m)
    with tap(leaves, on_forward=lambda name, mod, a, b: inputs.setdefault(name, np.array(a))):
        scores = m.forward(x)
    per_layer: list[tuple[str, Module, float, bool]] = []
    for name, leaf in leaves:
        if name not in inputs:
            continue
        r = gradcheck(leaf, inputs[name], tol=tol, max_checks=max_checks, seed=seed)
        err = max(r.errors.values(), default=0.0)
        per_layer.append((name, leaf, err, r.ok))
    loss_report = gradcheck(loss, scores, target=y, tol=tol, max_checks=max_checks, seed=seed)
    loss_err = max(loss_report.errors.values(), default=0.0)

    worst_err = max([max(whole.errors.values(), default=0.0), loss_err] + [e for *_, e, _ in per_layer])
    details = {"model": whole.errors, "layers": {(n or "model"): e for n, _, e, _ in per_layer},
               "loss": loss_err, "tol": tol}
    bad = [(n, leaf, e) for n, leaf, e, ok in per_layer if not ok]
    value = f"max rel error {worst_err:.1e}"
    expected = f"≤ {tol:.0e} (float64)"
    if not bad and loss_err <= tol and whole.ok:
        return Verdict(CHECK, PASS, value, expected, "analytic and numerical gradients agree",
                       details=details)
    status = FAIL if worst_err > fail_tol else WARN
    if bad:
        name, leaf, err = bad[0]
        where = f"layer {name} ({leaf.describe()})" if name else leaf.describe()
        details["first_failure"] = where
        others = f"; also wrong: {', '.join(n for n, _, _ in bad[1:])}" if len(bad) > 1 else ""
        return Verdict(CHECK, status, f"{value}; first wrong: {where}", expected,
                       f"the backward pass of {where} disagrees with its forward (rel error {err:.1e}): "
                       f"fix its backward{others}", cause="wrong_backward", details=details)
    if loss_err > tol:
        details["first_failure"] = f"loss ({type(loss).__name__})"
        return Verdict(CHECK, status, f"{value} in the loss", expected,
                       f"the gradient of {type(loss).__name__} is wrong (rel error {loss_err:.1e})",
                       cause="wrong_backward", details=details)
    first = whole.first_failure()
    details["first_failure"] = first.name if first else "model"
    return Verdict(CHECK, status, value, expected,
                   "every layer passes alone but the model as a whole does not: check how the "
                   f"containers route gradients (first bad tensor: {first.name if first else '?'})",
                   cause="wrong_backward", details=details)
