"""Command-line pieces for the model zoo, to be wired into `striate.cli`:

    striate summary MODEL [--input 224x224x3] [--batch-size 64] [--optimizer momentum] [--json]
    striate eval RUN_A RUN_B ... --ensemble [--data ...] [--split test] [--json]
    striate finetune --from RUN_OR_WEIGHTS [--model NAME] [--torch-arch vgg16] --freeze 3 --data ... [--num-classes K]
    striate predict RUN image.jpg --dense [--top-k 3] [--json]

Each command is `add_<name>_arguments(parser)` + `run_<name>(args) -> int` (exit status 0 on success; the
caller maps exceptions to its exit statuses as for the other commands).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import numpy as np

from ..train.checkpoint import CheckpointError
from ..train.config import ConfigError

# the zoo's constructors by name: module, function (the registry in `striate.models` should list the same)
ZOO: dict[str, tuple[str, str]] = {
    "lenet5": ("lenet", "lenet5"), "lenet5_cifar": ("lenet", "lenet5_cifar"),
    "alexnet": ("alexnet", "alexnet"), "alexnet_cifar": ("alexnet", "alexnet_cifar"),
    **{f"vgg{d}{s}": ("vgg", f"vgg{d}{s}") for d in (11, 13, 16, 19) for s in ("", "_bn", "_cifar")},
    "googlenet": ("googlenet", "googlenet"), "googlenet_cifar": ("googlenet", "googlenet_cifar"),
}


def zoo_builder(name: str):
    """The constructor registered under `name` in ZOO (ValueError naming the choices otherwise)."""
    import importlib

    if name not in ZOO:
        raise ConfigError(f"unknown zoo model {name!r}; choose from {sorted(ZOO)}")
    module, function = ZOO[name]
    return getattr(importlib.import_module(f"striate.models.{module}"), function)


def native_input(name: str) -> tuple[int, int, int] | None:
    """A zoo model's default input (H, W, C) from its constructor's defaults."""
    if name not in ZOO:
        return None
    params = inspect.signature(zoo_builder(name)).parameters
    size, channels = params["image_size"].default, params["in_channels"].default
    h, w = (size, size) if isinstance(size, int) else size
    return (int(h), int(w), int(channels))


def build_model(name: str, input_shape, num_classes: int | None = None, rng=None, **kw):
    """A model by name — the zoo's, or any other in the `striate.models` registry — for `input_shape`.
    `num_classes` defaults to the zoo constructor's (10 for other registry models)."""
    from . import get, names

    rng = rng if rng is not None else np.random.default_rng(0)
    h, w, c = input_shape
    if name in ZOO:  # the constructor's own default number of classes (1000 for the ImageNet models)
        if num_classes is not None:
            kw["num_classes"] = int(num_classes)
        return zoo_builder(name)(in_channels=c, image_size=(h, w), rng=rng, **kw)
    if name in names():
        return get(name, 10 if num_classes is None else num_classes, c, rng=rng, image_size=(h, w), **kw)
    return zoo_builder(name)  # raises, naming the choices


# ----- summary --------------------------------------------------------------------------------
def add_summary_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..complexity import OPTIMIZER_SLOTS

    parser.description = ("Per-layer output shape, parameters, multiply-accumulates and activation memory of a "
                          "model, with totals and the memory of one training step.")
    parser.add_argument("model", help="model name (e.g. vgg16, googlenet, alexnet_cifar) or a run directory")
    parser.add_argument("--input", metavar="HxWxC", help="input size, e.g. 224x224x3 (default: the model's own)")
    parser.add_argument("--num-classes", type=int, help="number of classes (default: the constructor's)")
    parser.add_argument("--width", type=float, help="width multiplier for zoo models")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size for the training-memory line (1)")
    parser.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZER_SLOTS),
                        help="optimizer whose state counts in the training memory (default: sgd)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser


def run_summary(args, out=None) -> int:
    from ..complexity import complexity, parse_input_shape

    out = out or sys.stdout
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    try:
        if Path(args.model).is_dir():
            from ..train.experiment import load_trained

            trained = load_trained(args.model, "last")
            model, shape = trained.model, tuple(trained.input_shape)
            if args.input:
                shape = parse_input_shape(args.input)
        else:
            from . import names

            if args.model not in names():
                raise ConfigError(f"unknown model {args.model!r} (and no such run directory); choose from "
                                  f"{', '.join(names())}")
            shape = parse_input_shape(args.input) if args.input else native_input(args.model)
            if shape is None:
                raise ConfigError(f"model {args.model!r}: give --input HxWxC")
            kw = {} if args.width is None else {"width": args.width}
            model = build_model(args.model, shape, args.num_classes, **kw)
    except (TypeError, ValueError) as e:  # a bad --input, --width or model name: the command line's fault
        if isinstance(e, ConfigError | CheckpointError):
            raise
        raise ConfigError(str(e)) from None
    table = complexity(model, shape, batch_size=1)
    memory = table.training_memory(args.batch_size, args.optimizer)
    if args.json:
        print(json.dumps({
            "model": args.model, "input": list(shape), "params": table.total_params, "macs": table.total_macs,
            "activation_bytes": table.activation_bytes,
            "rows": [{"name": r.name, "layer": r.layer, "output_shape": list(r.output_shape[1:]), "params": r.params,
                      "macs": r.macs, "activation_bytes": r.activation_bytes} for r in table.rows],
            "training_memory": {"batch_size": memory.batch_size, "optimizer": memory.optimizer,
                                "activations": memory.activations, "parameters": memory.parameters,
                                "gradients": memory.gradients, "optimizer_state": memory.optimizer_state,
                                "total": memory.total}}), file=out)
        return 0
    print(f"{args.model} on {shape[0]}x{shape[1]}x{shape[2]}", file=out)
    print(table, file=out)
    print(memory, file=out)
    return 0


# ----- eval --ensemble ------------------------------------------------------------------------
def add_eval_ensemble_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--ensemble", action="store_true",
                        help="average the predicted probabilities of the runs and report the ensemble's accuracy")
    parser.add_argument("--data", help="dataset name or path (default: the first run's dataset)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"),
                        help="which checkpoint (default: best)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run_eval_ensemble(args, out=None) -> int:
    """Each run applies its own saved preprocessing; their probabilities are averaged."""
    from ..data import load
    from ..train import experiment as ex
    from .ensemble import _scores, predict_proba

    out = out or sys.stdout
    runs = [ex.load_trained(r, args.checkpoint) for r in args.runs]
    data = args.data or runs[0].config["data"]
    ds = load(data, args.split)
    for path, t in zip(args.runs, runs, strict=True):
        if tuple(ds.shape) != tuple(t.input_shape):
            raise ConfigError(f"run {path!r} was trained on images {tuple(t.input_shape)}, dataset {data!r} has "
                             f"{tuple(ds.shape)}")
        if len(t.classes) != len(runs[0].classes):
            raise ConfigError(f"run {path!r} predicts {len(t.classes)} classes, run {args.runs[0]!r} "
                             f"{len(runs[0].classes)}")
    probs = [predict_proba(t.model, ex.apply_preprocess(t.preprocess, ds.images)) for t in runs]
    members = [dict(_scores(p, ds.labels), run=str(r)) for p, r in zip(probs, args.runs, strict=True)]
    result = {"ensemble": _scores(np.mean(probs, axis=0), ds.labels) if args.ensemble or len(runs) > 1 else None,
              "members": members, "data": str(data), "split": args.split}
    if args.json:
        print(json.dumps(result), file=out)
        return 0
    print(f"{data} [{args.split}], {len(ds.labels)} images", file=out)
    for m in members:
        print(f"  {m['run']}: accuracy {100 * m['accuracy']:.2f}%   loss {m['loss']:.4f}", file=out)
    if result["ensemble"] is not None:
        e = result["ensemble"]
        print(f"ensemble of {len(runs)}: accuracy {100 * e['accuracy']:.2f}%   loss {e['loss']:.4f}", file=out)
    return 0


# ----- finetune -------------------------------------------------------------------------------
def add_finetune_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from ..train.config import OPTIMIZERS, PREPROCESS, SCHEDULES

    parser.description = ("Fine-tune a pretrained network on a new dataset: load the weights, give it a fresh head "
                          "for the new classes, freeze the first layers, train the rest; writes a run directory.")
    parser.add_argument("--from", dest="source", required=True,
                        help="a run directory, or a .safetensors weights file (striate, or PyTorch with --torch-arch)")
    parser.add_argument("--model", help="model name when --from is a weights file")
    parser.add_argument("--torch-arch", help="the weights file is a PyTorch state dict of this layout "
                        "(alexnet, vgg11…vgg19, vgg11_bn…, sequential)")
    parser.add_argument("--cast", action="store_true",
                        help="round float64 weights that float32 cannot hold exactly (refused by default)")
    parser.add_argument("--freeze", type=int, default=0, help="freeze the first K layers of the network (default 0)")
    parser.add_argument("--num-classes", type=int, help="check that the new dataset has this many classes")
    parser.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    parser.add_argument("--schedule", default="constant", choices=SCHEDULES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--preprocess", choices=PREPROCESS,
                        help="preprocessing (default: the source run's, fitted on its data; else per-channel-mean)")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training images (0: all)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="run directory (default runs/<timestamp>)")
    return parser


def _source(args):
    """(model build_config or None, weights dict, fitted preprocessing or None, description)."""
    from .transfer import read_weights

    path = Path(args.source)
    if path.is_dir():
        from ..train.checkpoint import CheckpointStore

        store = CheckpointStore(path / "checkpoints")
        tag = "best" if store.has("best") else "last"
        if not store.has(tag):
            raise ConfigError(f"--from {args.source!r}: no checkpoint in that run directory")
        ckpt = store.load(tag)
        meta = ckpt.state["meta"]
        return dict(meta["model"]), dict(ckpt.weights), meta.get("preprocess"), f"{path} ({tag} checkpoint)"
    if not path.is_file():
        raise ConfigError(f"--from {args.source!r}: no such run directory or weights file")
    if not args.model:
        raise ConfigError("--from a weights file needs --model NAME (the architecture)")
    weights, where = read_weights(path) if not args.torch_arch else (None, str(path))
    return {"name": args.model}, weights, None, where


def run_finetune(args, out=None) -> int:
    from ..train import config as cfg
    from ..train import experiment as ex
    from . import from_config
    from .transfer import load_pretrained, load_torch_weights

    out = out or sys.stdout
    if args.freeze < 0:
        raise cfg.ConfigError(f"--freeze must be ≥ 0, got {args.freeze}")
    source_config, weights, fitted, where = _source(args)
    flags = {"data": args.data, "model": source_config["name"], "epochs": args.epochs, "lr": args.lr,
             "optimizer": args.optimizer, "schedule": args.schedule, "batch_size": args.batch_size,
             "limit": args.limit, "val_fraction": args.val_fraction, "seed": args.seed, "out": args.out}
    if args.preprocess:
        flags["preprocess"] = args.preprocess
        fitted = None
    config = cfg.resolve(flags, where="command line")
    directory = ex.new_run_dir(config["out"])
    config["out"] = str(directory)
    run = ex.build(config, directory, fitted=fitted)
    classes = len(run.data.classes)
    if args.num_classes is not None and args.num_classes != classes:
        raise cfg.ConfigError(f"--num-classes {args.num_classes}, but {args.data!r} has {classes} classes")
    # the source architecture with every keyword it was built with, sized for the new data and classes
    h, w, c = run.data.shape
    model = from_config({**source_config, "num_classes": classes, "in_channels": c, "image_size": [h, w]},
                        rng=np.random.default_rng([config["seed"], 2]))
    if args.torch_arch:
        report = load_torch_weights(model, args.source, arch=args.torch_arch, skip_mismatched=True, strict=False,
                                    cast=args.cast)
    else:
        report = load_pretrained(model, weights, skip_mismatched=True, strict=False, cast=args.cast)
    report.source = where
    if not report.loaded:
        raise ValueError(f"fine-tune: nothing in {where} fits {source_config['name']!r}:\n{report}")
    if args.freeze:
        model.freeze(upto=args.freeze)
    run.model = run.trainer.model = model
    run.trainer.optimizer = ex.make_optimizer(config, model)
    run.meta["model"] = model.build_config
    ex.write_config(directory, config)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    (directory / "finetune.json").write_text(json.dumps({
        "from": str(args.source), "freeze": args.freeze, "frozen_parameters": frozen, "loaded": report.loaded,
        "skipped": report.skipped, "missing": report.missing, "unexpected": report.unexpected}, indent=1) + "\n")
    print(f"fine-tuning {source_config['name']} from {where}: {len(report.loaded)} arrays loaded, "
          f"{len(report.skipped)} re-initialised ({', '.join(report.skipped) or 'none'}), {len(frozen)} frozen",
          file=out)
    if report.missing or report.unexpected:
        print(str(report), file=out)
    summary = ex.execute(run)
    line = f"{summary['status']}: {summary['epochs_completed']} epochs"
    if "test" in summary:
        line += f", test accuracy {100 * summary['test']['accuracy']:.2f}%"
    print(f"{line}\nrun directory: {directory}", file=out)
    return 0 if summary["status"] in ("finished", "stopped_early") else 1


# ----- predict --dense ------------------------------------------------------------------------
def add_predict_dense_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run", help="run directory")
    parser.add_argument("images", nargs="+", help="image files, at least the training size (not resized down)")
    parser.add_argument("--dense", action="store_true",
                        help="slide the network over the whole image (FC→CONV) and average the class probabilities")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    parser.add_argument("--json", action="store_true")
    return parser


def read_full_image(path: str, crop: tuple[int, int, int]) -> np.ndarray:
    """uint8 (H, W, C) at the file's own size, enlarged (aspect kept) only if a side is below the crop; the
    size comes from the header, so an oversized file is refused before it is decoded."""
    from ..data import probe_image, read_image

    ch, cw, c = crop
    h, w = probe_image(path).size
    scale = max(ch / h, cw / w, 1.0)
    size = (max(ch, round(h * scale)), max(cw, round(w * scale))) if scale > 1 else None
    return read_image(path, size=size, mode="L" if c == 1 else "RGB")


def preprocess_any_size(steps: list, images: np.ndarray, what: str = "image") -> np.ndarray:
    """A run's preprocessing applied to images larger than the training size. Per-channel steps (scale,
    per-channel mean, standardisation) do not depend on the size — the preprocessors only check the
    fitted shape, so their transform is applied directly; a mean image cannot be, and is an error."""
    from ..data import PerChannelMean, PerChannelStandardize, Scale

    x = images.astype(np.float32)
    for s in steps:
        if not isinstance(s, Scale | PerChannelMean | PerChannelStandardize):
            raise ValueError(f"{what}: the run's {type(s).__name__} preprocessing is fitted at the training size; "
                             "dense evaluation needs per-channel preprocessing (scale, per-channel-mean, standardize)")
        x = s._transform(x).astype(np.float32, copy=False)
    return x


def run_predict_dense(args, out=None) -> int:
    from ..train import experiment as ex
    from ..train.metrics import top_k
    from .convert import dense_predict

    out = out or sys.stdout
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be ≥ 1, got {args.top_k}")
    t = ex.load_trained(args.run, args.checkpoint)
    results = []
    for path in args.images:
        image = read_full_image(path, t.input_shape)[None]
        x = preprocess_any_size(t.preprocess, image, path)
        probs, scores = dense_predict(t.model, x.astype(np.float32), tuple(t.input_shape))
        idx, val = top_k(probs, args.top_k)
        results.append({"image": path, "positions": list(scores.shape[1:3]),
                        "top": [{"class": t.classes[int(i)], "index": int(i), "probability": float(v)}
                                for i, v in zip(idx[0], val[0], strict=True)]})
    if args.json:
        print(json.dumps(results), file=out)
        return 0
    for r in results:
        ranked = ", ".join(f"{c['class']} ({100 * c['probability']:.1f}%)" for c in r["top"])
        print(f"{r['image']} ({r['positions'][0]}×{r['positions'][1]} positions): {ranked}", file=out)
    return 0
