"""DoctorReport: what `doctor` found — the diagnosis first, then a verdict per check, the range test, the
short run's history and the measurements the report draws."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..markup import Displayed, diagnosis, verdict_counts, verdict_table
from .diagnosis import Diagnosis, diagnose
from .lr_finder import LRFinderResult
from .verdict import FAIL, Verdict, format_table, jsonable, worst


@dataclass(repr=False)
class DoctorReport(Displayed):
    """diagnosis: the root cause (a str code of `causes.CAUSES`, with .status, .advice, .evidence,
    .consequences, .also); verdicts: one per check, consequences rewritten to name the root."""

    verdicts: list[Verdict] = field(default_factory=list)
    lr_finder: LRFinderResult | None = None
    history: dict = field(default_factory=lambda: {"iterations": [], "epochs": []})
    diagnostics: dict = field(default_factory=dict)  # layer stats, update ratios, filters, confusion, ...
    seconds: dict = field(default_factory=dict)
    diagnosis: Diagnosis | None = None  # computed from the verdicts when not given

    def __post_init__(self):
        if self.diagnosis is None:
            self.diagnose()

    def diagnose(self) -> Diagnosis:
        """(Re)compute the diagnosis from the verdicts (their consequences are rewritten in place)."""
        self.diagnosis = diagnose(self.verdicts)
        return self.diagnosis

    @property
    def status(self) -> str:
        return worst(v.status for v in self.verdicts)

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def get(self, check: str) -> Verdict | None:
        """The first verdict whose check name starts with `check` (e.g. 'learning rate', 'activations')."""
        return next((v for v in self.verdicts if v.check.startswith(check)), None)

    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == FAIL]

    def advice(self) -> list[str]:
        """Every piece of advice the report gives (the diagnosis's and each non-PASS verdict's)."""
        d = self.diagnosis
        return [d.advice] + [a.advice for a in d.also] + [v.advice for v in self.verdicts if v.status != "PASS"]

    def __str__(self) -> str:
        total = sum(self.seconds.values())
        return (self.diagnosis.describe() + "\n\n" + format_table(self.verdicts)
                + f"\n\noverall: {self.status}  ({total:.1f} s)")

    REPR_LINES = 24  # a notebook's text: the diagnosis, then as many verdicts as fit (the worst first)

    def _text(self) -> str:
        """The diagnosis, a line per verdict (the worst first) and the overall status: `print` for all of it."""
        order = sorted(self.verdicts, key=lambda v: ("FAIL", "WARN", "PASS", "SKIP").index(v.status)
                       if v.status in ("FAIL", "WARN", "PASS", "SKIP") else 4)
        described = self.diagnosis.describe()
        shown = order[:max(6, self.REPR_LINES - described.count("\n") - 3)]
        lines = [described, ""]
        lines += [_cut(f"{v.status:<5} {v.check}: {v.value}") for v in shown]
        if len(order) > len(shown):
            lines.append(f"… {len(order) - len(shown)} more verdicts (print the report for all of them)")
        return "\n".join([*lines, f"overall: {self.status}  ({sum(self.seconds.values()):.1f} s)"])

    def _html(self) -> list[str]:
        """The diagnosis box and the verdict table of report.html."""
        verdicts = [v.to_dict() for v in self.verdicts]
        return [diagnosis(self.diagnosis.to_dict()), verdict_counts(verdicts), verdict_table(verdicts),
                f"<p class='meta'>overall: {self.status} ({sum(self.seconds.values()):.1f} s)</p>"]

    def to_dict(self) -> dict:
        return jsonable({"diagnosis": self.diagnosis.to_dict(), "verdicts": [v.to_dict() for v in self.verdicts],
                         "lr_finder": self.lr_finder.to_dict() if self.lr_finder else None,
                         "seconds": self.seconds, **self.diagnostics})

    def write(self, diagnostics: str | os.PathLike, metrics: str | os.PathLike) -> None:
        """The diagnosis, verdicts and measurements as JSON (`diagnostics`), and the short run's history as
        JSON lines (`metrics`); `striate.report` draws them."""
        from ..atomic import write_atomic

        Path(diagnostics).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(diagnostics, json.dumps(self.to_dict()) + "\n")
        write_atomic(metrics, "".join(json.dumps(jsonable(r)) + "\n"
                                      for r in self.history["iterations"] + self.history["epochs"]))


def _cut(line: str, width: int = 110) -> str:
    return line if len(line) <= width else line[:width - 1] + "…"
