"""Check 4: overfit a tiny subset (the notes: ~20 examples, no regularisation, reach 100 % training
accuracy). Dropout is switched off for it (regularisation off). Failure with your optimizer settings is
retried with Adam(1e-3): if that fits, the model is fine and the learning rate is not (it blew the loss up:
too high; the loss barely moved: too low); if neither fits, the model cannot learn — too small (a layer
narrower than the number of classes), or broken (its gradients, the labels, the loss)."""

from __future__ import annotations

import numpy as np

from ...nn.module import Module
from ..check import Finding, register
from ..context import Context
from ..inputs import OptimizerSpec, fresh_copy, make_optimizer, scores_eval
from ..stats import weight_of
from ..verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "overfit tiny subset"


def overfit(model: Module, loss, x: np.ndarray, y: np.ndarray, optimizer: OptimizerSpec, lr: float,
            max_iters: int = 300) -> dict:
    """Full-batch training of a copy (dropout off) on (x, y); returns iterations used, accuracy and the loss
    curve."""
    m = fresh_copy(model, dropout=False)  # the notes: no regularisation
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


def bottleneck(model: Module) -> tuple[str, int] | None:
    """(layer name, width) of the narrowest hidden weighted layer (all but the last), or None."""
    widths = [(name, int(w.data.shape[-1])) for name, m in model.named_modules()
              if not m._modules and (w := weight_of(m)) is not None]
    return min(widths[:-1], key=lambda t: t[1]) if len(widths) > 1 else None


def judge(model: Module, loss, x: np.ndarray, y: np.ndarray, optimizer: OptimizerSpec = "adam", lr: float = 1e-3,
          n: int = 32, max_iters: int = 300) -> Verdict:
    """Train a copy on the first `n` samples of (x, y); PASS at 100 % training accuracy within `max_iters`."""
    xs, ys = x[:n], y[:n]
    with np.errstate(all="ignore"):
        mine = overfit(model, loss, xs, ys, optimizer, lr, max_iters)
    details = {"n": len(ys), "iterations": mine["iterations"], "accuracy": mine["accuracy"],
               "losses": mine["losses"], "optimizer": optimizer if isinstance(optimizer, str) else "custom",
               "lr": lr}
    expected = f"100 % of {len(ys)} within {max_iters} iterations"
    if mine["accuracy"] == 1.0:
        return Verdict(CHECK, PASS, f"100 % after {mine['iterations']} iterations", expected,
                       "the model can memorise a tiny subset", details=details)
    with np.errstate(all="ignore"):
        ref = overfit(model, loss, xs, ys, "adam", 1e-3, max_iters)
    details["reference"] = {"optimizer": "adam", "lr": 1e-3, "iterations": ref["iterations"],
                            "accuracy": ref["accuracy"]}
    value = f"{100 * mine['accuracy']:.0f} % after {mine['iterations']} iterations"
    if ref["accuracy"] == 1.0:
        curve = np.asarray(mine["losses"], dtype=np.float64)
        if not np.isfinite(curve).all() or curve.max() > 3 * curve[0]:
            symptom, cause, why = "the loss blew up with your settings", "lr_too_high", "the learning rate is too high"
        else:
            symptom, cause = f"the loss fell only to {curve[-1]:.3g} from {curve[0]:.3g} with your settings", \
                "lr_too_low"
            why = "the learning rate is too low for it"
        return Finding(WARN, cause, symptom, f"{why}; Adam(lr=1e-3) fits it in {ref['iterations']} iterations, so "
                       "the model is fine").verdict(CHECK, value, expected, details)
    symptom = f"cannot memorise {len(ys)} examples even with Adam(lr=1e-3) ({100 * ref['accuracy']:.0f} %)"
    details["rules_out"] = ["lr_too_high", "lr_too_low"]  # a reference optimizer failed too: not your settings
    classes = len(np.unique(ys))
    narrow = bottleneck(model)
    if narrow is not None and narrow[1] < classes:
        return Finding(FAIL, "underfitting", symptom, f"the model is too small — layer {narrow[0]} has {narrow[1]} "
                       f"unit(s) for {classes} classes").verdict(CHECK, value, expected, details)
    return Finding(FAIL, "cannot_overfit", symptom, "the model is too small or broken (its gradients, the labels or "
                   "the loss)").verdict(CHECK, value, expected, details)


@register
class Overfit:
    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"cannot_overfit", "underfitting", "lr_too_high", "lr_too_low"})

    def run(self, ctx: Context) -> list[Verdict]:
        if not ctx.trainable:
            return [Verdict(self.name, SKIP, "nothing trainable", "n/a", "no parameter can learn")]
        s = ctx.settings
        v = judge(ctx.model, ctx.loss, ctx.x, ctx.y, s.optimizer, s.lr, s.overfit_samples, s.overfit_iters)
        ctx.diagnostics["overfit"] = {"losses": v.details.get("losses", [])}
        return [v]
