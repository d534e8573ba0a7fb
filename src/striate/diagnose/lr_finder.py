"""Check 5: the learning-rate range test (Smith 2017; the notes' coarse search in log space).

A copy of the model is trained for `iters` minibatch steps while the learning rate grows exponentially
from `lr_min` to `lr_max`; the loss (exponentially smoothed, bias-corrected) is recorded until it is
not finite or exceeds `diverge`× its minimum. The suggestion is the rate at the smoothed minimum / 10,
the coarse search range one decade either side of it (never past where the loss blew up).

`check_learning_rate` then judges *your* rate against that curve and, when given, against a short
training run at your rate: NaN or above 3× the initial loss → too high; a loss that barely moves →
too low."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..nn.module import Module
from .inputs import OptimizerSpec, fresh_copy, make_optimizer
from .verdict import FAIL, PASS, WARN, Verdict

CHECK = "learning rate"


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


def lr_range_test(model: Module, loss, x: np.ndarray, y: np.ndarray, optimizer: OptimizerSpec = "momentum",
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


def finder_learns(finder: LRFinderResult | None, gain: float = 0.8) -> bool | None:
    """Whether some rate of the range test lowered the smoothed loss below `gain`× its start (None: unknown)."""
    if finder is None:
        return None
    s = np.array(finder.smoothed, dtype=np.float64)
    s = s[np.isfinite(s)]
    return bool(len(s) > 5 and s.min() < gain * s[0]) if len(s) else False


def check_learning_rate(lr: float, finder: LRFinderResult | None = None,
                        probe_losses: list[float] | None = None, explode_factor: float = 3.0,
                        flat_fail: float = 0.03, flat_warn: float = 0.10, far_below: float = 30.0) -> Verdict:
    """Judge `lr` from the range test and/or the losses of a short run at `lr` (per iteration).

    too high (`lr_too_high`): the short run's loss is NaN or above `explode_factor`× its initial value
    (FAIL) or rose (by 10 %: WARN, by 30 %: FAIL), or `lr` is past the rate where the range test blew up (FAIL;
    WARN when a short run at `lr` went fine) or 30× above the suggestion (WARN). too low (`lr_too_low`): the
    short run's loss fell by less than `flat_fail` (FAIL) / `flat_warn` (WARN; FAIL when `lr` is also
    `far_below`× under the suggestion) of its initial value, or `lr` is `far_below`× under the suggestion and
    the short run did not halve the loss (FAIL; without a short run, a WARN). A loss that no rate of the range
    test lowers is not a learning-rate problem: the model cannot learn (`cannot_overfit`; the other checks
    say why)."""
    details: dict = {"lr": lr}
    suggestion = finder.suggestion if finder is not None and math.isfinite(finder.suggestion) else None
    if finder is not None:
        details.update(suggestion=suggestion, search_range=list(finder.search_range),
                       diverged_lr=finder.diverged_lr, min_loss_lr=finder.min_loss_lr)
    hint = f" (the range test suggests ≈ {suggestion:.2g}; search {finder.search_range[0]:.1g} … " \
           f"{finder.search_range[1]:.1g})" if suggestion else ""
    expected = f"≈ {suggestion:.2g}" if suggestion else "loss falls steadily"
    lower = f"lower it to ≈ {suggestion:.2g}" if suggestion else "lower it 10×"
    raise_to = f"raise it to ≈ {suggestion:.2g}" if suggestion else "raise it 10×"
    if probe_losses:
        p = np.asarray(probe_losses, dtype=np.float64)
        first = p[0]
        bad = ~np.isfinite(p) | (p > explode_factor * first)
        details.update(probe_first=float(first), probe_last=float(p[-1]), probe_iterations=len(p))
        if bad.any():
            k = int(np.argmax(bad))
            details["exploded_at"] = k + 1
            symptom = f"the loss exploded at step {k + 1} ({p[k]:.3g}, from {first:.3g})"
            return Verdict(CHECK, FAIL, f"lr {lr:.3g}: loss {p[k]:.3g} at step {k + 1} (initial {first:.3g})",
                           expected, f"{symptom}: the learning rate is too high — {lower}{hint}",
                           cause="lr_too_high", details=details, symptom=symptom)
        n = max(len(p) // 10, 1)
        drop = (np.mean(p[:n]) - np.mean(p[-n:])) / max(abs(np.mean(p[:n])), 1e-12)
        details["relative_drop"] = float(drop)
        far = bool(suggestion) and lr < suggestion / far_below
        fell = "unchanged" if abs(drop) < 5e-4 else f"{'fell' if drop > 0 else 'rose'} {abs(drop):.1%}"
        value = f"lr {lr:.3g}: loss {np.mean(p[:n]):.3g} → {np.mean(p[-n:]):.3g} ({fell}) over {len(p)} steps"
        if drop < -flat_warn:
            symptom = f"the loss rose {-drop:.0%} over {len(p)} steps"
            return Verdict(CHECK, FAIL if drop < -3 * flat_warn else WARN, value, expected, f"{symptom}: the learning "
                           f"rate is too high — {lower}{hint}", cause="lr_too_high", details=details, symptom=symptom)
        if drop < flat_warn:
            status = FAIL if drop < flat_fail or far else WARN
            symptom = f"the loss barely changes over {len(p)} steps ({fell})"
            if finder_learns(finder) is False:
                details["rules_out"] = ["lr_too_high", "lr_too_low"]
                return Verdict(CHECK, status, value, expected, f"{symptom}, and no rate of the range test lowers it "
                               "either: not a learning-rate problem — the model does not learn (see the other "
                               "checks)", cause="cannot_overfit", details=details, symptom=symptom)
            return Verdict(CHECK, status, value, expected, f"{symptom}: the learning rate is too low — "
                           f"{raise_to}{hint}", cause="lr_too_low", details=details, symptom=symptom)
        if far and drop < 0.5:
            symptom = f"the loss fell only {drop:.0%} over {len(p)} steps"
            return Verdict(CHECK, FAIL, f"lr {lr:.3g}, {suggestion / lr:.0f}× below the suggestion; loss fell "
                           f"only {drop:.0%} over {len(p)} steps", expected,
                           f"{symptom}: the learning rate is too low, training crawls — {raise_to}{hint}",
                           cause="lr_too_low", details=details, symptom=symptom)
    if finder is not None and finder.diverged_lr is not None and lr >= finder.diverged_lr:
        symptom = f"lr {lr:.3g} is past {finder.diverged_lr:.3g}, where the range test blew up"
        return Verdict(CHECK, WARN if probe_losses else FAIL,
                       f"lr {lr:.3g} ≥ {finder.diverged_lr:.3g} where the range test blew up", expected,
                       f"{symptom}: too high — {lower}{hint}", cause="lr_too_high", details=details, symptom=symptom)
    if suggestion and lr > 30 * suggestion:
        symptom = f"lr {lr:.3g} is {lr / suggestion:.0f}× above the suggestion"
        return Verdict(CHECK, WARN, f"lr {lr:.3g} (30× above the suggestion)", expected,
                       f"{symptom}: probably too high — {lower}{hint}", cause="lr_too_high", details=details,
                       symptom=symptom)
    if suggestion and lr < suggestion / far_below and not probe_losses:
        symptom = f"lr {lr:.3g} is {suggestion / lr:.0f}× below the suggestion"
        return Verdict(CHECK, WARN, f"lr {lr:.3g} ({far_below:g}× below the suggestion)", expected,
                       f"{symptom}: probably too low — {raise_to}{hint}", cause="lr_too_low", details=details,
                       symptom=symptom)
    return Verdict(CHECK, PASS, f"lr {lr:.3g}", expected, f"the learning rate is in a sensible range{hint}",
                   details=details)
