"""Check 0: do the labels belong to the inputs — a model-free 1-nearest-neighbour test against a permutation
null (`data_check.check_inputs`). "Shuffled" is claimed only where neighbours are informative (a label-free
neighbour contrast at most `match_contrast`: digits, MNIST-like images); near chance on diffuse inputs such as
natural photos it is an inconclusive SKIP."""

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
