"""`striate finetune`: fine-tune a trained run, or pretrained weights, on new data. The source
architecture is rebuilt for the new images and classes, every layer whose weights fit is transferred, the
rest are re-initialised (and named, with the reason), the first layers may be frozen, and the run trains
with every option of `striate train` (finetune's own default: 5 epochs). The source run's preprocessing
settings (preprocess, n_components, whiten_eps) are kept unless a flag or the run file gives them; the
preprocessing is refitted on the new data, except a pca / whiten / zca basis, which stays the source's when the
settings and image shape match (a refit would rotate the inputs the transferred first layer reads).

`--from torchvision:NAME` fine-tunes torchvision's published ImageNet weights (`models.pretrained`: downloaded
once into the data cache, verified against the SHA-256 prefix in the file name, resumed when broken, used
offline once cached); `--from FILE --model NAME` a local file, NAME naming both the zoo model and, for a PyTorch
file, its torchvision name map. Published weights bring their input convention (shorter_side, image_size,
preprocess), applied unless a flag or the run file gives another, and recorded in finetune.json ("weights",
"input") with the file."""

from __future__ import annotations

import os
import sys

from .parser import add_options
from .train import _status, configuration, print_summary

HELP = "fine-tune a trained run or pretrained weights (torchvision:NAME) on new data (optionally with frozen layers)"
DESCRIPTION = ("Fine-tune a pretrained network on a new dataset: rebuild it for the new images and classes, "
               "transfer the weights that fit, re-initialise the rest, freeze the first layers, train; writes a "
               "run directory.")


def add_arguments(parser) -> None:
    parser.add_argument("--num-classes", type=int, help="check that the new dataset has this many classes "
                        "(default: no check)")
    parser.add_argument("--config", metavar="FILE", help="a run file with the keys below, e.g. a fine-tuned run's own "
                        "config.toml, which reproduces it (default: none)")
    add_options(parser, "finetune")


def run(args) -> int:
    from ..run import RunDir, build, config, execute, features, run_file
    from ..run.transfer import read_source, source_model, transfer

    cfg = configuration(args, "finetune")
    features.check(cfg)  # --freeze all's refusals, before any work
    if not cfg["from"]:
        raise config.ConfigError("finetune needs a source: --from RUN_OR_FILE (or from = \"…\" in the run file)")
    source = read_source(cfg["from"], cfg["model"], cfg["torch_arch"] or None)
    if source.published is None or os.path.exists(cfg["from"]):  # torchvision:NAME stays a name
        cfg["from"] = os.path.abspath(os.path.expanduser(cfg["from"]))  # the record reproduces it from anywhere
    cfg["model"] = source.build_config["name"]
    if source.published is not None:  # the builder's keywords (alexnet's variant), so a resume rebuilds it
        cfg["model_options"] = {**source.published.keywords, **cfg["model_options"]}
    chosen = set(run_file.load_run_file(args.config, "finetune")) if args.config else set()
    for key, value in source.settings.items():  # the source's preprocessing, so the net reads the same inputs
        if getattr(args, key, None) is None and key not in chosen:
            cfg[key] = value
    directory = RunDir.new(cfg["out"]).claim("striate finetune")  # before the lock: nothing written yet
    cfg["out"] = str(directory)
    done = {}

    def model(num_classes, shape):
        if args.num_classes is not None and args.num_classes != num_classes:
            raise config.ConfigError(f"--num-classes {args.num_classes}, but {cfg['data']!r} has {num_classes} "
                                     "classes")
        m = source_model(source, num_classes, shape, cfg["seed"])
        done["transfer"] = transfer(source, m, freeze=features.frozen_layers(m, cfg["freeze"]), cast=cfg["cast"],
                                    freeze_names=cfg["freeze_layers"])
        return m

    with directory.lock("striate finetune"):
        if directory.has_checkpoint("last"):
            raise config.ConfigError(f"'{directory}' already holds a run; choose another --out")
        built = build(cfg, directory, model=model, fitted=source.fitted_for(cfg))
        if cfg["freeze"] == features.ALL:  # the ConvNet as a fixed feature extractor: the head trains on codes
            built = features.train_on_codes(built, done["transfer"].reinitialised)
        directory.write_config(cfg)
        t = done["transfer"]
        directory.write_json(RunDir.FINETUNE, {"from": cfg["from"], "freeze": cfg["freeze"],
                                                "freeze_layers": cfg["freeze_layers"], **_weights(source, cfg),
                                                **t.to_dict()})
        _describe(source, built.data.shape, t)
        summary = execute(built)
    print_summary(summary, directory)
    return _status(summary, built)  # the exit table's, as for train: 3 diverged, 130/143 interrupted


def _weights(source, cfg: dict) -> dict:
    """finetune.json's record of published weights: the file (name, URL, SHA-256 prefix, architecture) and
    the input convention the run applies (resize, crop, preprocess, mean, std; the run's own values when its
    flags changed them)."""
    entry = source.published
    if entry is None:
        return {}
    size = cfg["image_size"].lower().split("x")
    convention = {**entry.convention.record(), "resize": cfg["shorter_side"] or None,
                  "crop": int(size[0]) if size[0] else None, "preprocess": cfg["preprocess"]}
    if cfg["preprocess"] != entry.convention.preprocess:
        convention.pop("mean")
        convention.pop("std")
    weights = {"name": entry.name, "arch": source.torch_arch, "path": source.path}
    if cfg["from"].startswith("torchvision:"):
        weights.update(file=entry.file, url=entry.url, sha256=entry.sha256)
    return {"weights": weights, "input": convention}


def _describe(source, shape, t) -> None:
    lines = [f"fine-tuning {source.build_config['name']} from {source.description}: {len(t.loaded)} arrays "
             f"loaded, {len(t.reinitialised)} layers re-initialised, {len(t.frozen)} parameters frozen"]
    if source.input_shape is not None and tuple(source.input_shape) != tuple(shape):
        lines.append(f"the source was trained on {'×'.join(map(str, source.input_shape))} images, the new data "
                     f"has {'×'.join(map(str, shape))}: the image shape changed, so layers whose weights depend "
                     "on it are re-initialised, and the preprocessing is refitted on the new data")
    for r in t.reinitialised:
        lines.append(f"  re-initialised layer {r['layer']} {r['class']}: {r['reason']}")
    if t.unexpected:
        lines.append(f"  unused from the source: {', '.join(t.unexpected)}")
    print("\n".join(lines), file=sys.stderr)
