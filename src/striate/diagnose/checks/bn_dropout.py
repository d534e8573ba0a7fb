"""Check 0c: dropout and BatchNorm in one network — a BatchNorm must not come after a dropout.

The notes advise against the two in one network; the harm is the "variance shift" (Li et al., CVPR 2019): a
BatchNorm that follows a dropout (Dropout, Dropout2d or DropConnect) gathers its running statistics from inputs
whose variance dropout's inverted scaling has raised, and applies them in evaluation, where dropout is off and
the variance is smaller — so eval mode normalises with the wrong variance (`variance_shift`). Dropout only
after the last BatchNorm (the zoo's `reference`, `vgg*_bn`, `vgg*_cifar`: every dropout in the fully connected
head) is the remedy, and passes.

Measured on a copy in training mode (batch statistics), over a small batch: one pass with dropout on, one with
it off; every BatchNorm after a dropout in the forward order (the order the layers ran, read through forward
hooks) has its input variance (the mean over channels) compared between the two. The largest ratio (or its
inverse) at or above `THRESHOLDS.bn_dropout.shift_warn` is a WARN; below it (a small p) the order is harmless.
"""

from __future__ import annotations

import numpy as np

from ...nn.dropout import DropConnect, Dropout
from ...nn.module import Module
from ...nn.norm import BatchNorm
from .. import thresholds
from ..check import Finding, register
from ..context import Context
from ..hooks import tap
from ..inputs import fresh_copy
from ..thresholds import THRESHOLDS
from ..verdict import PASS, WARN, Verdict

CHECK = "dropout and batch norm"
_DROPOUTS = (Dropout, DropConnect)
_SAMPLES = 64


def _pass(model: Module, x: np.ndarray, layers: list[tuple[str, Module]]) -> tuple[list[str], dict[str, float]]:
    """One training-mode forward of `model` over `x`: the names of `layers` in the order they ran (first call)
    and each BatchNorm's input variance (the mean over channels of the per-channel variance)."""
    order: list[str] = []
    variance: dict[str, float] = {}

    def seen(name, module, x_in, y):
        if name not in order:
            order.append(name)
        if isinstance(module, BatchNorm) and name not in variance:
            flat = np.asarray(x_in, dtype=np.float64).reshape(-1, x_in.shape[-1])
            variance[name] = float(flat.var(axis=0).mean())

    with tap(layers, on_forward=seen), np.errstate(all="ignore"):
        model.forward(x)
    return order, variance


def _ratio(on: float, off: float) -> float:
    """How far the variance with dropout on is from the one with it off, as a factor ≥ 1 (either way)."""
    if not (np.isfinite(on) and np.isfinite(off)) or min(on, off) <= 0:
        return 1.0 if on == off else float("inf")
    return max(on / off, off / on)


def measure(model: Module, x: np.ndarray) -> dict:
    """The forward order of `model`'s dropouts and BatchNorms on `x` and, for every BatchNorm after a dropout,
    its input variance with dropout on (`on`) and off (`off`); your model is not changed (a copy is run)."""
    m = fresh_copy(model).train()
    layers = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, (BatchNorm, *_DROPOUTS))]
    order, on = _pass(m, x, layers)
    kinds = dict(layers)
    first_drop = next((i for i, n in enumerate(order) if isinstance(kinds[n], _DROPOUTS)), None)
    after = [n for n in order[first_drop + 1:] if isinstance(kinds[n], BatchNorm)] if first_drop is not None else []
    out = {"order": order, "dropouts": [n for n in order if isinstance(kinds[n], _DROPOUTS)],
           "batchnorms": [n for n in order if isinstance(kinds[n], BatchNorm)], "after_dropout": after}
    if after:
        for _, mod in layers:
            if isinstance(mod, _DROPOUTS):
                mod.training = False  # dropout off, BatchNorm still on batch statistics
        _, off = _pass(m, x, layers)
        out["shift"] = {n: {"on": on[n], "off": off[n], "ratio": _ratio(on[n], off[n])} for n in after}
    return out


def judge(model: Module, x: np.ndarray, t: thresholds.BnDropout = THRESHOLDS.bn_dropout) -> Verdict:
    """WARN when a BatchNorm after a dropout sees its input variance shift by ≥ `t.shift_warn`× between
    dropout on and off (see the module docstring); PASS otherwise, with the order found as the value."""
    details = measure(model, x[:_SAMPLES])
    expected = f"no BatchNorm after a dropout (input variance shift < {t.shift_warn:g}×)"
    if not details["dropouts"] or not details["batchnorms"]:
        return Verdict(CHECK, PASS, "not both", expected, "no dropout or no BatchNorm: no variance shift",
                       details=details)
    if not details["after_dropout"]:
        return Verdict(CHECK, PASS, "dropout only after the last BatchNorm", expected,
                       "BatchNorm's running statistics are gathered without dropout, as evaluation sees its inputs",
                       details=details)
    bn, s = max(details["shift"].items(), key=lambda kv: kv[1]["ratio"])
    modules = dict(model.named_modules())
    drop, bn_layer = details["dropouts"][0], f"layer {bn} ({modules[bn].describe()})"
    value = f"layer {bn}: input variance ×{s['ratio']:.3g} with dropout on"
    if s["ratio"] < t.shift_warn:
        return Verdict(CHECK, PASS, value, expected, f"{bn_layer} follows dropout {drop}, but its input "
                       "variance barely moves (a small p)", details=details)
    symptom = f"{bn_layer} follows layer {drop} ({modules[drop].describe()}) in the forward pass"
    reason = (f"its input variance is {s['on']:.3g} with dropout on (training, where its running statistics are "
              f"gathered) and {s['off']:.3g} with it off (evaluation), ×{s['ratio']:.3g}: in eval mode it scales its "
              f"outputs by ~{1 / np.sqrt(s['ratio']):.2f} of what training saw (the variance shift, Li et al. 2019)")
    return Finding(WARN, "variance_shift", symptom, reason, where=bn).verdict(CHECK, value, expected, details)


@register
class DropoutAndBatchNorm:
    name = CHECK
    needs = frozenset({"model", "data"})
    causes = frozenset({"variance_shift"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [judge(ctx.model, ctx.sample[0], ctx.thresholds.bn_dropout)]
