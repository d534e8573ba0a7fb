"""Check 3: cranking up the weight penalty must raise the initial loss (and change the gradient).

The notes' second sanity check: the data loss plus `penalty(reg)` for increasing `reg`; a penalty
that touches no parameter, or whose value does not grow with `reg`, is a wiring bug."""

from __future__ import annotations

import numpy as np

from ..nn.losses import l2
from ..nn.module import Module
from .inputs import loss_and_accuracy
from .verdict import FAIL, PASS, Verdict

CHECK = "regularisation raises loss"


def check_regularization(model: Module, loss, x: np.ndarray, y: np.ndarray, penalty=l2,
                         regs: tuple[float, ...] = (0.0, 1e-3, 1e-1, 1e1)) -> Verdict:
    """penalty: a factory `reg -> Penalty` (st.nn.l2 / st.nn.l1). Your model is not changed."""
    data_loss, _ = loss_and_accuracy(model, loss, x, y)
    totals = [data_loss + penalty(r).value(model) for r in regs]
    rises = all(b > a for a, b in zip(totals, totals[1:], strict=False))
    details = {"regs": list(regs), "losses": totals}
    value = f"{totals[0]:.4g} → {totals[-1]:.4g} (reg {regs[0]:g} → {regs[-1]:g})"
    if rises and np.isfinite(totals[-1]):
        return Verdict(CHECK, PASS, value, "strictly increasing with reg", "the penalty is wired in",
                       details=details)
    return Verdict(CHECK, FAIL, value, "strictly increasing with reg",
                   "the weight penalty does not raise the loss: it touches no parameter (are the weights "
                   "named 'weight'?) or is not added to the loss", cause="no_effect", details=details)
