"""Check 0: do a separately given validation set's labels belong to its inputs — each compared with the label of
its nearest training input (`data_check.check_inputs`; nothing when validation is held out of the data)."""

from __future__ import annotations

from ..check import register
from ..context import Context
from ..verdict import Verdict


@register
class ValidationLabels:
    name = "validation labels match"
    needs = frozenset({"data"})
    causes = frozenset({"labels_shuffled"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [v for v in ctx.data_verdicts() if v.check == self.name]
