"""What a doctor's check is: the `Check` protocol, the `Finding` it measures, and the registry.

A check has ONE name, used everywhere: `doctor(checks=...)`, `striate doctor --checks`, the `check` field of
its verdicts in diagnostics.json, the text report and the HTML report. It declares what it needs from the
`Context` (`NEEDS`: the model, the data, the trained copy of the short run, its learning curves) and the
causes (codes of `causes.CAUSES`) it can report; `run(context)` returns its findings (the doctor makes them
one verdict: the first FAIL, else the first finding, leads; `as_verdicts`) or verdicts of its own. A check that also
judges the trained copy (`after_training = True`) is run a second time on it, with `context.trained` set.

    @register
    class MyCheck:
        name = "my check"
        needs = frozenset({"model", "data"})
        causes = frozenset({"weights_too_large"})

        def run(self, ctx: Context) -> list[Finding]:
            rms = ...
            return [Finding(FAIL, "weights_too_large", "the weights are huge", f"RMS {rms:.3g}")] if rms > 10 else []

The order of registration is the order the doctor runs them (`checks/__init__.py` imports them in order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .causes import CAUSES, remedy
from .verdict import FAIL, PASS, Verdict

if TYPE_CHECKING:
    from .context import Context

NEEDS = frozenset({"model", "data", "trained", "curves"})


@runtime_checkable
class Check(Protocol):
    """name: the check's one name; needs: a subset of `NEEDS`; causes: the codes it can report;
    after_training: also run on the trained copy (the context's `trained` set); leads: the causes this check
    is made for — its advice leads the diagnosis when that cause is the root."""

    name: str
    needs: frozenset[str]
    causes: frozenset[str]

    def run(self, ctx: Context) -> list[Finding] | list[Verdict]: ...


@dataclass(frozen=True)
class Finding:
    """One thing a check saw: status (WARN / FAIL), the cause it points to (a code of `CAUSES`), the symptom
    in neutral words, the measured reason for naming that cause, and where (a layer's name; '' for none).
    `kind` tells findings of one check apart ('dead', 'saturated', ...)."""

    status: str
    cause: str
    symptom: str
    reason: str = ""
    kind: str = ""
    where: str = ""
    value: str = ""

    @property
    def advice(self) -> str:
        """The symptom, the measured reason, then what to do — from the cause vocabulary, not the check."""
        return f"{self.symptom}: " + (f"{self.reason} — " if self.reason else "") + remedy(self.cause)

    def verdict(self, check: str, value: str, expected: str, details: dict | None = None) -> Verdict:
        """This finding as check `check`'s verdict (value: the measured number as text)."""
        return Verdict(check, self.status, value, expected, self.advice, cause=self.cause,
                       details=details if details is not None else {}, symptom=self.symptom)

    def to_dict(self) -> dict:
        out = {"status": self.status, "cause": self.cause, "symptom": self.symptom}
        if self.kind:
            out["finding"] = self.kind
        if self.where:
            out["layer"] = self.where
        if self.value:
            out["value"] = self.value
        return out


def primary(findings: list[Finding]) -> Finding:
    """The finding a verdict reports: the first FAIL, else the first (findings come in order of precedence)."""
    return next((f for f in findings if f.status == FAIL), findings[0])


def judged(name: str, findings: list[Finding], expected: str, details: dict, *, value: str = "",
           healthy: tuple[str, str] = ("", "")) -> Verdict:
    """The verdict of `findings`: PASS with `healthy` (value, advice) when there are none, else the primary
    finding's status, cause and advice (all of them in `details['findings']`)."""
    if not findings:
        return Verdict(name, PASS, healthy[0], expected, healthy[1], details=details)
    lead = primary(findings)
    details["findings"] = [f.to_dict() for f in sorted(findings, key=lambda f: f.status != FAIL)]
    return Verdict(name, lead.status, value or lead.value or lead.symptom, expected, lead.advice, cause=lead.cause,
                   details=details, symptom=lead.symptom)


def as_verdicts(check: Check, out: list) -> list[Verdict]:
    """What `check.run` returned, as verdicts: its verdicts as they are, and its findings (a check may return
    `Finding`s and leave the verdict to the doctor) as one verdict of the check's name (`judged`)."""
    findings = [f for f in out if isinstance(f, Finding)]
    verdicts = [v for v in out if not isinstance(v, Finding)]
    return ([judged(check.name, findings, "", {})] if findings else []) + verdicts


REGISTRY: dict[str, Check] = {}


def register(check):
    """Add a check (a class, instantiated here, or an instance) to the registry under its name; returns it
    unchanged (usable as a class decorator). Refuses a second check of the same name, needs outside `NEEDS`
    and causes outside `CAUSES`."""
    obj = check() if isinstance(check, type) else check
    if not isinstance(obj, Check):
        raise TypeError(f"register: {check!r} is not a Check (name, needs, causes, run)")
    if obj.name in REGISTRY and type(REGISTRY[obj.name]) is not type(obj):
        raise ValueError(f"register: a check named {obj.name!r} is already registered")
    if not obj.needs <= NEEDS:
        raise ValueError(f"register: {obj.name!r} needs {sorted(obj.needs - NEEDS)}; choose from {sorted(NEEDS)}")
    if not obj.causes <= CAUSES.keys():
        raise ValueError(f"register: {obj.name!r} reports unknown causes {sorted(obj.causes - CAUSES.keys())}; "
                         "add them to causes.CAUSES first")
    REGISTRY[obj.name] = obj
    return check


def check_of(verdict_check: str) -> Check | None:
    """The registered check whose verdict this is (the name before a stage in parentheses)."""
    return REGISTRY.get(verdict_check.split(" (")[0])


# the doctor's names before one name per check: accepted by `doctor(checks=...)` and mapped to today's
_OLD_KEYS = {"lr": ("learning rate",), "initial_loss": ("initial loss",), "overfit": ("overfit tiny subset",),
             "regularization": ("regularisation raises loss",), "gradient_stats": ("gradients",),
             "training": ("activations", "gradients", "update/weight ratio", "learning curves")}


def resolve(names) -> list[str]:
    """The registered names that `names` select, in registry order; a name may be spelt with '_' or '-'
    for spaces ('initial_loss', 'learning-rate'), and the doctor's earlier short keys ('lr', 'training')
    are accepted. Raises ValueError naming the unknown ones."""
    if isinstance(names, str):
        names = [names]
    wanted, unknown = set(), []
    for raw in names:
        n = str(raw).strip()
        spelt = n.replace("_", " ").replace("-", " ").lower()
        if n in REGISTRY or spelt in REGISTRY:
            wanted.add(n if n in REGISTRY else spelt)
        elif n in _OLD_KEYS:
            wanted.update(_OLD_KEYS[n])
        else:
            unknown.append(n)
    if unknown:
        raise ValueError(f"doctor: unknown checks {unknown}; choose from {list(REGISTRY)}")
    return [n for n in REGISTRY if n in wanted]
