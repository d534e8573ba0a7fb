"""Coarse-to-fine stages (the notes: a few epochs over wide ranges first, then longer runs over narrower
ranges) and the rule that derives a stage's ranges from the best trials of the stage before.

    stages = [{trials = 40, epochs = 1}, {trials = 10, epochs = 5, narrow = "top 20%"}]

The narrowing rule (`narrow`). Take the completed trials of the previous stage (failed and pruned ones
have no final value), best first, and keep the top ones: "top 20%" keeps ceil(20% of them), "top 5" keeps five
(always at least one). Then, per dimension:

- a range (float or int) becomes the smallest range holding every kept value, measured on the
  dimension's own scale (log10 for log dimensions), padded on each side by 10% of the previous range's
  width and clipped to the previous range; int bounds are rounded outwards;
- a choice keeps only the values some kept trial used (in their original order).

So the new ranges always contain the previous stage's best trial, never leave the previous ranges, and
shrink unless the top trials already span them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .space import Dim, SearchError, Space

PAD = 0.1  # of the previous range's width, on each side
SAMPLERS = ("random", "grid", "tpe")


@dataclass(frozen=True)
class Stage:
    trials: int
    epochs: int
    narrow: str | None = None  # "top 20%" / "top 5"; None for the first stage
    sampler: str | None = None  # None: the search's sampler

    def describe(self) -> dict:
        return {"trials": self.trials, "epochs": self.epochs, "narrow": self.narrow, "sampler": self.sampler}


def parse_narrow(text: str, where: str = "stage") -> tuple[str, float]:
    """("fraction", f) for "top P%", ("count", k) for "top K"."""
    m = re.fullmatch(r"\s*top\s+(\d+(?:\.\d+)?)\s*(%?)\s*", str(text))
    if not m:
        raise SearchError(f"{where}: narrow = {text!r}: write \"top 20%\" or \"top 5\"")
    value = float(m.group(1))
    if m.group(2):
        if not 0 < value <= 100:
            raise SearchError(f"{where}: narrow = {text!r}: the percentage must be in (0, 100]")
        return "fraction", value / 100
    if value < 1 or value != int(value):
        raise SearchError(f"{where}: narrow = {text!r}: the count must be a whole number ≥ 1")
    return "count", int(value)


def parse_stages(items, default_trials: int, default_epochs: int, where: str = "[search] stages") -> list[Stage]:
    """Stages from the TOML list (one stage of `default_trials` × `default_epochs` when absent)."""
    if items is None:
        return [Stage(default_trials, default_epochs)]
    if not isinstance(items, list) or not items:
        raise SearchError(f"{where}: expected a non-empty list of tables such as {{trials = 40, epochs = 1}}")
    stages = []
    for i, item in enumerate(items):
        at = f"{where}[{i}] = {item!r}"
        if not isinstance(item, dict):
            raise SearchError(f"{at}: expected a table such as {{trials = 40, epochs = 1}}")
        unknown = sorted(set(item) - {"trials", "epochs", "narrow", "sampler"})
        if unknown:
            raise SearchError(f"{at}: unknown key {unknown[0]!r}; known: trials, epochs, narrow, sampler")
        trials, epochs = item.get("trials", default_trials), item.get("epochs", default_epochs)
        for name, v in (("trials", trials), ("epochs", epochs)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SearchError(f"{at}: {name} must be a whole number ≥ 1")
        narrow = item.get("narrow")
        if narrow is not None:
            if i == 0:
                raise SearchError(f"{at}: the first stage has nothing to narrow from")
            parse_narrow(narrow, at)
        sampler = item.get("sampler")
        if sampler is not None and sampler not in SAMPLERS:
            raise SearchError(f"{at}: unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")
        stages.append(Stage(trials, epochs, narrow, sampler))
    return stages


def top_trials(results: list[tuple[dict, float]], rule: str) -> list[tuple[dict, float]]:
    """The kept (params, value) pairs, best (highest value) first."""
    ranked = sorted((r for r in results if r[1] is not None and math.isfinite(r[1])), key=lambda r: -r[1])
    if not ranked:
        raise SearchError("the previous stage has no trial with a value (all failed?); nothing to narrow from")
    how, amount = parse_narrow(rule)
    k = math.ceil(amount * len(ranked)) if how == "fraction" else int(amount)
    return ranked[:max(1, min(k, len(ranked)))]


def _narrow_dim(dim: Dim, values: list) -> Dim:
    if dim.kind == "choice":
        kept = tuple(c for c in dim.choices if c in values)
        return Dim(dim.name, dim.key, "choice", choices=kept or dim.choices)
    f = math.log10 if dim.log else float
    inv = (lambda t: 10 ** t) if dim.log else (lambda t: t)
    lo_prev, hi_prev = f(dim.low), f(dim.high)
    pad = PAD * (hi_prev - lo_prev)
    ts = [f(v) for v in values]
    lo, hi = inv(max(lo_prev, min(ts) - pad)), inv(min(hi_prev, max(ts) + pad))
    lo, hi = max(lo, dim.low), min(hi, dim.high)  # 10 ** log10(x) may round past the bounds
    if dim.kind == "int":
        lo, hi = float(math.floor(lo + 1e-9)), float(math.ceil(hi - 1e-9))
    return Dim(dim.name, dim.key, dim.kind, lo, hi, dim.log)


def narrow(space: Space, results: list[tuple[dict, float]], rule: str) -> Space:
    """The next stage's space from the previous stage's (params, value) results by the rule above."""
    top = top_trials(results, rule)
    return Space(tuple(_narrow_dim(d, [p[d.name] for p, _ in top if d.name in p]) if any(d.name in p for p, _ in top)
                       else d for d in space.dims))
