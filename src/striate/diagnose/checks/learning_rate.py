"""Check 5: your learning rate, judged against the range test (`lr_finder.lr_range_test`) and a short training
run at your rate: NaN or above 3× the initial loss → too high; a loss that barely moves → too low."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .. import thresholds
from ..check import register
from ..context import Context
from ..lr_finder import LRFinderResult
from ..thresholds import THRESHOLDS
from ..verdict import FAIL, PASS, WARN, Verdict

CHECK = "learning rate"


def finder_learns(finder: LRFinderResult | None, gain: float = 0.8) -> bool | None:
    """Whether some rate of the range test lowered the smoothed loss below `gain`× its start (None: unknown)."""
    if finder is None:
        return None
    s = np.array(finder.smoothed, dtype=np.float64)
    s = s[np.isfinite(s)]
    return bool(len(s) > 5 and s.min() < gain * s[0]) if len(s) else False


class _Advice(NamedTuple):
    expected: str
    hint: str
    lower: str
    raise_to: str


def _from_short_run(lr: float, p: np.ndarray, finder, t: thresholds.LearningRate, details: dict,
                    a: _Advice) -> Verdict | None:
    """The verdict the short run's losses `p` at `lr` give, or None when they say nothing against it."""
    suggestion = details.get("suggestion")
    expected, hint, lower, raise_to = a
    explode_factor, flat_fail, flat_warn, far_below = t.explode_factor, t.flat_fail, t.flat_warn, t.far_below
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
    return None


def judge(lr: float, finder: LRFinderResult | None = None, probe_losses: list[float] | None = None,
          t: thresholds.LearningRate = THRESHOLDS.learning_rate) -> Verdict:
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
    advice = _Advice(expected, hint, lower, raise_to)
    if probe_losses:
        v = _from_short_run(lr, np.asarray(probe_losses, dtype=np.float64), finder, t, details, advice)
        if v is not None:
            return v
    far_below = t.far_below
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


@register
class LearningRate:
    name = CHECK
    needs = frozenset({"model", "data", "curves"})
    causes = frozenset({"lr_too_high", "lr_too_low", "cannot_overfit"})
    leads = frozenset({"lr_too_high", "lr_too_low"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [judge(ctx.settings.lr, ctx.lr_finder(), ctx.short_run().losses, ctx.thresholds.learning_rate)]
