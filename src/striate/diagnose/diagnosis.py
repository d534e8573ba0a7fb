"""Root cause first: the verdicts of all checks combined into one diagnosis, as a differential diagnosis does.

Every check names the cause its own evidence points to (a code of `causes.CAUSES`). The diagnosis picks the
root among them — the most fundamental cause (`causes.PRIORITY`) with FAIL evidence (a WARN of a cause read
from the data or the settings before training, `causes.PROMOTABLE`, counts when it explains a FAIL), leaving
out what a FAIL's evidence rules out (a tiny subset that even Adam cannot fit: not the learning rate) —
and names it once, with its advice. Every verdict the root explains (`causes.EXPLAINS`), or that contradicts
it, becomes one of its consequences: its cause is rewritten to the root's code and its advice to "a
consequence of …" with what that check saw, so no two pieces of advice point opposite ways. Problems the
root does not explain are listed as `also`, each once, each absorbing its own consequences.

    report.diagnosis == "dead_units"      # a str: the root cause's code
    report.diagnosis.status, .advice, .evidence, .consequences, .also
"""

from __future__ import annotations

from .causes import HEALTHY, PRIORITY, PROMOTABLE, conflicts, explains, meaning
from .check import check_of
from .verdict import FAIL, PASS, WARN, Verdict, worst

_RANK = {c: i for i, c in enumerate(PRIORITY)}


class Diagnosis(str):
    """A root-cause code (the string itself) with its status, advice, evidence (the verdicts that name it:
    {"check", "status", "value"}), consequences (the verdicts it explains: {"check", "status", "value",
    "symptom"}) and `also` (independent problems, each a Diagnosis)."""

    status: str
    advice: str
    evidence: list[dict]
    consequences: list[dict]
    also: list[Diagnosis]

    def __new__(cls, code: str = HEALTHY, status: str = PASS, advice: str = "", evidence=(), consequences=(),
                also=()):
        self = super().__new__(cls, code)
        self.status, self.advice = status, advice
        self.evidence, self.consequences, self.also = list(evidence), list(consequences), list(also)
        return self

    @property
    def code(self) -> str:
        return str.__str__(self)

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def __repr__(self) -> str:
        return f"Diagnosis({self.code!r}, {self.status})"

    def codes(self) -> list[str]:
        """The root's code then every `also` code: all the causes named."""
        return [self.code] + [a.code for a in self.also]

    def to_dict(self) -> dict:
        return {"cause": self.code, "status": self.status, "advice": self.advice, "evidence": self.evidence,
                "consequences": self.consequences, "also": [a.to_dict() for a in self.also]}

    @classmethod
    def from_dict(cls, d: dict | str | None) -> Diagnosis:
        if not isinstance(d, dict):
            return cls(d or HEALTHY)
        return cls(d.get("cause", HEALTHY), d.get("status", PASS), d.get("advice", ""), d.get("evidence", ()),
                   d.get("consequences", ()), [cls.from_dict(a) for a in d.get("also", ())])

    def describe(self) -> str:
        """The diagnosis in lines: the root with its advice, where it was seen, its consequences, then the
        independent problems."""
        lines = [f"diagnosis: {self.code} ({self.status}) — {self.advice}"]
        if self.evidence:
            lines.append("  seen in: " + "; ".join(f"{e['check']} ({e['value']})" for e in self.evidence))
        if self.consequences:
            lines.append("  consequences: " + "; ".join(f"{c['check']}: {c['symptom']}" for c in self.consequences))
        for a in self.also:
            lines.append(f"  also: {a.code} ({a.status}) — {a.advice}")
            if a.consequences:
                lines.append("    consequences: " + "; ".join(f"{c['check']}: {c['symptom']}"
                                                              for c in a.consequences))
        return "\n".join(lines)


def _rank(code: str) -> int:
    return _RANK.get(code, len(_RANK))


def ruled_out(verdicts: list[Verdict]) -> set[str]:
    """Codes a FAIL verdict's evidence excludes as the root (`details["rules_out"]`: e.g. a tiny subset that
    not even a reference optimizer can fit rules out the learning rate)."""
    return {c for v in verdicts if v.status == FAIL for c in v.details.get("rules_out", ())}


def choose_root(verdicts: list[Verdict]) -> str:
    """The root cause's code among the verdicts' causes (HEALTHY when none is WARN or FAIL)."""
    problems = [v for v in verdicts if v.status in (WARN, FAIL) and v.cause]
    if not problems:
        return HEALTHY
    out = ruled_out(verdicts)
    if any(v.cause not in out for v in problems):
        problems = [v for v in problems if v.cause not in out]
    fails = {v.cause for v in problems if v.status == FAIL}
    warns = {v.cause for v in problems if v.status == WARN}
    if not fails:
        return min(warns, key=_rank)
    promoted = {c for c in warns if c in PROMOTABLE and any(explains(c, f) and f != c for f in fails)}
    return min(fails | promoted, key=_rank)


def diagnose(verdicts: list[Verdict]) -> Diagnosis:
    """The diagnosis of `verdicts`; rewrites the cause and advice of the verdicts that are consequences
    (in place), so the table and the diagnosis tell one story."""
    root = choose_root(verdicts)
    if root == HEALTHY:
        ran = [v for v in verdicts if v.status == PASS]
        return Diagnosis(HEALTHY, PASS, f"no problem found: {len(ran)} check(s) passed" if ran else "nothing checked")
    problems = [v for v in verdicts if v.status in (WARN, FAIL) and v.cause]
    out = ruled_out(verdicts)
    named = [root]
    for code in sorted({v.cause for v in problems} - {root} - out, key=_rank):
        if not any(explains(n, code) for n in named):
            named.append(code)
    owners: dict[str, list[Verdict]] = {n: [] for n in named}
    for v in problems:  # a ruled-out reading is the root's consequence
        owners[next((n for n in named if explains(n, v.cause)), root)].append(v)
    parts = [_part(n, owners[n]) for n in named]
    main = parts[0]
    main.also = parts[1:]
    return main


def _part(code: str, verdicts: list[Verdict]) -> Diagnosis:
    own = [v for v in verdicts if v.cause == code]
    others = [v for v in verdicts if v.cause != code]
    # the advice given is the strongest reading's, from the check made for that cause when it has one
    lead = max(own, key=lambda v: (v.status == FAIL, code in getattr(check_of(v.check), "leads", ()),
                                   -verdicts.index(v)), default=None)
    advice = lead.advice if lead is not None else f"{meaning(code)}"
    consequences = []
    for v in others:
        seen = v.symptom or v.value
        # a reading that pointed the other way is explained by the root's stronger evidence, not followed
        v.advice = (f"{seen}: a consequence of the diagnosis ({code}: {meaning(code)})"
                    + (", not a cause of its own" if conflicts(code, v.cause) else ""))
        v.cause = code
        consequences.append({"check": v.check, "status": v.status, "value": v.value, "symptom": seen})
    return Diagnosis(code, worst(v.status for v in verdicts), advice,
                     [{"check": v.check, "status": v.status, "value": v.value} for v in own], consequences)
