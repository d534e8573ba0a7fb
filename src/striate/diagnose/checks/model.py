"""Check 0b: the model's construction, before any data flows — problems visible in its layers alone.

- nothing trainable (`frozen`): no parameter has `requires_grad`;
- all-equal weights (`symmetric_init`): a hidden weight tensor whose values are all the same (zero or
  constant initialisation) — its units compute the same thing and get the same update, forever (a zero
  last layer is fine: the hidden units below it already differ);
- weighted layers with nothing nonlinear between them (`missing_nonlinearity`): Linear/Conv2d followed by
  another through only linear layers (Flatten, Dropout, average pooling, BatchNorm, padding) — together
  one linear map; FAIL when the whole model has no nonlinearity;
- dropout that drops almost everything (`regularization_too_strong`): p ≥ 0.75 (WARN), ≥ 0.9 (FAIL) —
  p is the probability of dropping;
- BatchNorm whose running statistics eval mode cannot trust (`eval_mismatch`): momentum 0 never moves them
  from (0, 1) (FAIL); ≤ 1e-3 leaves them stale, ≥ 0.5 keeps only the last batch — the classic mix-up with
  Keras' convention, where 0.99 means what 0.01 means here (WARN).
"""

from __future__ import annotations

import numpy as np

from ...nn.conv import Conv2d
from ...nn.dropout import DropConnect, Dropout
from ...nn.grouped import GroupedConv2d
from ...nn.linear import Linear
from ...nn.module import Module
from ...nn.norm import BatchNorm
from ...nn.pad import ZeroPad2d
from ...nn.pool import AvgPool2d, GlobalAvgPool2d
from ...nn.shape import Flatten
from .. import thresholds
from ..check import Finding, judged, register
from ..context import Context
from ..hooks import leaf_modules
from ..stats import layer_kind
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, WARN, Verdict

CHECK = "model"
_AFFINE = (Linear, Conv2d, GroupedConv2d)
_LINEAR = (Flatten, Dropout, AvgPool2d, GlobalAvgPool2d, BatchNorm, ZeroPad2d)  # linear in the input (eval mode)


def _sequence(model: Module) -> list[tuple[str, Module]]:
    """The model's layers in the order data flows through them, nested Sequentials flattened; any other
    container is one opaque (nonlinear) step."""
    from ...nn.containers import Sequential

    out = []
    for name, child in model.named_children():
        if isinstance(child, Sequential):
            out += [(f"{name}.{n}", m) for n, m in _sequence(child)]
        else:
            out.append((name, child))
    return out


def missing_nonlinearities(model: Module) -> list[tuple[str, str]]:
    """(first, second) names of weighted layers joined by linear layers only, in every Sequential."""
    from ...nn.containers import Sequential

    named = [(n, m) for n, m in model.named_modules() if isinstance(m, Sequential)]
    nested = {id(c) for _, m in named for c in m.children() if isinstance(c, Sequential)}
    pairs = []
    for prefix, container in named:
        if id(container) in nested:
            continue  # read as part of its parent's sequence
        last = None
        for name, m in _sequence(container):
            name = f"{prefix}.{name}" if prefix else name
            if isinstance(m, _AFFINE):
                if last is not None:
                    pairs.append((last, name))
                last = name
            elif not isinstance(m, _LINEAR):
                last = None
    return pairs


def _frozen(params) -> list[Finding]:
    if any(p.requires_grad for _, p in params):
        return []
    symptom = "no trainable parameter" if params else "the model has no parameters"
    return [Finding(FAIL, "frozen", symptom, "nothing can learn — requires_grad is off everywhere, or there is no "
                    "weighted layer")]


def _symmetric(params) -> list[Finding]:
    weights = [(n, p) for n, p in params if p.data.ndim >= 2 and p.requires_grad]
    for name, p in weights[:-1]:
        if p.data.size > 1 and np.all(p.data == p.data.reshape(-1)[0]):
            symptom = f"every value of {name} is {float(p.data.reshape(-1)[0]):g}"
            return [Finding(FAIL, "symmetric_init", symptom, "its units are identical and get identical updates, so "
                            "they never differ")]
    return []


def _linear_stack(model: Module, modules: dict, details: dict) -> list[Finding]:
    pairs = missing_nonlinearities(model)
    if not pairs:
        return []
    a, b = pairs[0]
    linear = not any(layer_kind(m) in ("tanh", "sigmoid", "relu", "relu-like") or m.__class__.__name__ in
                     ("MaxPool2d", "FractionalMaxPool2d", "LocalResponseNorm") for _, m in leaf_modules(model))
    symptom = f"layer {b} ({modules[b].describe()}) follows layer {a} ({modules[a].describe()}) with no " \
              "nonlinearity between them"
    details["missing_nonlinearity"] = [list(p) for p in pairs]
    return [Finding(FAIL if linear else WARN, "missing_nonlinearity", symptom, "together they are one linear map"
                    + (" and the whole model is linear" if linear else ""))]


def _dropout(modules: dict, t: thresholds.Model) -> list[Finding]:
    drops = [(n, m) for n, m in modules.items() if isinstance(m, (Dropout, DropConnect)) and m.p >= t.dropout_warn]
    if not drops:
        return []
    n, m = max(drops, key=lambda d: d[1].p)
    symptom = f"layer {n} ({m.describe()}) drops {100 * m.p:.0f} % of its inputs"
    return [Finding(FAIL if m.p >= t.dropout_fail else WARN, "regularization_too_strong", symptom,
                    "p is the probability of dropping: too little signal gets through to learn (p ≈ 0.5 or less "
                    "is usual)")]


def _batchnorm(modules: dict, t: thresholds.Model) -> list[Finding]:
    for n, m in modules.items():
        if not isinstance(m, BatchNorm) or m.momentum is None or t.bn_slow < m.momentum < t.bn_last:
            continue
        symptom = f"layer {n} ({m.describe()}) has momentum {m.momentum:g}"
        if m.momentum == 0:
            why, level = "its running statistics never leave (0, 1), so eval mode normalises with the wrong mean and " \
                "variance", FAIL
        elif m.momentum <= t.bn_slow:
            why, level = f"its running statistics take ~{3 / m.momentum:.0f} steps to settle, so eval mode " \
                "normalises with stale numbers", WARN
        else:
            why, level = "the running statistics are those of the last batch or two (momentum is the weight of the " \
                "NEW batch, PyTorch's convention: Keras' 0.99 is 0.01 here)", WARN
        return [Finding(level, "eval_mismatch", symptom, why)]
    return []


def judge(model: Module, t: thresholds.Model = THRESHOLDS.model) -> Verdict:
    """The model's construction (see the module docstring); your model is not changed."""
    expected = "trainable, random weights, a nonlinearity between weighted layers"
    params = list(model.named_parameters())
    modules = dict(model.named_modules())
    details: dict = {"parameters": len(params), "trainable": sum(p.requires_grad for _, p in params)}
    # in the order of the causes' priority: the first FAIL leads
    findings = (_frozen(params) + _symmetric(params) + _linear_stack(model, modules, details)
                + _dropout(modules, t) + _batchnorm(modules, t))
    value = f"{details['trainable']} of {len(params)} parameter tensors trainable"
    return judged(CHECK, findings, expected, details, healthy=(value, "the model is built to learn"))


@register
class ModelConstruction:
    name = CHECK
    needs = frozenset({"model"})
    causes = frozenset({"frozen", "symmetric_init", "missing_nonlinearity", "regularization_too_strong",
                        "eval_mismatch"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [judge(ctx.model, ctx.thresholds.model)]
