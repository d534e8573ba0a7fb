"""Optimizers by name: the one table from a string (the command line, run files, the doctor, the complexity
table) to an optimizer.

    name      builds                               state arrays per parameter
    sgd       SGD(lr, weight_decay)                0
    momentum  SGD(lr, momentum, weight_decay)      1  (the velocity)
    nesterov  SGD(..., nesterov=True)              1
    adagrad   AdaGrad(lr, weight_decay)            1  (the sum of squares)
    rmsprop   RMSProp(lr, weight_decay)            1  (the running mean square)
    adam      Adam(lr, weight_decay)               2  (first and second moments)
    adamw     AdamW(lr, weight_decay)              2
"""

from __future__ import annotations

from .adaptive import AdaGrad, Adam, AdamW, RMSProp
from .sgd import SGD, Optimizer

STATE_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
NAMES = tuple(STATE_SLOTS)
_ADAPTIVE = {"adagrad": AdaGrad, "rmsprop": RMSProp, "adam": Adam, "adamw": AdamW}


def build(name: str, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
          decoupled_weight_decay: bool = False) -> Optimizer:
    """The optimizer `name` over `params` (a model, parameters, or parameter groups: `groups.param_groups`);
    `momentum` is used by momentum/nesterov."""
    if name not in STATE_SLOTS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(NAMES)}")
    kw = {"lr": lr, "weight_decay": weight_decay, "decoupled_weight_decay": decoupled_weight_decay}
    if name == "sgd":
        return SGD(params, **kw)
    if name in ("momentum", "nesterov"):
        return SGD(params, momentum=momentum, nesterov=name == "nesterov", **kw)
    return _ADAPTIVE[name](params, **kw)
