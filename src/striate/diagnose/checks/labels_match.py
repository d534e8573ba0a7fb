"""Check 0: do the labels belong to the inputs — a model-free 1-nearest-neighbour test against chance
(`data_check.check_inputs`)."""

from __future__ import annotations

from ..check import register
from ..context import Context
from ..verdict import Verdict


@register
class LabelsMatch:
    name = "labels match inputs"
    needs = frozenset({"data"})
    causes = frozenset({"labels_shuffled"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [v for v in ctx.data_verdicts() if v.check == self.name]
