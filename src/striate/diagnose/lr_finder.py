"""Check 5: the learning-rate range test (Smith 2017; the notes' coarse search in log space).

A copy of the model is trained for `iters` minibatch steps while the learning rate grows exponentially
from `lr_min` to `lr_max`; the loss (exponentially smoothed, bias-corrected) is recorded until it is
not finite or exceeds `diverge`× its minimum. The suggestion is the rate at the smoothed minimum / 10,
the coarse search range one decade either side of it (never past where the loss blew up).

The doctor's check of *your* rate against that curve is `checks/learning_rate.py`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..nn.module import Module
from .inputs import OptimizerSpec, fresh_copy, make_optimizer


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float = math.nan
    search_range: tuple[float, float] = (math.nan, math.nan)
    min_loss_lr: float = math.nan
    diverged_lr: float | None = None  # first rate where the loss blew up (None: never within the sweep)
    initial_loss: float = math.nan

    def to_dict(self) -> dict:
        from .verdict import jsonable

        return jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> LRFinderResult:
        d = dict(d)
        d["search_range"] = tuple(d.get("search_range") or (math.nan, math.nan))
        d["suggestion"] = math.nan if d.get("suggestion") is None else d["suggestion"]
        d["min_loss_lr"] = math.nan if d.get("min_loss_lr") is None else d["min_loss_lr"]
        d["initial_loss"] = math.nan if d.get("initial_loss") is None else d["initial_loss"]
        d["losses"] = [math.nan if v is None else v for v in d.get("losses", [])]
        d["smoothed"] = [math.nan if v is None else v for v in d.get("smoothed", [])]
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def lr_range_test(model: Module, loss, x: np.ndarray, y: np.ndarray, *, optimizer: OptimizerSpec = "momentum",
                  lr_min: float = 1e-6, lr_max: float = 10.0, iters: int = 120, batch_size: int = 64,
                  beta: float = 0.9, diverge: float = 4.0, rng: np.random.Generator | None = None) -> LRFinderResult:
    """Sweep on a copy of `model` (yours is untouched) with minibatches of (x, y) drawn without
    replacement (a fresh permutation each pass over the data)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    m = fresh_copy(model)
    m.train()
    opt = make_optimizer(optimizer, m, lr_min)
    q = (lr_max / lr_min) ** (1.0 / max(iters - 1, 1))
    res = LRFinderResult()
    perm, pos, avg, best = rng.permutation(len(x)), 0, 0.0, math.inf
    for it in range(iters):
        if pos + batch_size > len(x):
            perm, pos = rng.permutation(len(x)), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        lr = lr_min * q ** it
        opt.lr = lr
        opt.zero_grad()
        with np.errstate(all="ignore"):
            value = float(loss(m.forward(x[idx]), y[idx]))
        if it == 0:
            res.initial_loss = value
        res.lrs.append(lr)
        res.losses.append(value)
        if not math.isfinite(value):
            res.smoothed.append(math.nan)
            res.diverged_lr = lr
            break
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (it + 1))
        res.smoothed.append(smooth)
        best = min(best, smooth)
        if it > 5 and smooth > diverge * best:
            res.diverged_lr = lr
            break
        with np.errstate(all="ignore"):
            m.backward(loss.backward())
            opt.step()
    s = np.array(res.smoothed, dtype=np.float64)
    lrs = np.array(res.lrs)
    if np.isfinite(s).any():
        k = int(np.nanargmin(s))
        res.min_loss_lr = float(lrs[k])
        res.suggestion = res.min_loss_lr / 10
        hi = res.min_loss_lr if res.diverged_lr is None else min(res.min_loss_lr, res.diverged_lr / 10)
        res.search_range = (res.suggestion / 10, max(hi, res.suggestion))
    return res
