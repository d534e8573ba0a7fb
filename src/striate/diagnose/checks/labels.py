"""Check 0: the labels — outside the model's classes, a single class, or imbalanced (`data_check.check_inputs`)."""

from __future__ import annotations

from ..check import register
from ..context import Context
from ..verdict import Verdict


@register
class Labels:
    name = "labels"
    needs = frozenset({"data"})
    causes = frozenset({"labels_out_of_range", "single_class", "class_imbalance"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [v for v in ctx.data_verdicts() if v.check == self.name]
