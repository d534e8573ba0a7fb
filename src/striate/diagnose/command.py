"""`striate doctor`: run the training doctor on a dataset and model from the registry (the embedded
digits and digits_net by default, with `striate train`'s defaults), print the verdicts, and with
`--out DIR` write diagnostics.json, metrics.jsonl and report.html there. `--init-experiment` runs the
notes' initialisation experiment instead.

Exit status: 0 when no check FAILs, 1 when at least one does; failures raise and `striate.cli` reports them
by its exit-status table."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_FAIL = 0, 1


def add_doctor_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..train.config import OPTIMIZERS, PREPROCESS

    parser.description = ("Run the babysitting checks (gradient check, initial loss, regularisation, overfit a "
                          "tiny subset, learning-rate range test, activation/gradient statistics, update ratio, "
                          "learning curves) and print a verdict per check.")
    parser.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    parser.add_argument("--model", default="", help="model name (default: digits_net for digits, else three_layer)")
    parser.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="optimizer (default: adam)")
    parser.add_argument("--lr", type=float, default=1e-3, help="the learning rate to judge (default: 1e-3)")
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum for sgd/momentum/nesterov")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="the optimizer's weight decay")
    parser.add_argument("--batch-size", type=int, default=64, help="minibatch size (default: 64)")
    parser.add_argument("--preprocess", default="per-channel-mean", choices=PREPROCESS,
                        help="preprocessing after scaling to [0, 1] (default: per-channel-mean)")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training images (0: all)")
    parser.add_argument("--iterations", type=int, default=300, help="length of the short training run (300)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, the model and the checks")
    parser.add_argument("--init-experiment", action="store_true",
                        help="run the notes' initialisation experiment (10-layer 500-unit tanh/ReLU net) instead")
    parser.add_argument("--out", metavar="DIR", help="write diagnostics.json, metrics.jsonl and report.html here")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    return parser


def _init_experiment(args, out) -> int:
    from .init_experiment import format_init_experiment, init_experiment

    cases = init_experiment(seed=args.seed)
    if args.json:
        print(json.dumps([c.to_dict() for c in cases]), file=out)
    else:
        print(format_init_experiment(cases), file=out)
    if args.out:
        from pathlib import Path

        from ..report.html import write_report
        from .verdict import jsonable

        d = Path(args.out)
        d.mkdir(parents=True, exist_ok=True)
        verdicts = [dict(v.to_dict(), check=f"{c.name}: {v.check}") for c in cases for v in c.verdicts]
        (d / "diagnostics.json").write_text(json.dumps(jsonable(
            {"init_experiment": [c.to_dict() for c in cases], "verdicts": verdicts})) + "\n")
        path = write_report(d, title="striate doctor: the initialisation experiment", use_checkpoint=False)
        print(f"report: {path}", file=out)
    return EXIT_OK


def run_doctor(args, out=None) -> int:
    """Run `striate doctor` with parsed `args`; prints to `out` (default stdout)."""
    from ..train.config import ConfigError, check_data

    out = out if out is not None else sys.stdout
    if args.iterations < 1 or args.batch_size < 1 or args.lr <= 0:
        raise ConfigError(f"--iterations, --batch-size and --lr must be positive, got {args.iterations}, "
                          f"{args.batch_size}, {args.lr:g}")
    if args.init_experiment:
        return _init_experiment(args, out)
    check_data(args.data, f"--data {args.data!r}")
    import numpy as np

    from ..models import get as get_model
    from ..train import experiment as ex
    from .doctor import doctor

    config = {"data": args.data, "seed": args.seed, "limit": args.limit, "val_fraction": 0.1,
              "optimizer": args.optimizer, "lr": args.lr, "momentum": args.momentum,
              "weight_decay": args.weight_decay}
    data = ex.load_data(config)
    steps = ex.fit_preprocess(ex.make_preprocess(args.preprocess), data.train_x)
    x = ex.apply_preprocess(steps, data.train_x)
    val = (ex.apply_preprocess(steps, data.val_x), data.val_y) if data.val_x is not None else None
    h, w, c = data.shape
    name = args.model or ex.default_model(args.data)
    try:
        model = get_model(name, len(data.classes), c, rng=np.random.default_rng([args.seed, 2]), image_size=(h, w))
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None

    def make_opt(m, lr):
        return ex.make_optimizer(dict(config, lr=lr), m)

    make_opt.__name__ = args.optimizer
    log = None if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    report = doctor(model, data=(x, data.train_y), val=val, optimizer=make_opt, lr=args.lr,
                    batch_size=args.batch_size, iterations=args.iterations, num_classes=len(data.classes),
                    seed=args.seed, log=log)
    report.diagnostics["settings"].update(optimizer=args.optimizer, data=args.data, model=name)
    if report.diagnostics.get("confusion") is not None:
        report.diagnostics["confusion"]["classes"] = data.classes
    if args.json:
        print(json.dumps([{k: v[k] for k in ("check", "status", "value", "expected", "advice", "cause")}
                          for v in report.to_dict()["verdicts"]]), file=out)
    else:
        print(report, file=out)
    if args.out:
        path = report.write(args.out)
        print(f"report: {path}", file=out)
    return EXIT_FAIL if report.status == "FAIL" else EXIT_OK
