"""Optimizers, learning-rate schedules, weight averaging (EMA / Polyak beside the weights, Lookahead copied
back into them) and weight constraints.

    opt = st.optim.SGD(net, lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = st.optim.Scheduler(opt, st.optim.schedules.warmup(st.optim.schedules.cosine(0.1, 10_000), 500))
    for x, y in batches: ...; net.backward(dy); opt.step(); sched.step(); opt.zero_grad()
    opt = st.optim.SGD(st.optim.param_groups(net, [{"match": "BatchNorm.bias", "lr_mult": 64}]), lr=0.1)
"""

from . import groups, registry, schedules
from .adaptive import AdaGrad, Adam, AdamW, RMSProp
from .averaging import EMA
from .constraints import MaxNorm, clip_grad_norm, max_norm
from .groups import param_groups
from .lookahead import Lookahead, lookahead_decay
from .registry import build
from .schedules import Schedule, Scheduler, scale_lr_for_batch
from .sgd import SGD, Optimizer

__all__ = [
    "EMA", "SGD", "AdaGrad", "Adam", "AdamW", "Lookahead", "MaxNorm", "Optimizer", "RMSProp", "Schedule", "Scheduler",
    "build", "clip_grad_norm", "groups", "lookahead_decay", "max_norm", "param_groups", "registry",
    "scale_lr_for_batch", "schedules",
]
