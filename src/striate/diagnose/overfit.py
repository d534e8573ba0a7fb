"""Check 4: overfit a tiny subset (the notes: ~20 examples, no regularisation, reach 100 % training
accuracy). Failure with your optimizer settings is retried with Adam(1e-3): if that fits, the model is
fine and the optimizer settings are not; if neither fits, the model (or its backward) is broken."""

from __future__ import annotations

import numpy as np

from ..nn.module import Module
from .inputs import OptimizerSpec, fresh_copy, make_optimizer, scores_eval
from .verdict import FAIL, PASS, WARN, Verdict

CHECK = "overfit tiny subset"


def overfit(model: Module, loss, x: np.ndarray, y: np.ndarray, optimizer: OptimizerSpec, lr: float,
            max_iters: int = 300) -> dict:
    """Full-batch training of a copy on (x, y); returns iterations used, accuracy and the loss curve."""
    m = fresh_copy(model)
    m.train()
    opt = make_optimizer(optimizer, m, lr)
    losses = []
    for it in range(1, max_iters + 1):
        opt.zero_grad()
        scores = m.forward(x)
        value = loss(scores, y)
        losses.append(float(value))
        if not np.isfinite(value):
            break
        m.backward(loss.backward())
        opt.step()
        # cheap test on the training-mode scores first, confirmed in eval mode
        if np.all(scores.argmax(axis=1) == y) and np.all(scores_eval(m, x).argmax(axis=1) == y):
            return {"iterations": it, "accuracy": 1.0, "losses": losses}
    acc = float(np.mean(scores_eval(m, x).argmax(axis=1) == y))
    return {"iterations": len(losses), "accuracy": acc, "losses": losses}


def check_overfit(model: Module, loss, x: np.ndarray, y: np.ndarray, optimizer: OptimizerSpec = "adam",
                  lr: float = 1e-3, n: int = 32, max_iters: int = 300) -> Verdict:
    """Train a copy on the first `n` samples of (x, y); PASS at 100 % training accuracy within `max_iters`."""
    xs, ys = x[:n], y[:n]
    mine = overfit(model, loss, xs, ys, optimizer, lr, max_iters)
    details = {"n": len(ys), "iterations": mine["iterations"], "accuracy": mine["accuracy"],
               "losses": mine["losses"], "optimizer": optimizer if isinstance(optimizer, str) else "custom",
               "lr": lr}
    expected = f"100 % of {len(ys)} within {max_iters} iterations"
    if mine["accuracy"] == 1.0:
        return Verdict(CHECK, PASS, f"100 % after {mine['iterations']} iterations", expected,
                       "the model can memorise a tiny subset", details=details)
    ref = overfit(model, loss, xs, ys, "adam", 1e-3, max_iters)
    details["reference"] = {"optimizer": "adam", "lr": 1e-3, "iterations": ref["iterations"],
                            "accuracy": ref["accuracy"]}
    value = f"{100 * mine['accuracy']:.0f} % after {mine['iterations']} iterations"
    if ref["accuracy"] == 1.0:
        curve = np.asarray(mine["losses"], dtype=np.float64)
        if not np.isfinite(curve).all() or curve.max() > 3 * curve[0]:
            why = "the loss blew up with your settings — the learning rate is too high"
        elif curve[-1] > 0.5 * curve[0]:
            why = "the loss barely fell with your settings — the learning rate is too low (or too high)"
        else:
            why = "your optimizer settings fit it too slowly"
        return Verdict(CHECK, WARN, value, expected,
                       f"{why}; Adam(lr=1e-3) fits it in {ref['iterations']} iterations, so the model is fine",
                       cause="optimizer", details=details)
    return Verdict(CHECK, FAIL, value, expected,
                   f"cannot memorise {len(ys)} examples even with Adam(lr=1e-3) ({100 * ref['accuracy']:.0f} %): "
                   "the model is too small, its gradients are broken, or the labels/loss are wrong",
                   cause="cannot_overfit", details=details)
