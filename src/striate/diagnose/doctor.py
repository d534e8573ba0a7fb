"""The training doctor: the notes' "babysitting the learning process" checklist, run for you.

    report = st.diagnose.doctor(net, st.nn.SoftmaxCrossEntropy(), (x, y), optimizer="momentum", lr=0.05)
    report.diagnosis         # the root cause, a code: "healthy", "dead_units", "lr_too_high", ...
    print(report)            # the diagnosis, then one verdict per check: PASS / WARN / FAIL, measured, advice
    report.write("doctor/diagnostics.json", "doctor/metrics.jsonl")   # then striate.report draws them

The checks are the registered ones (`check.REGISTRY`, one file each in `checks/`), in order: 0 the data
(inputs, labels, labels match inputs, validation labels match) and the model's construction · 1 gradient check ·
2 initial loss · 3 regularisation raises the loss · 4 overfit a tiny subset · 5 learning rate (the range test + a
short run at your rate) · 6 activations · 7 gradients (6–7 at initialisation and after the short run) ·
8 update/weight ratio · 9 learning curves. Each is given the `Context` (the model, the data, your settings, the
measurements they share); a check that needs the trained copy or its curves runs after the short run. Then the
diagnosis: the root cause named once, the other checks' findings as its consequences (`diagnosis.py`). Your
model is never changed: every check works on a copy.
"""

from __future__ import annotations

import time

import numpy as np

from ..nn.module import Module
from . import checks as _checks  # noqa: F401  (registers the checks)
from .causes import remedy
from .check import REGISTRY, Check, as_verdicts, resolve
from .checks.labels_match import LabelsMatch
from .checks.learning_curves import LearningCurves
from .checks.validation_labels import ValidationLabels
from .context import Context, Settings, ShortRun
from .doctor_report import DoctorReport
from .inputs import OptimizerSpec
from .thresholds import THRESHOLDS, Thresholds
from .verdict import PASS, SKIP

TRAINING = frozenset({"trained", "curves"})  # what only the short run provides


def doctor(model: Module, loss=None, data=None, val=None, *, optimizer: OptimizerSpec = "momentum",
           lr: float = 0.01, batch_size: int = 64, penalty=None, checks=None, iterations: int = 300,
           overfit_samples: int = 32, overfit_iters: int = 300, lr_finder_iters: int = 120,
           num_classes: int | None = None, seed: int = 0, thresholds: Thresholds = THRESHOLDS,
           log=None) -> DoctorReport:
    """Run the checks on `model` with `loss` (default softmax) and `data` ((x, y) float arrays or a loader
    of batches; x as the model expects it, already preprocessed), then combine them into one diagnosis
    (`report.diagnosis`, see `diagnosis.py`).

    checks: names of registered checks (default: all, `list(check.REGISTRY)`), e.g. ("initial loss",
    "learning rate"); '_' or '-' may stand for the spaces, and the earlier short keys ('lr', 'training', ...)
    are still accepted. val: (x, y) for validation; by default 20 % of `data` is held out. optimizer / lr /
    batch_size / penalty: the settings you intend to train with (optimizer a name or `f(model, lr)`).
    iterations: length of the short training run behind checks 5–9. thresholds: the WARN/FAIL boundaries
    (`thresholds.THRESHOLDS`). `log`: a callable receiving progress lines (e.g. print)."""
    selected = [REGISTRY[n] for n in resolve(list(REGISTRY) if checks is None else checks)]
    settings = Settings(optimizer, lr, batch_size, penalty, iterations, overfit_samples, overfit_iters,
                        lr_finder_iters, seed)
    ctx = Context.prepare(model, loss, data, val, settings, num_classes=num_classes, thresholds=thresholds,
                          say=log or (lambda s: None))
    return examine(ctx, selected)


def examine(ctx: Context, selected: list[Check]) -> DoctorReport:
    """The report of `selected` checks on `ctx`: those that need only your model and data first, then the
    short run and those that need it (or judge the trained copy too), then the diagnosis."""
    report = DoctorReport()
    report.diagnostics["num_classes"] = ctx.num_classes
    first = _first_weight(ctx.model)
    # always looked at: labels outside the model's classes would stop every check that computes the loss
    gate = [v for v in ctx.data_verdicts() if v.cause == "labels_out_of_range"]
    if gate:
        safe = [c for c in selected if not {"model", "data"} <= c.needs and not c.needs & TRAINING]
        _run(report, ctx, safe)
        if not any(c.name == v.check for c in safe for v in gate):
            report.verdicts[:0] = gate
        return _finish(report, ctx, first)
    _run(report, ctx, [c for c in selected if not c.needs & TRAINING], remember=True)
    if any(c.needs & TRAINING for c in selected):
        if not ctx.trainable:
            report.verdicts += [_nothing_trainable(c) for c in selected if c.needs & TRAINING]
        else:
            ctx.trained = ctx.short_run()
            _run(report, ctx, [c for c in selected if c.needs & TRAINING or getattr(c, "after_training", False)])
            _record(report, ctx, ctx.trained)
            first = _first_weight(ctx.trained.model) or first
    return _finish(report, ctx, first)


def _run(report: DoctorReport, ctx: Context, checks: list[Check], remember: bool = False) -> None:
    """Run `checks` in order, adding their verdicts (and timing each apart from the shared measurements it
    triggered); `remember`: keep each check's first verdict as `ctx.earlier[name]`."""
    for c in checks:
        ctx.say(f"doctor: {c.name} ...")
        shared, t = sum(ctx.seconds.values()), time.perf_counter()
        with np.errstate(all="ignore"):  # overflow is what some checks provoke; they report it themselves
            out = as_verdicts(c, c.run(ctx))
        own = time.perf_counter() - t - (sum(ctx.seconds.values()) - shared)
        ctx.seconds[c.name] = round(ctx.seconds.get(c.name, 0.0) + max(own, 0.0), 3)
        if remember and out:
            ctx.earlier[c.name] = out[0]
        for v in out:
            ctx.say(f"  {v}")
        report.verdicts += out


def _nothing_trainable(c: Check):
    from .verdict import Verdict

    return Verdict(c.name, SKIP, "nothing trainable", "n/a", "no parameter can learn")


def _first_weight(model: Module) -> dict | None:
    for name, p in model.named_parameters():
        if p.data.ndim == 4:  # (KH, KW, C_in, C_out): the first convolution's filters
            return {"name": name, "weight": p.data}
    for name, p in model.named_parameters():
        if p.data.ndim == 2:
            return {"name": name, "weight": p.data}
    return None


def _record(report: DoctorReport, ctx: Context, run: ShortRun) -> None:
    """The short run's measurements for the report: its history, layer statistics, update ratios, the
    validation confusion matrix and the range test when it was made."""
    report.lr_finder = ctx.made("lr range test")
    report.history = {"iterations": run.history.iterations, "epochs": run.history.epochs}
    report.diagnostics["layer_stats"] = run.diagnostics.layers.to_dict()
    report.diagnostics["update_ratio"] = run.diagnostics.ratios.records
    if not run.diverged:
        from ..train.metrics import confusion_matrix

        ev = run.trainer.evaluate(ctx.val, keep=True)
        report.diagnostics["confusion"] = {
            "matrix": confusion_matrix(ev["scores"].argmax(axis=1), ev["labels"], ctx.num_classes),
            "split": "validation"}


def _reconcile(report: DoctorReport) -> None:
    """A 1-NN test near chance is overruled by a model that generalises; validation at chance with labels that
    belong to their inputs is memorising, not shuffled labels."""
    match, curves = report.get(LabelsMatch.name), report.get(LearningCurves.name)
    val_match = report.get(ValidationLabels.name)
    if curves is not None and curves.cause == "labels_shuffled" and match is not None and match.status == PASS \
            and (val_match is None or val_match.status == PASS):
        # neighbours share labels, so the labels belong to the inputs: the net memorised without generalising
        curves.cause = "overfitting"
        curves.advice = f"{curves.symptom}: the training data is memorised, nothing carries over — " \
                        + remedy("overfitting")
    if match is not None and match.cause == "labels_shuffled" and curves is not None:
        best = max((e.get("val_accuracy") or 0.0 for e in report.history["epochs"]), default=0.0)
        chance = curves.details.get("chance") or 0.0
        if best > chance + 0.2:
            match.status, match.cause = PASS, ""
            match.advice = (f"raw-input neighbours rarely share labels, but the model reaches {100 * best:.0f} % on "
                            "validation: the labels belong to the inputs")


def _finish(report: DoctorReport, ctx: Context, first: dict | None) -> DoctorReport:
    """Reconcile the checks, add the measurements and settings, diagnose."""
    _reconcile(report)
    report.diagnostics.update(ctx.diagnostics)
    if first is not None:
        report.diagnostics["filters"] = first
    report.diagnostics["settings"] = {**ctx.settings.to_dict(), "samples": len(ctx.x), "validation": len(ctx.val[1])}
    report.seconds = ctx.seconds
    report.diagnose()
    return report
