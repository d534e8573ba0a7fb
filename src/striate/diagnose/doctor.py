"""The training doctor: the notes' "babysitting the learning process" checklist, run for you.

    report = st.diagnose.doctor(net, st.nn.SoftmaxCrossEntropy(), (x, y), optimizer="momentum", lr=0.05)
    report.diagnosis         # the root cause, a code: "healthy", "dead_units", "lr_too_high", ...
    print(report)            # the diagnosis, then one verdict per check: PASS / WARN / FAIL, measured, advice
    report.write("doctor/diagnostics.json", "doctor/metrics.jsonl")   # then striate.report draws them

Checks: 0 the data (inputs, labels) and the model's construction · 1 gradient check · 2 initial loss ·
3 regularisation raises the loss · 4 overfit a tiny subset · 5 learning-rate range test + a short run at your
rate · 6 activation statistics · 7 gradient statistics (6–7 at initialisation and after the short run) ·
8 update/weight ratio · 9 learning curves. Then the diagnosis: the root cause named once, the other checks'
findings as its consequences (`diagnosis.py`). Your model is never changed: every check works on a copy.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..nn.losses import SoftmaxCrossEntropy, l2
from ..nn.module import Module
from .activations import diagnose_activations, input_rms
from .curves import diagnose_curves
from .data_check import check_inputs
from .doctor_report import DoctorReport
from .gradient_check import check_gradients
from .gradient_stats import diagnose_gradients
from .initial_loss import check_initial_loss
from .inputs import OptimizerSpec, as_arrays, fresh_copy, make_optimizer, scores_eval
from .lr_finder import check_learning_rate, lr_range_test
from .model_check import check_model
from .overfit import check_overfit
from .regularization import check_regularization
from .stats import layer_statistics
from .update_ratio import diagnose_update_ratio
from .verdict import PASS, SKIP, Verdict

ALL_CHECKS = ("inputs", "model", "gradients", "initial_loss", "regularization", "overfit", "lr", "activations",
              "gradient_stats", "training")


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
    history = History(max_iterations=None)  # a short run; the doctor's metrics.jsonl is written from it
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
    of batches; x as the model expects it, already preprocessed), then combine them into one diagnosis
    (`report.diagnosis`, see `diagnosis.py`).

    checks: a subset of ALL_CHECKS — 'inputs' (0: the data), 'model' (0b: its construction), 'gradients' (1),
    'initial_loss' (2), 'regularization' (3), 'overfit' (4), 'lr' (5: range test + judging `lr` on the short
    run), 'activations' / 'gradient_stats' (6, 7 at init), 'training' (the short run: 6, 7 after it, 8, 9).

    val: (x, y) for validation; by default 20 % of `data` is held out. optimizer / lr / batch_size / penalty:
    the settings you intend to train with (optimizer a name or `f(model, lr)`). iterations: length of the
    short training run behind checks 5–9. `log`: a callable receiving progress lines (e.g. print)."""
    unknown = sorted(set(checks) - set(ALL_CHECKS))
    if unknown:
        raise ValueError(f"doctor: unknown checks {unknown}; choose from {list(ALL_CHECKS)}")
    loss = loss if loss is not None else SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)
    x, y = as_arrays(data)
    whole, separate = (x, y), val is not None
    if val is None:
        perm = rng.permutation(len(x))
        n_val = max(1, len(x) // 5)
        val = (x[perm[:n_val]], y[perm[:n_val]])
        x, y = x[perm[n_val:]], y[perm[n_val:]]
    else:
        val = as_arrays(val)
    with np.errstate(all="ignore"):
        c = num_classes or int(scores_eval(model, x[:2]).shape[1])
    report = DoctorReport()
    report.diagnostics["num_classes"] = c
    first = _first_weight(model)
    say = log or (lambda s: None)

    def timed(name, fn, add=True):
        say(f"doctor: {name} ...")
        t = time.perf_counter()
        with np.errstate(all="ignore"):  # overflow is what some checks provoke; they report it themselves
            out = fn()
        report.seconds[name] = round(time.perf_counter() - t, 3)
        for v in out if isinstance(out, list) else [out]:
            if isinstance(v, Verdict) and add:
                report.verdicts.append(v)
                say(f"  {v}")
        return out

    # always looked at: labels outside the model's classes would stop every check that computes the loss
    found = timed("inputs", lambda: check_inputs(x, y, c, val=val) if separate else check_inputs(*whole, c),
                  add="inputs" in checks)
    if any(v.cause == "labels_out_of_range" for v in found):
        if "inputs" not in checks:
            report.verdicts += [v for v in found if v.cause == "labels_out_of_range"]
        if "model" in checks:
            timed("model", lambda: check_model(model))
        return _finish(report, say, optimizer, lr, batch_size, iterations, penalty, x, val, first)
    if "model" in checks:
        timed("model", lambda: check_model(model))
    trainable = any(p.requires_grad for p in model.parameters())
    sample = x[:512], y[:512]
    if "gradients" in checks:
        timed("gradient check", lambda: check_gradients(model, loss, x, y))
    if "initial_loss" in checks:
        timed("initial loss", lambda: check_initial_loss(model, loss, *sample, num_classes=c))
    if "regularization" in checks:
        factory = _penalty_factory(penalty)
        decay = _weight_decay(optimizer, model, lr) if trainable else 0.0
        timed("regularisation", lambda: check_regularization(model, loss, *sample, penalty=factory, used=penalty,
                                                               weight_decay=decay))
    if not trainable:
        for name in ("overfit", "lr", "training"):
            if name in checks:
                report.verdicts.append(Verdict(_NAMES[name], SKIP, "nothing trainable", "n/a",
                                               "no parameter can learn"))
    if "overfit" in checks and trainable:
        v = timed("overfit", lambda: check_overfit(model, loss, x, y, optimizer, lr, overfit_samples, overfit_iters))
        report.diagnostics["overfit"] = {"losses": v.details.get("losses", [])}
    if "lr" in checks and trainable:
        report.lr_finder = timed("lr range test", lambda: lr_range_test(
            model, loss, x, y, optimizer, iters=lr_finder_iters, batch_size=batch_size,
            rng=np.random.default_rng(seed + 1)))
    stats_x, init = x[:256], {}
    if {"activations", "gradient_stats", "training"} & set(checks):
        init = timed("statistics at init", lambda: _statistics(model, loss, stats_x, y[:256]), add=False)
        if "activations" in checks:
            report.verdicts.append(init["activations"])
        if "gradient_stats" in checks:
            report.verdicts.append(init["gradients"])
    if ("training" in checks or "lr" in checks) and trainable:
        _after_training(report, timed, say, model, loss, x, y, val, optimizer, lr, iterations, batch_size, penalty,
                        seed, checks, init, c)
        first = _first_weight(report.diagnostics.pop("_trained")) or first
    return _finish(report, say, optimizer, lr, batch_size, iterations, penalty, x, val, first)


_NAMES = {"overfit": "overfit tiny subset", "lr": "learning rate", "training": "short training run"}


def _penalty_factory(penalty):
    """A factory `reg -> Penalty` of the kind you train with (L2 by default)."""
    if penalty is None:
        return l2
    try:
        type(penalty)(1e-3)
    except Exception:
        return l2
    return type(penalty)


def _weight_decay(optimizer, model, lr) -> float:
    """Your optimizer's coupled L2 weight decay (AdamW's decoupled decay is not an L2 term)."""
    opt = make_optimizer(optimizer, fresh_copy(model), lr)
    return 0.0 if type(opt).__name__ == "AdamW" else float(getattr(opt, "weight_decay", 0.0) or 0.0)


def _statistics(model, loss, x, y) -> dict:
    """Activation and gradient verdicts of one forward/backward pass at initialisation."""
    stats, params = layer_statistics(model, x, loss, y)
    a = diagnose_activations(stats, input_rms(x))
    g = diagnose_gradients(stats, params, activations=a)
    a.check, g.check = "activations (at init)", "gradients (at init)"
    a.details["stats"] = [s.to_dict() for s in stats]
    return {"activations": a, "gradients": g}


def _after_training(report, timed, say, model, loss, x, y, val, optimizer, lr, iterations, batch_size, penalty,
                    seed, checks, init, c) -> None:
    """The short run at your settings and the checks that read it (5, 6–7 after it, 8, 9)."""
    trainer, diag, history, trained = timed("short run", lambda: short_run(
        model, loss, x, y, val, optimizer, lr, iterations, batch_size, penalty, np.random.default_rng(seed + 2)))
    report.diagnostics["_trained"] = trained
    report.history = {"iterations": history.iterations, "epochs": history.epochs}
    losses = [r["loss"] for r in history.iterations]
    if "lr" in checks:
        report.verdicts.append(check_learning_rate(lr, report.lr_finder, losses))
        say(f"  {report.verdicts[-1]}")
    if "training" in checks:
        new = []
        with np.errstate(all="ignore"):
            if not trainer.diverged:
                # one pass of the trained copy over up to 512 samples: "dead" then means never active on any
                layers, params = layer_statistics(trained, x[:512], loss, y[:512])
                a = diagnose_activations(layers, input_rms(x[:512]), baseline=init.get("activations"))
                g = diagnose_gradients(layers, params, activations=a)
                if g.status != PASS and init.get("gradients") is not None and init["gradients"].status == PASS \
                        and a.status == PASS:
                    g.cause = "lr_too_high"  # appeared during training, with healthy activations: the updates
                a.check = f"activations (after {trainer.iteration} steps)"
                g.check = f"gradients (after {trainer.iteration} steps)"
                g.details.pop("params", None)
                new += [a, g]
            p = np.asarray(losses, dtype=np.float64)
            n = max(len(p) // 10, 1)
            drop = float((p[:n].mean() - p[-n:].mean()) / max(abs(p[:n].mean()), 1e-12)) if len(p) else None
            new.append(diagnose_update_ratio(diag.ratios.records, loss_drop=drop))
            seen = None if trainer.diverged else float(np.mean(scores_eval(trained, x[:512]).argmax(axis=1) == y[:512]))
        new.append(diagnose_curves(history, num_classes=c, train_eval_accuracy=seen))
        report.verdicts += new
        for v in new:
            say(f"  {v}")
    report.diagnostics["layer_stats"] = diag.layers.to_dict()
    report.diagnostics["update_ratio"] = diag.ratios.records
    if not trainer.diverged:
        ev = trainer.evaluate(val, keep=True)
        from ..train.metrics import confusion_matrix

        report.diagnostics["confusion"] = {
            "matrix": confusion_matrix(ev["scores"].argmax(axis=1), ev["labels"], c), "split": "validation"}


def _finish(report, say, optimizer, lr, batch_size, iterations, penalty, x, val, first) -> DoctorReport:
    """Reconcile the checks (a 1-NN test near chance is overruled by a model that generalises), diagnose."""
    match = report.get("labels match inputs")
    curves = report.get("learning curves")
    val_match = report.get("validation labels match")
    if curves is not None and curves.cause == "labels_shuffled" and match is not None and match.status == PASS \
            and (val_match is None or val_match.status == PASS):
        # neighbours share labels, so the labels belong to the inputs: the net memorised without generalising
        curves.cause = "overfitting"
        curves.advice = f"{curves.symptom}: the training data is memorised, nothing carries over — more data, " \
                        "augmentation or regularisation"
    if match is not None and match.cause == "labels_shuffled" and curves is not None:
        best = max((e.get("val_accuracy") or 0.0 for e in report.history["epochs"]), default=0.0)
        chance = curves.details.get("chance") or 0.0
        if best > chance + 0.2:
            match.status, match.cause = PASS, ""
            match.advice = (f"raw-input neighbours rarely share labels, but the model reaches {100 * best:.0f} % on "
                            "validation: the labels belong to the inputs")
    if first is not None:
        report.diagnostics["filters"] = first
    report.diagnostics["settings"] = {"optimizer": optimizer if isinstance(optimizer, str) else "custom", "lr": lr,
                                      "batch_size": batch_size, "iterations": iterations,
                                      "penalty": repr(penalty) if penalty is not None else None,
                                      "samples": len(x), "validation": len(val[1])}
    report.diagnose()
    return report
