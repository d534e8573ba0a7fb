"""`striate doctor`: the notes' "babysitting the learning process" checklist on a model and dataset (the
embedded digits and digits_net by default, with `striate train`'s options and defaults): the diagnosis first
— the root cause as a code of the fixed vocabulary (`diagnose.causes`), its advice, its consequences —
then a verdict per check, and with `--out DIR` the diagnostics, the short run's metrics and report.html there.
`--checks a,b` runs only those checks (by the names the report shows). `--init-experiment` runs the notes'
initialisation experiment instead. Exit status 1 when a check fails."""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from .parser import EXIT_ERROR, EXIT_OK, add_options, given

HELP = "run the babysitting checklist on a model and data: the root cause first, then a verdict per check"
DESCRIPTION = ("Run the babysitting checks (the data and the model's construction, gradient check, initial loss, "
               "regularisation, overfit a tiny subset, learning-rate range test, activation/gradient statistics, "
               "update ratio, learning curves) and print the diagnosis — the root cause (healthy, lr_too_high, "
               "dead_units, ...), its advice and its consequences — then a verdict per check.")


def add_arguments(parser) -> None:
    parser.add_argument("--init-experiment", action="store_true",
                        help="run the notes' initialisation experiment (10-layer 500-unit tanh/ReLU net) instead "
                             "(default: off)")
    parser.add_argument("--out", metavar="DIR", help="write diagnostics.json, metrics.jsonl and report.html here "
                        "(default: nowhere)")
    parser.add_argument("--checks", metavar="NAMES", type=_checks, default=None,
                        help="run only these checks, comma-separated, by the names the report shows ('initial loss', "
                             "'learning rate'; '_' or '-' may stand for the spaces: initial_loss,learning-rate) "
                             "(default: all)")
    parser.add_argument("--json", action="store_true", help="print the diagnosis and the verdicts as one JSON object "
                        "(default: text)")
    add_options(parser, "doctor")


def _checks(text: str) -> list[str]:
    """The registered check names `text` (comma-separated) selects; an unknown one is a usage error."""
    import argparse

    from ..diagnose import doctor  # noqa: F401  (registers the checks)
    from ..diagnose.check import resolve

    try:
        return resolve([n for n in text.split(",") if n.strip()])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("doctor: ")) from None


def run(args) -> int:
    from ..run import config

    cfg = config.resolve(given(args, "doctor"), where="command line", command="doctor")
    out = None
    if args.out:  # refused before the checks run, and before anything is written
        from ..run import RunDir

        out = RunDir(args.out).claim("striate doctor")
    if args.init_experiment:
        return _init_experiment(args, cfg, out)
    from ..diagnose.doctor import doctor
    from ..nn.losses import named
    from ..optim.registry import build as optimizer
    from ..run import default_model, load_data
    from ..run.build import model_for, preprocessing

    data = load_data(cfg)
    preprocess = preprocessing(cfg)
    model = model_for(cfg, len(data.classes), data.shape, preprocess, samples=len(data.train_x))
    preprocess.fit(data.train_x)
    train, val = _within(data.train_x, data.train_y), _within(data.val_x, data.val_y)
    val = (preprocess.lazy(val[0]), val[1]) if val is not None else None

    def make_opt(m, lr):
        return optimizer(cfg["optimizer"], m, lr, cfg["momentum"], cfg["weight_decay"])

    log = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    report = doctor(model, named(cfg["loss"]), data=(preprocess.lazy(train[0]), train[1]), val=val,
                    optimizer=make_opt, lr=cfg["lr"],
                    batch_size=cfg["batch_size"], iterations=cfg["iterations"], num_classes=len(data.classes),
                    seed=cfg["seed"], checks=args.checks, log=log)
    report.diagnostics["settings"].update(optimizer=cfg["optimizer"], data=cfg["data"],
                                          model=cfg["model"] or default_model(cfg["data"]))
    if report.diagnostics.get("confusion") is not None:
        report.diagnostics["confusion"]["classes"] = data.classes
    if args.json:
        doc = report.to_dict()
        print(json.dumps({"diagnosis": doc["diagnosis"], "verdicts": [
            {k: v[k] for k in ("check", "status", "value", "expected", "advice", "cause")} for v in doc["verdicts"]]}))
    else:
        print(report)
    if out is not None:
        _write(out, lambda run: report.write(run.diagnostics_file, run.metrics_file), "striate doctor")
    return EXIT_ERROR if report.status == "FAIL" else EXIT_OK


def _write(run, write, title: str) -> None:
    """Write the doctor's files into the run directory `run` (claimed) and draw its report there."""
    from ..run.execute import draw_report

    with run.lock("striate doctor"):
        write(run)
        draw_report(run, title=title)
    print(f"report: {run.report_file}")


def _init_experiment(args, cfg, out) -> int:
    from ..diagnose.init_experiment import format_init_experiment, init_experiment
    from ..diagnose.verdict import jsonable

    cases = init_experiment(seed=cfg["seed"])
    if args.json:
        print(json.dumps([c.to_dict() for c in cases]))
    else:
        print(format_init_experiment(cases))
    if out is not None:
        verdicts = [dict(v.to_dict(), check=f"{c.name}: {v.check}") for c in cases for v in c.verdicts]
        doc = jsonable({"init_experiment": [c.to_dict() for c in cases], "verdicts": verdicts})
        _write(out, lambda run: run.write_json(run.DIAGNOSTICS, doc), "striate doctor: the initialisation "
               "experiment")
    return EXIT_OK


DOCTOR_BYTES = 1 << 30  # float32 bytes of the images the doctor holds, per split: all of CIFAR-10, ~1,700 photos


def _within(x, y):
    """(x, y) (x: data.Rows, None for no split), evenly thinned to DOCTOR_BYTES of float32 images: the doctor
    trains on arrays, so a split of large images is sampled, never converted whole."""
    if x is None:
        return None
    most = max(2, DOCTOR_BYTES // (4 * max(1, math.prod(x.shape[1:]))))
    if len(x) <= most:
        return x, y
    idx = np.linspace(0, len(x) - 1, most).astype(np.int64)
    return x.take(idx), y[idx]
