"""Check 0: the inputs themselves — NaN/inf, all the same, or not preprocessed (`data_check.check_inputs`)."""

from __future__ import annotations

from ..check import register
from ..context import Context
from ..verdict import Verdict


@register
class Inputs:
    name = "inputs"
    needs = frozenset({"data"})
    causes = frozenset({"nonfinite_inputs", "constant_inputs", "inputs_not_preprocessed"})

    def run(self, ctx: Context) -> list[Verdict]:
        return [v for v in ctx.data_verdicts() if v.check == self.name]
