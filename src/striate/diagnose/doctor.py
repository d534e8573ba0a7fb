"""The training doctor: the notes' "babysitting the learning process" checklist, run for you.

    report = st.diagnose.doctor(net, st.nn.SoftmaxCrossEntropy(), (x, y), optimizer="momentum", lr=0.05)
    print(report)            # one verdict per check: PASS / WARN / FAIL, measured, expected, advice
    report.write("doctor/")  # diagnostics.json, metrics.jsonl and report.html with the plots

Checks: 1 gradient check · 2 initial loss · 3 regularisation raises the loss · 4 overfit a tiny subset ·
5 learning-rate range test + a short run at your rate · 6 activation statistics · 7 gradient statistics
(6–7 at initialisation and during the short run) · 8 update/weight ratio · 9 learning curves. Your
model is never changed: every check works on a copy.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..nn.losses import SoftmaxCrossEntropy, l2
from ..nn.module import Module
from .curves import diagnose_curves
from .gradient_check import check_gradients
from .gradient_stats import check_gradient_stats
from .initial_loss import check_initial_loss
from .inputs import OptimizerSpec, as_arrays, fresh_copy, make_optimizer, scores_eval
from .lr_finder import LRFinderResult, check_learning_rate, lr_range_test
from .overfit import check_overfit
from .regularization import check_regularization
from .stats import check_activations
from .verdict import FAIL, Verdict, format_table, jsonable, worst

ALL_CHECKS = ("gradients", "initial_loss", "regularization", "overfit", "lr", "activations", "gradient_stats",
              "training")


@dataclass
class DoctorReport:
    verdicts: list[Verdict] = field(default_factory=list)
    lr_finder: LRFinderResult | None = None
    history: dict = field(default_factory=lambda: {"iterations": [], "epochs": []})
    diagnostics: dict = field(default_factory=dict)  # layer stats, update ratios, filters, confusion, ...
    seconds: dict = field(default_factory=dict)

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

    def __str__(self) -> str:
        total = sum(self.seconds.values())
        return format_table(self.verdicts) + f"\n\noverall: {self.status}  ({total:.1f} s)"

    def to_dict(self) -> dict:
        return jsonable({"verdicts": [v.to_dict() for v in self.verdicts],
                         "lr_finder": self.lr_finder.to_dict() if self.lr_finder else None,
                         "seconds": self.seconds, **self.diagnostics})

    def write(self, directory: str | os.PathLike, html: bool = True) -> Path:
        """diagnostics.json, metrics.jsonl (the short run) and, with `html`, report.html + PNGs."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "diagnostics.json").write_text(json.dumps(self.to_dict()) + "\n")
        with open(directory / "metrics.jsonl", "w") as f:
            for rec in self.history["iterations"] + self.history["epochs"]:
                f.write(json.dumps(jsonable(rec)) + "\n")
        if html:
            from ..report.html import write_report

            return write_report(directory, title="striate doctor")
        return directory / "diagnostics.json"


class _Minibatches:
    """Shuffled minibatches of (x, y) without replacement, a new permutation per pass."""

    def __init__(self, x, y, batch_size, rng):
        self.x, self.y, self.batch_size, self.rng = x, y, batch_size, rng

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        perm = self.rng.permutation(len(self.x))
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


def _first_weight(model: Module) -> dict | None:
    for name, p in model.named_parameters():
        if p.data.ndim == 4:  # (KH, KW, C_in, C_out): the first convolution's filters
            return {"name": name, "weight": p.data}
    for name, p in model.named_parameters():
        if p.data.ndim == 2:
            return {"name": name, "weight": p.data}
    return None


def short_run(model: Module, loss, x, y, val, optimizer: OptimizerSpec, lr: float, iterations: int,
              batch_size: int, penalty, rng, stats_interval: int = 25):
    """Train a copy for about `iterations` steps with the diagnostic callbacks; returns
    (trainer, diagnostics callback, history callback, trained copy)."""
    from ..train.callbacks import ExplosionGuard, History
    from ..train.trainer import Trainer
    from .callbacks import Diagnostics

    m = fresh_copy(model)
    batches = _Minibatches(x, y, batch_size, rng)
    epochs = max(2, int(math.ceil(iterations / len(batches))))
    history = History()
    diag = Diagnostics(None, stats_interval=stats_interval, ratio_interval=1)
    trainer = Trainer(m, loss, make_optimizer(optimizer, m, lr), penalty=penalty,
                      callbacks=[ExplosionGuard(3.0), history, diag])
    with np.errstate(all="ignore"):
        trainer.fit(batches, val, epochs=epochs)
    return trainer, diag, history, m


def doctor(model: Module, loss=None, data=None, val=None, *, optimizer: OptimizerSpec = "momentum",
           lr: float = 0.01, batch_size: int = 64, penalty=None, checks=ALL_CHECKS, iterations: int = 300,
           overfit_samples: int = 32, overfit_iters: int = 300, lr_finder_iters: int = 120,
           num_classes: int | None = None, seed: int = 0, log=None) -> DoctorReport:
    """Run the checks on `model` with `loss` (default softmax) and `data` ((x, y) float arrays or a loader
    of batches; x as the model expects it, already preprocessed).

    checks: a subset of ALL_CHECKS — 'gradients' (1), 'initial_loss' (2), 'regularization' (3), 'overfit' (4),
    'lr' (5: range test + judging `lr` on the short run), 'activations' / 'gradient_stats' (6, 7 at init),
    'training' (the short run: 6, 7 after it, 8, 9).

    val: (x, y) for validation; by default 20 % of `data` is held out. optimizer / lr / batch_size / penalty:
    the settings you intend to train with (optimizer a name or `f(model, lr)`). iterations: length of the
    short training run behind checks 5–9. `log`: a callable receiving progress lines (e.g. print)."""
    unknown = sorted(set(checks) - set(ALL_CHECKS))
    if unknown:
        raise ValueError(f"doctor: unknown checks {unknown}; choose from {list(ALL_CHECKS)}")
    loss = loss if loss is not None else SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    x, y = as_arrays(data)
    if val is None:
        perm = rng.permutation(len(x))
        n_val = max(1, len(x) // 5)
        val = (x[perm[:n_val]], y[perm[:n_val]])
        x, y = x[perm[n_val:]], y[perm[n_val:]]
    else:
        val = as_arrays(val)
    c = num_classes or int(scores_eval(model, x[:2]).shape[1])
    report = DoctorReport()
    report.diagnostics["num_classes"] = c
    first = _first_weight(model)
    say = log or (lambda s: None)

    def timed(name, fn):
        say(f"doctor: {name} ...")
        t = time.perf_counter()
        with np.errstate(all="ignore"):  # overflow is what some checks provoke; they report it themselves
            out = fn()
        report.seconds[name] = round(time.perf_counter() - t, 3)
        if isinstance(out, Verdict):
            report.verdicts.append(out)
            say(f"  {out}")
        return out

    sample = x[:512], y[:512]
    if "gradients" in checks:
        timed("gradient check", lambda: check_gradients(model, loss, x, y))
    if "initial_loss" in checks:
        timed("initial loss", lambda: check_initial_loss(model, loss, *sample, num_classes=c))
    if "regularization" in checks:
        factory = type(penalty) if penalty is not None else l2  # the kind of penalty you train with
        timed("regularisation", lambda: check_regularization(model, loss, *sample, penalty=factory))
    if "overfit" in checks:
        v = timed("overfit", lambda: check_overfit(model, loss, x, y, optimizer, lr, overfit_samples, overfit_iters))
        report.diagnostics["overfit"] = {"losses": v.details.get("losses", [])}
    if "lr" in checks:
        report.lr_finder = timed("lr range test", lambda: lr_range_test(
            model, loss, x, y, optimizer, iters=lr_finder_iters, batch_size=batch_size,
            rng=np.random.default_rng(seed + 1)))
    stats_x = x[:256]
    if "activations" in checks:
        v = timed("activations at init", lambda: check_activations(model, stats_x))
        v.check = "activations (at init)"
    if "gradient_stats" in checks:
        v = timed("gradients at init", lambda: check_gradient_stats(model, loss, stats_x, y[:256]))
        v.check = "gradients (at init)"
    if "training" in checks or "lr" in checks:
        trainer, diag, history, trained = timed("short run", lambda: short_run(
            model, loss, x, y, val, optimizer, lr, iterations, batch_size, penalty, np.random.default_rng(seed + 2)))
        report.history = {"iterations": history.iterations, "epochs": history.epochs}
        losses = [r["loss"] for r in history.iterations]
        if "lr" in checks:
            report.verdicts.append(check_learning_rate(lr, report.lr_finder, losses))
            say(f"  {report.verdicts[-1]}")
        if "training" in checks:
            if not trainer.diverged:
                from .gradient_stats import diagnose_gradients
                from .stats import diagnose_activations, layer_statistics

                # one pass of the trained copy over up to 512 samples: "dead" then means never active on any
                layers, params = layer_statistics(trained, x[:512], loss, y[:512])
                a = diagnose_activations(layers, input_std=float(np.std(x[:512])))
                g = diagnose_gradients(layers, params)
                a.check = f"activations (after {trainer.iteration} steps)"
                g.check = f"gradients (after {trainer.iteration} steps)"
                g.details.pop("params", None)
                report.verdicts += [a, g]
            report.verdicts.append(diag.ratios.verdict())
            report.verdicts.append(diagnose_curves(history, num_classes=c))
            for v in report.verdicts[-4:]:
                say(f"  {v}")
        report.diagnostics["layer_stats"] = diag.layers.to_dict()
        report.diagnostics["update_ratio"] = diag.ratios.records
        if not trainer.diverged:
            ev = trainer.evaluate(val, return_predictions=True)
            from ..train.metrics import confusion_matrix

            report.diagnostics["confusion"] = {
                "matrix": confusion_matrix(ev["predictions"], ev["labels"], c), "split": "validation"}
        first = _first_weight(trained) or first
    if first is not None:
        report.diagnostics["filters"] = first
    report.diagnostics["settings"] = {"optimizer": optimizer if isinstance(optimizer, str) else "custom", "lr": lr,
                                      "batch_size": batch_size, "iterations": iterations,
                                      "penalty": repr(penalty) if penalty is not None else None,
                                      "samples": len(x), "validation": len(val[1])}
    return report

