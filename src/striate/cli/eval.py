"""`striate eval`: evaluate trained runs on a split of their data: accuracy, loss, per-class accuracy and
the confusion matrix; several runs with --ensemble average their probabilities. --top-losses K lists the K
misclassified images with the highest loss, and a few images of each most-confused class pair, by their files
(or the dataset and position), so that a mislabelled photo can be found.

    striate eval runs/x                         # the test split, best checkpoint
    striate eval runs/x --split val             # the run's own held-out images
    striate eval runs/x --split all             # train (without the held-out images), val and test (those it has)
    striate eval runs/x --top-losses 10         # and the 10 worst mistakes, each with its file
    striate eval runs/a runs/b --ensemble --tta flip
"""

from __future__ import annotations

import json
import sys

import numpy as np

HELP = "evaluate trained runs: accuracy, per-class accuracy, confusion matrix (--ensemble averages several)"


def add_arguments(parser) -> None:
    from ..run.data import SPLITS

    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directory (several with --ensemble)")
    parser.add_argument("--ensemble", action="store_true",
                        help="average the predicted probabilities of the runs; report each member and the ensemble "
                             "(default: off; needed for several runs)")
    parser.add_argument("--data", help="dataset name or path: the run's own data at its new place if it moved, "
                        "else another dataset (default: the run's own)")
    parser.add_argument("--split", default="test", choices=(*SPLITS, "all"),
                        help="train (without the held-out images), val (the held-out images), test, or all of "
                             "them the data has and their total (default: test)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint "
                        "(default: best)")
    parser.add_argument("--weights", default="trained", choices=("trained", "averaged", "snapshots"),
                        help="the trained weights, those averaged while training (a run with --ema-decay or "
                             "--polyak), or the snapshot ensemble (a run with --snapshots K) (default: trained)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (default: a table)")
    parser.add_argument("--top-losses", type=_count, default=0, metavar="K",
                        help="also list the K misclassified images with the highest loss and a few images of each "
                             "most-confused class pair, each by its file (or dataset and position) (default: 0)")
    parser.add_argument("--tta", default=None, metavar="{none,flip,flip-translate[:P],dropout:N}",
                        help="test-time augmentation: flip averages the image and its mirror, flip-translate[:P] the "
                             "weighted logits of those and of both shifted by P pixels (default 1), dropout:N the "
                             "probabilities of N passes with dropout active (default: the run's)")


def _count(text: str) -> int:
    import argparse

    try:
        k = int(text)
    except ValueError:
        k = -1
    if k < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of images, 0 or more")
    return k


def run(args) -> int:
    from ..run import RunDir, config

    if len(args.runs) > 1 and not args.ensemble:
        raise config.ConfigError(f"{len(args.runs)} runs given: add --ensemble to average them, or give one run")
    if args.data:
        config.check_data(args.data, f"--data {args.data!r}")
    if args.weights == "snapshots" and args.ensemble:
        raise config.ConfigError("--weights snapshots evaluates one run's snapshot ensemble: not with --ensemble")
    runs = [RunDir(r).require().load_model(args.checkpoint, averaged=args.weights == "averaged") for r in args.runs]
    tta = args.tta or runs[0].config.get("tta", "none")
    if args.tta:
        config.resolve({"tta": args.tta}, where="command line", base={})  # checked: one message for a bad mode
    if args.split == "all":
        results = _every_split(args, runs, tta)
        results["all"] = _total(results.values())
    else:
        results = {args.split: _evaluate(args, runs, args.split, tta)}
    if args.json:
        print(json.dumps(results[args.split] if args.split != "all" else results))
        return 0
    _print(args, runs, results, tta)
    return 0


def _every_split(args, runs, tta) -> dict:
    """`--split all`: each split the data has; one it lacks (no test split, no held-out images) is left out
    with a note on stderr."""
    from ..console import note
    from ..data.datasets import MissingSplit
    from ..run.data import NoHeldOut

    results = {}
    for split in ("train", "val", "test"):
        try:
            results[split] = _evaluate(args, runs, split, tta)
        except (MissingSplit, NoHeldOut):
            lacks = "held-out (val) images" if split == "val" else f"{split} split"
            note(f"note: {args.data or runs[0].config['data']} has no {lacks}: --split all leaves it out")
    return results


def _arrays(args, trained, split):
    from ..run import config
    from ..run.data import split_arrays

    images, labels, classes, sources = split_arrays(trained.config, split, args.data)
    if tuple(images.shape[1:]) != tuple(trained.input_shape):
        raise config.ConfigError(f"dataset {args.data or trained.config['data']!r} has images "
                                 f"{tuple(images.shape[1:])}, the model was trained on {trained.input_shape}")
    if len(classes) != len(trained.classes):
        raise config.ConfigError(f"dataset {args.data!r} has {len(classes)} classes, the run predicts "
                                 f"{len(trained.classes)}")
    return images, labels, sources


def _evaluate(args, runs, split, tta) -> dict:
    from ..models.ensemble import scores
    from ..run import evaluate
    from ..run.evaluation import confused_examples, evaluate_ensemble, most_confused, top_losses
    from ..train import inference
    from ..train.metrics import confusion_matrix

    images, labels, sources = _arrays(args, runs[0], split)
    classes = runs[0].classes
    k = getattr(args, "top_losses", 0)
    if not args.ensemble:
        t = runs[0]
        loss = _loss(t, tta)
        if args.weights == "snapshots":
            snapshots = _snapshots(args.runs[0], t.model)
            r = evaluate_ensemble(snapshots.models, t.preprocess.lazy(images), labels, classes, tta,
                                  sources=sources if k else None)
            r["snapshots"] = len(snapshots)
        else:
            r = evaluate(t.model, t.preprocess.lazy(images), labels, classes, tta, loss, sources=sources if k else None)
        s = r.pop("scores")
        if k:
            r["top_losses"] = top_losses(s, labels, classes, k, sources)
        return {**r, "split": split, "checkpoint": t.checkpoint.generation, "weights": _weights(args, t, r)}
    probs = []
    for path, t in zip(args.runs, runs, strict=True):
        if tuple(t.input_shape) != tuple(runs[0].input_shape) or len(t.classes) != len(classes):
            from ..run import config

            raise config.ConfigError(f"run {path!r} ({t.input_shape}, {len(t.classes)} classes) does not match "
                                     f"run {args.runs[0]!r} ({runs[0].input_shape}, {len(classes)} classes)")
        probs.append(inference.probabilities(t.model, t.preprocess.lazy(images), tta=tta))
    members = [dict(scores(p, labels), run=str(r)) for p, r in zip(probs, args.runs, strict=True)]
    ensemble = scores(np.mean(probs, axis=0), labels)
    if k:  # the ensemble's own mistakes, from its averaged probabilities
        logp = np.log(np.maximum(np.mean(probs, axis=0), np.finfo(np.float64).tiny))
        cm = confusion_matrix(logp.argmax(axis=1), labels, len(classes))
        ensemble["top_losses"] = top_losses(logp, labels, classes, k, sources)
        ensemble["most_confused"] = confused_examples(most_confused(cm, classes), logp, labels, classes, sources)
    return {"ensemble": ensemble, "members": members, "split": split}


def _snapshots(run: str, model):
    """The run's snapshot ensemble (its snapshots/ files, one member each)."""
    from ..models.ensemble import snapshot_ensemble
    from ..run import RunDir, config

    files = sorted(RunDir(run).snapshots_dir.glob("snapshot-*.safetensors"))
    if not files:
        raise config.ConfigError(f"run '{run}' keeps no snapshots (train with --snapshots K)")
    return snapshot_ensemble(model, files)


def _weights(args, t, r) -> str:
    """The weights evaluated, as the header names them."""
    if args.weights == "snapshots":
        return f"snapshot ensemble of {r['snapshots']} snapshots"
    at = f"{args.checkpoint} checkpoint, {t.checkpoint.generation}"
    if args.weights == "averaged":
        kind = f"EMA {t.config['ema_decay']:g}" if t.config.get("ema_decay") else "Polyak"
        return f"averaged weights ({kind}) of the {at}"
    return f"trained weights of the {at}"


def _loss(trained, tta: str):
    """The run's own loss (the mean loss eval reports is the one it trained with: hinge loss for an svm run)."""
    from ..nn.losses import named
    from ..run import config

    kind = trained.config.get("loss", "softmax")
    if kind == "svm" and tta != "none":
        raise config.ConfigError(f"--tta {tta}: test-time augmentation averages softmax probabilities, and this run's "
                                 "svm scores are not probabilities")
    return named(kind)


def _total(results) -> dict:
    results = [r.get("ensemble", r) for r in results]
    n = sum(r["count"] for r in results)
    return {"accuracy": sum(r["accuracy"] * r["count"] for r in results) / n,
            "loss": sum(r["loss"] * r["count"] for r in results) / n, "count": n, "split": "all"}


def _print(args, runs, results, tta) -> None:
    from ..train.metrics import format_confusion

    extra = "" if tta == "none" else f", test-time augmentation {tta}"
    data = args.data or runs[0].config["data"]
    for split, r in results.items():
        if split == "all":
            print(f"all splits: accuracy {100 * r['accuracy']:.2f}%   loss {r['loss']:.4f}   ({r['count']} images)")
            continue
        if args.ensemble:
            print(f"{data} [{split}], {r['ensemble']['count']} images{extra}")
            for m in r["members"]:
                print(f"  {m['run']}: accuracy {100 * m['accuracy']:.2f}%   loss {m['loss']:.4f}")
            e = r["ensemble"]
            print(f"ensemble of {len(runs)}: accuracy {100 * e['accuracy']:.2f}%   loss {e['loss']:.4f}")
            _print_mistakes(e)
            continue
        print(f"{args.runs[0]} ({r['weights']}) on {data} [{split}], {r['count']} images{extra}")
        print(f"accuracy {100 * r['accuracy']:.2f}%   loss {r['loss']:.4f}\n")
        print(format_confusion(np.array(r["confusion_matrix"]), runs[0].classes))
        _print_mistakes(r)
        if len(results) > 1:
            print()
    sys.stdout.flush()


def _print_mistakes(r: dict) -> None:
    """The top losses and the most-confused pairs' example images of a result, when --top-losses asked."""
    if "top_losses" not in r:
        return
    worst = r["top_losses"]
    print(f"\ntop {len(worst)} losses (misclassified, highest loss first):" if worst else "\nno image misclassified")
    for rank, it in enumerate(worst, 1):
        print(f"{rank:>4}. loss {it['loss']:.3f}  true {it['true']}, predicted {it['predicted']} "
              f"(p {100 * it['probability']:.1f} %)  {it['source']}")
    pairs = [p for p in r.get("most_confused", []) if p.get("examples")]
    if pairs:
        print("\nmost confused (true → predicted: images, the worst few):")
    for p in pairs:
        print(f"  {p['true']} → {p['predicted']}: {p['count']}  e.g. {', '.join(p['examples'])}")
