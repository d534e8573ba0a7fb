"""Verdict: the outcome of one doctor check — status, the measured number, the expected range, advice."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
_RANK = {SKIP: -1, PASS: 0, WARN: 1, FAIL: 2}


@dataclass
class Verdict:
    """check: short name ('gradient check'); status: PASS / WARN / FAIL (SKIP when it could not run);
    value: the measured number as text; expected: the healthy range as text; advice: the cause and what to
    do, in words (when it is not PASS); cause: the root-cause code from the fixed vocabulary
    (`causes.CAUSES`: 'lr_too_high', 'dead_units', ...; '' when PASS); details: numbers for plots and
    reports (JSON-able); symptom: what the check saw, in neutral words ('the loss barely changes'), used
    when the diagnosis lists this verdict as a consequence of another cause."""

    check: str
    status: str
    value: str
    expected: str
    advice: str = ""
    cause: str = ""
    details: dict = field(default_factory=dict)
    symptom: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (PASS, SKIP)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> Verdict:
        return cls(**{k: d.get(k, "" if k != "details" else {}) or ("" if k != "details" else {}) for k in
                      ("check", "status", "value", "expected", "advice", "cause", "details", "symptom")})

    def __str__(self) -> str:
        s = f"[{self.status}] {self.check}: {self.value} (expected {self.expected})"
        return s + (f" — {self.advice}" if self.advice else "")


def worst(statuses) -> str:
    """The most severe of `statuses` (FAIL > WARN > PASS > SKIP); PASS for none."""
    statuses = list(statuses)
    return max(statuses, key=_RANK.__getitem__) if statuses else PASS


def format_table(verdicts: list[Verdict], width: int = 120) -> str:
    """A plain-text table, one verdict per block: status, check, value, expected, then the advice."""
    name_w = max([len("check")] + [len(v.check) for v in verdicts])
    val_w = min(36, max([len("measured")] + [len(v.value) for v in verdicts]))
    lines = [f"{'status':<6}  {'check':<{name_w}}  {'measured':<{val_w}}  expected", "-" * min(width, 100)]
    for v in verdicts:
        lines.append(f"{v.status:<6}  {v.check:<{name_w}}  {v.value:<{val_w}}  {v.expected}")
        if v.advice and v.status != PASS:
            lines.append(f"{'':<6}  {'':<{name_w}}  → {v.advice}")
    return "\n".join(lines)


def _jsonable(obj):
    """Numbers, strings, lists and dicts only; NaN/inf become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


jsonable = _jsonable
