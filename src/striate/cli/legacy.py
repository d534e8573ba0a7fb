"""The `striate` command line (also `python -m striate`).

    striate train                                   # digits net on the embedded digits, a few seconds
    striate train --data cifar10 --model reference --optimizer momentum --lr 0.05 --schedule cosine \\
                  --warmup 1 --epochs 20 --batch-size 128 --augment crop,flip --preprocess per-channel-mean
    striate train --config run.toml                 # the same keys in TOML; flags given too override it
    striate train --resume runs/x [--epochs 30]     # continue exactly where the last checkpoint left off
                                                    # (--lr, --patience, --explode-factor may change too)
    striate eval runs/x [--data mnist --split test] # accuracy, per-class accuracy, confusion matrix
    striate predict runs/x a.png b.jpg [--top-k 3]  # top-k classes with probabilities

Exit status (one table for every command, `EXIT_TABLE`; every failure prints one `striate <command>: error: …`
line): 0 done, 1 the command could not complete on its inputs, 2 usage or configuration, 3 training
diverged, 130/143 interrupted by Ctrl-C/SIGTERM after saving. Heavy modules are imported inside the
commands, so `import striate` stays light.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys

EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED = 1, 2, 3


def _train_parser(sub) -> None:
    from .train import config as cfg

    p = sub.add_parser("train", help="train a model; writes a run directory",
                       description="Train a model. Keys may also come from --config FILE.toml; flags win.")
    p.add_argument("--config", metavar="FILE", help="TOML file with the keys below (dashes or underscores)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its last checkpoint")
    for key in cfg.KEYS:
        flag = "--" + key.name.replace("_", "-")
        meta = key.name.upper() if key.choices is None else "{" + ",".join(key.choices) + "}"
        # type=str: conversion and checks happen in config.resolve, which quotes bad values
        default = "" if key.default in ("", []) else f" (default: {key.default!r})"
        p.add_argument(flag, dest=key.name, default=None, metavar=meta, help=key.help + default)


def build_parser() -> argparse.ArgumentParser:
    from .train import config as cfg

    parser = Parser(prog="striate", description="Convolutional networks in plain NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _train_parser(sub)

    e = sub.add_parser("eval", help="evaluate trained runs: accuracy, per-class accuracy, confusion matrix; "
                                    "several runs with --ensemble average their probabilities")
    e.add_argument("runs", nargs="+", metavar="run", help="run directory (several with --ensemble)")
    e.add_argument("--ensemble", action="store_true",
                   help="average the predicted probabilities of the runs; report each member and the ensemble")
    e.add_argument("--data", help="dataset name or path (default: the run's dataset)")
    e.add_argument("--split", default="test", help="split to evaluate (default: test)")
    e.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint (default: best)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--tta", choices=cfg.TTA, default=None,
                   help="test-time augmentation: flip averages the image and its mirror (default: the run's)")

    r = sub.add_parser("predict", help="classify image files with a trained run")
    r.add_argument("run", help="run directory")
    r.add_argument("images", nargs="+", help="image files (anything Pillow reads)")
    r.add_argument("--top-k", type=int, default=3, help="classes to show per image (default: 3)")
    r.add_argument("--checkpoint", default="best", choices=("best", "last"))
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument("--dense", action="store_true",
                   help="slide the fully convolutional form of the net over the whole image and average "
                        "the score map (images at least the training size)")

    for name, (helptext, module, adder, _) in SUBSYSTEM_COMMANDS.items():
        getattr(importlib.import_module(module, __package__), adder)(sub.add_parser(name, help=helptext))
    parser.commands = sub.choices
    return parser


# commands implemented beside their subsystem: name → (help, module, add-arguments function, run function)
SUBSYSTEM_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "summary": ("per-layer output shape, parameters, MACs, activation memory and training memory",
                ".models.command", "add_summary_arguments", "run_summary"),
    "finetune": ("fine-tune a trained run or pretrained weights on new data (optionally with frozen layers)",
                 ".models.command", "add_finetune_arguments", "run_finetune"),
    "doctor": ("run the babysitting checklist on a model and data: a verdict, the number and advice per check",
               ".diagnose.command", "add_doctor_arguments", "run_doctor"),
    "report": ("write report.html for a run directory, or overlay the curves of several runs",
               ".report.command", "add_report_arguments", "run_report"),
    "search": ("hyperparameter search: random/grid, coarse-to-fine stages, early abort, many workers (Optuna)",
               ".search.command", "add_search_arguments", "run_search"),
}


# ----- train --------------------------------------------------------------------------------
def _flag_values(args) -> dict:
    from .train import config as cfg

    return {k.name: getattr(args, k.name) for k in cfg.KEYS if getattr(args, k.name) is not None}


def cmd_train(args) -> int:
    import contextlib

    with contextlib.ExitStack() as held:  # the run directory's lock, for as long as the command runs
        return _train(args, held)


def _lock(directory, held) -> None:
    from .train import config as cfg
    from .train.lock import RunLock, RunLocked

    try:
        held.enter_context(RunLock(directory).acquire("striate train"))
    except RunLocked as e:
        raise cfg.ConfigError(str(e)) from None


def _train(args, held) -> int:
    from .train import config as cfg
    from .train import experiment as ex
    from .train.checkpoint import CheckpointError, CheckpointStore

    flags = _flag_values(args)
    if args.resume:
        if args.config:
            raise cfg.ConfigError("--resume takes the configuration from the run; do not pass --config")
        changed = sorted(set(flags) - set(cfg.RESUMABLE))
        if changed:
            allowed = ", ".join("--" + k.replace("_", "-") for k in cfg.RESUMABLE)
            raise cfg.ConfigError(f"--resume continues the saved configuration; only {allowed} may change, "
                                  f"got --{changed[0].replace('_', '-')}")
        config = ex.read_config(args.resume)
        config = cfg.resolve(flags, where="command line", base=config)
        directory = ex.Path(args.resume)
        _lock(directory, held)
        store = CheckpointStore(directory / "checkpoints")
        if not store.has("last"):
            raise cfg.ConfigError(f"run {args.resume!r} has no checkpoint to resume from")
        checkpoint = store.load("last")
        meta = checkpoint.state.get("meta")
        if not isinstance(meta, dict) or "preprocess" not in meta:
            raise CheckpointError(f"checkpoint {checkpoint.path} lacks 'meta' (the model and its fitted "
                                  "preprocessing): it was not written by striate train and cannot be resumed")
        run = ex.build(config, directory, fitted=meta["preprocess"])
        run.trainer.restore(checkpoint)  # a refused checkpoint stops here, before anything is written
        ex.write_config(directory, config)
        print(f"resuming {directory} from its last checkpoint", file=sys.stderr)
    else:
        base = cfg.resolve(cfg.load_toml(args.config), where=args.config) if args.config else cfg.defaults()
        config = cfg.resolve(flags, where="command line", base=base)
        directory = ex.new_run_dir(config["out"])
        config["out"] = str(directory)
        _lock(directory, held)
        store = CheckpointStore(directory / "checkpoints")
        if store.has("last"):
            raise cfg.ConfigError(f"{str(directory)!r} already holds a run; resume it with --resume {directory} "
                                  "or choose another --out")
        run = ex.build(config, directory)
        config["model"] = run.meta["model"]["name"]
        ex.write_config(directory, config)
        d = run.data
        print(f"run {directory}: {run.model.describe()} '{config['model']}' ({run.model.num_parameters():,} "
              f"parameters) on {config['data']} {d.shape}: {len(d.train_x)} train, "
              f"{0 if d.val_x is None else len(d.val_x)} val", file=sys.stderr)
    summary = ex.execute(run)
    _print_summary(summary, directory)
    if summary["status"] == "diverged":
        return EXIT_DIVERGED
    if summary["status"] == "interrupted":
        print(f"checkpoint saved; continue with: striate train --resume {directory}", file=sys.stderr)
        return 128 + int(run.trainer.interrupted)
    return 0


def _print_summary(s: dict, directory) -> None:
    lines = [f"{s['status']}: {s['epochs_completed']} epochs, {s['iterations']} iterations in {s['seconds']:.1f}s"]
    if s.get("stop_reason") and s["status"] != "interrupted":
        lines.append(s["stop_reason"])
    if s.get("best_val_accuracy") is not None:
        lines.append(f"best val accuracy {100 * s['best_val_accuracy']:.2f}% (epoch {s['best_epoch']})")
    elif s.get("best_train_accuracy") is not None:
        lines.append(f"best training accuracy {100 * s['best_train_accuracy']:.2f}% (epoch {s['best_epoch']}; "
                     "no validation split)")
    if "test" in s:
        lines.append(f"test accuracy {100 * s['test']['accuracy']:.2f}% on {s['test']['count']} images "
                     f"({s['test']['checkpoint']} checkpoint)")
    lines.append(f"run directory: {directory}")
    print("\n".join(lines))


# ----- eval ---------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    import numpy as np

    from .data import load
    from .nn.losses import SoftmaxCrossEntropy
    from .train import config as cfg
    from .train import experiment as ex
    from .train.config import ConfigError
    from .train.metrics import confusion_matrix, format_confusion, per_class_accuracy
    from .train.trainer import Trainer

    if args.ensemble or len(args.runs) > 1:
        from .models.command import run_eval_ensemble

        if not args.ensemble:
            raise ConfigError(f"{len(args.runs)} runs given: add --ensemble to average them, or give one run")
        return run_eval_ensemble(args)
    args.run = args.runs[0]
    if args.data:
        cfg.check_data(args.data, f"--data {args.data!r}")
    t = ex.load_trained(args.run, args.checkpoint)
    ds = load(args.data or t.config["data"], args.split)
    if tuple(ds.shape) != t.input_shape:
        raise ConfigError(f"dataset {args.data or t.config['data']!r} has images {tuple(ds.shape)}, "
                         f"the model was trained on {t.input_shape}")
    if ds.classes != t.classes:
        print(f"warning: class names differ from the run's ({ds.classes[:3]}… vs {t.classes[:3]}…)", file=sys.stderr)
    trainer = Trainer(t.model, SoftmaxCrossEntropy(), optimizer=None, tta=args.tta or t.config.get("tta", "none"))
    r = trainer.evaluate((ex.apply_preprocess(t.preprocess, ds.images), ds.labels), return_predictions=True)
    cm = confusion_matrix(r["predictions"], r["labels"], len(t.classes))
    pca = per_class_accuracy(cm)
    if args.json:
        print(json.dumps({"loss": r["loss"], "accuracy": r["accuracy"], "count": r["count"],
                          "checkpoint": t.checkpoint.generation, "classes": t.classes,
                          "per_class_accuracy": [None if np.isnan(a) else float(a) for a in pca],
                          "confusion_matrix": cm.tolist()}))
        return 0
    tta = "" if trainer.tta == "none" else f", test-time augmentation {trainer.tta}"
    print(f"{args.run} ({args.checkpoint} checkpoint, {t.checkpoint.generation}) on {ds.name or args.data} "
          f"[{args.split}], {r['count']} images{tta}")
    print(f"accuracy {100 * r['accuracy']:.2f}%   loss {r['loss']:.4f}\n")
    print(format_confusion(cm, t.classes))
    return 0


# ----- predict ------------------------------------------------------------------------------
def read_image(path: str, shape: tuple[int, int, int]):
    """An image file as uint8 (H, W, C) of the model's input shape (converted and resized as needed);
    sizes are read from the header first, so a decompression bomb is refused before it is decoded."""
    from .data import read_image as read

    h, w, c = shape
    return read(path, size=(h, w), mode="L" if c == 1 else "RGB")


def cmd_predict(args) -> int:
    import numpy as np

    from .nn.losses import softmax
    from .nn.module import no_grad
    from .train import experiment as ex
    from .train.config import ConfigError
    from .train.metrics import top_k

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be ≥ 1, got {args.top_k}")
    if args.dense:
        from .models.command import run_predict_dense

        return run_predict_dense(args)
    t = ex.load_trained(args.run, args.checkpoint)
    batch = np.stack([read_image(p, t.input_shape) for p in args.images])
    with no_grad():
        probs = softmax(t.model.forward(ex.apply_preprocess(t.preprocess, batch)).astype(np.float64))
    idx, val = top_k(probs, args.top_k)
    results = [{"image": p, "top": [{"class": t.classes[int(i)], "index": int(i), "probability": float(v)}
                                    for i, v in zip(idx[n], val[n], strict=True)]}
               for n, p in enumerate(args.images)]
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        ranked = ", ".join(f"{c['class']} ({100 * c['probability']:.1f}%)" for c in r["top"])
        print(f"{r['image']}: {ranked}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with one error line, `striate <command>: error: …`, and the exit-status table in every help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # `--epoch 1` is a typo, not `--epochs 1`
        kwargs["epilog"] = (kwargs.get("epilog") or "").rstrip() + ("\n\n" if kwargs.get("epilog") else "") + EXIT_TABLE
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


EXIT_TABLE = """exit status:
  0        done
  1        the command could not complete on its inputs: an unreadable, corrupt or tampered file, a failed
           download, a dead worker, a full disk; for doctor: a check failed
  2        usage or configuration: unknown or mistyped flags and run-file keys, bad values, a --data path
           that does not exist, an unknown dataset or model name, options that contradict each other
  3        training diverged
  130/143  interrupted by Ctrl-C / SIGTERM, after saving"""


def exit_status(error: BaseException) -> tuple[int, str | None]:
    """The exit status of the table above for an exception a command raised, and the one line that
    explains it (None: say nothing). Every command's failures go through here."""
    from .train.checkpoint import CheckpointError
    from .train.config import ConfigError

    if isinstance(error, ConfigError):
        return EXIT_USAGE, str(error)
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, BrokenPipeError):  # the reader went away (`| head`): nothing more to say
        return 0, None
    if isinstance(error, MemoryError):
        return EXIT_ERROR, "out of memory (try a smaller --batch-size or a smaller model)"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = f": {error.filename}" if error.filename else ""
        return EXIT_ERROR, f"no space left on the device{where} (nothing was lost: writes are atomic)"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return EXIT_ERROR, f"{error.strerror}: {error.filename}"
    if isinstance(error, CheckpointError | OSError | ValueError):  # DataError and LayerError are ValueErrors
        return EXIT_ERROR, str(error)
    if os.environ.get("STRIATE_TRACEBACK"):
        raise error
    return EXIT_ERROR, (f"internal error {type(error).__name__}: {error} (a bug in striate; run again with "
                        "STRIATE_TRACEBACK=1 to see where)")


def _one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, so the line names the command
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in SUBSYSTEM_COMMANDS:
        _, module, _, runner = SUBSYSTEM_COMMANDS[args.command]
        command = getattr(importlib.import_module(module, __package__), runner)
    else:
        command = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict}[args.command]
    try:
        return command(args)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the one place every failure is reported
        status, message = exit_status(e)
        if isinstance(e, BrokenPipeError):
            _silence_stdout()
        elif message is not None:
            print(f"striate {args.command}: error: {_one_line(message)}", file=sys.stderr)
        return status


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
