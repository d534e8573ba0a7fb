"""A run from a configuration (see `config.py`): data, preprocessing, model, optimizer, schedule and
callbacks, built deterministically from the seed so `resume` rebuilds exactly the same pieces.

A run directory holds `config.json` / `config.toml` (the resolved configuration), `metrics.jsonl`,
`checkpoints/` (generations with `last` and `best` pointers) and `summary.json`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import config as cfg
from .callbacks import EarlyStopping, ExplosionGuard, History, ModelCheckpoint, Progress
from .checkpoint import CheckpointError, CheckpointStore, write_atomic
from .trainer import Trainer

# sub-seeds of the run seed, one stream per consumer
_SPLIT, _INIT, _LOADER = 1, 2, 3


@dataclass
class Data:
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray | None
    val_y: np.ndarray | None
    test: object | None
    classes: list[str]
    shape: tuple[int, int, int]
    name: str = ""


@dataclass
class Run:
    config: dict
    directory: Path
    data: Data
    preprocess: list
    model: object
    trainer: Trainer
    train_loader: object
    val: tuple | None
    meta: dict = field(default_factory=dict)


def default_model(data: str) -> str:
    return "digits_net" if data == "digits" else "three_layer"


def load_data(config: dict) -> Data:
    """Train split (less a seeded validation fraction, optionally limited) and the test split if any."""
    from ..data import DataError, load

    name = config["data"]
    try:
        train = load(name, "train")
    except DataError:
        if name in ("cifar10", "mnist", "digits") or not os.path.isdir(name):
            raise
        train = load(name, None)  # a folder of <class>/ images without train/test splits
        test = None
    else:
        try:
            test = load(name, "test")
        except DataError:
            test = None
    x, y = train.images, train.labels
    rng = np.random.default_rng([config["seed"], _SPLIT])
    order = rng.permutation(len(x))
    if config["limit"]:
        order = order[:config["limit"]]
    n_val = int(round(len(order) * config["val_fraction"]))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train_idx) == 0:
        raise cfg.ConfigError(f"no training images left after limit={config['limit']} and "
                              f"val_fraction={config['val_fraction']}")
    return Data(x[train_idx], y[train_idx], x[val_idx] if n_val else None, y[val_idx] if n_val else None,
                test, list(train.classes), tuple(train.shape), name=config["data"])


def make_preprocess(name: str) -> list:
    from ..data import MeanImage, PerChannelMean, PerChannelStandardize, Scale

    steps = [Scale(1 / 255)]
    extra = {"scale": None, "mean-image": MeanImage, "per-channel-mean": PerChannelMean,
             "standardize": PerChannelStandardize}[name]
    return steps + ([extra()] if extra is not None else [])


def fit_preprocess(steps: list, x: np.ndarray) -> list:
    for s in steps:
        x = s.fit_transform(x)
    return steps


def preprocess_state(steps: list) -> list[dict]:
    return [s.state_dict() for s in steps]


def preprocess_from_state(states: list[dict]) -> list:
    from ..data import Preprocessor

    return [Preprocessor.from_state_dict(s) for s in states]


def apply_preprocess(steps: list, x: np.ndarray) -> np.ndarray:
    for s in steps:
        x = s.transform(x)
    return x


def make_optimizer(config: dict, model):
    from .. import optim

    name, lr, wd, mom = config["optimizer"], config["lr"], config["weight_decay"], config["momentum"]
    if name == "sgd":
        return optim.SGD(model, lr=lr, weight_decay=wd)
    if name in ("momentum", "nesterov"):
        return optim.SGD(model, lr=lr, momentum=mom, nesterov=name == "nesterov", weight_decay=wd)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSProp, "adagrad": optim.AdaGrad}[name]
    return cls(model, lr=lr, weight_decay=wd)


def make_schedule(config: dict, steps_per_epoch: int):
    from ..optim import schedules as s

    lr, total = config["lr"], max(1, config["epochs"] * steps_per_epoch)
    name = config["schedule"]
    if name == "constant":
        sched = s.constant(lr)
    elif name == "cosine":
        sched = s.cosine(lr, total)
    elif name == "step":  # ×0.1 at half and three quarters of the run
        sched = s.multistep(lr, [total // 2, (3 * total) // 4], 0.1)
    elif name == "exp":  # down to 1% of lr at the end
        sched = s.exp(lr, 0.01 ** (1 / total))
    else:
        sched = s.poly(lr, total, 1.0)
    warm = int(round(config["warmup"] * steps_per_epoch))
    return s.warmup(sched, warm) if warm > 0 else sched


def make_augment(config: dict, shape) -> list:
    from ..data import RandomCrop, RandomFlip

    h, w, _ = shape
    steps = []
    for name in config["augment"]:
        if name == "crop":
            steps.append(RandomCrop((h, w), padding=max(1, min(h, w) // 8)))
        elif name == "flip":
            steps.append(RandomFlip())
    return steps


def build(config: dict, directory: str | os.PathLike, progress_stream=None, fitted: list[dict] | None = None) -> Run:
    """Every piece of a run from its resolved configuration; nothing is trained or written yet.
    `fitted`: saved preprocessing states to use instead of fitting again (resume)."""
    from ..data import Compose, DataLoader
    from ..models import get as get_model
    from ..nn.losses import SoftmaxCrossEntropy

    directory = Path(directory)
    data = load_data(config)
    if fitted is not None:
        preprocess = preprocess_from_state(fitted)
    else:
        preprocess = fit_preprocess(make_preprocess(config["preprocess"]), data.train_x)
    h, w, c = data.shape
    model_name = config["model"] or default_model(config["data"])
    try:
        extra = {} if config["width"] == 1.0 else {"width": config["width"]}
        model = get_model(model_name, len(data.classes), c, rng=np.random.default_rng([config["seed"], _INIT]),
                          image_size=(h, w), **extra)
        model.output_shape((1, h, w, c))
    except TypeError as e:  # a keyword the builder does not take (e.g. width for a fixed-width model)
        raise cfg.ConfigError(f"{e} (width = {config['width']!r})") from e
    except ValueError as e:
        raise cfg.ConfigError(f"model {model_name!r} does not fit {config['data']!r} images {h}×{w}×{c}: {e}") from e
    loader = DataLoader(data.train_x, data.train_y, config["batch_size"], shuffle=True, drop_last=False,
                        rng=np.random.default_rng([config["seed"], _LOADER]),
                        transform=Compose(make_augment(config, data.shape) + preprocess))
    val = None
    if data.val_x is not None:
        val = (apply_preprocess(preprocess, data.val_x), data.val_y)
    meta = {"model": model.build_config, "preprocess": preprocess_state(preprocess), "classes": data.classes,
            "input_shape": list(data.shape), "data": config["data"]}
    callbacks = [ExplosionGuard(config["explode_factor"]), History(directory / "metrics.jsonl"),
                 Progress(stream=progress_stream), ModelCheckpoint(directory / "checkpoints", meta=meta)]
    if config["patience"]:
        if val is None:
            raise cfg.ConfigError(f"patience = {config['patience']} needs validation data: "
                                  f"val_fraction = {config['val_fraction']!r} holds out nothing")
        callbacks.append(EarlyStopping(config["patience"]))
    if config["diagnostics"]:
        from ..diagnose.callbacks import Diagnostics

        every = config["diagnostics"]
        callbacks.append(Diagnostics(directory, stats_interval=every, ratio_interval=max(1, every // 10),
                                     num_classes=len(data.classes)))
    if config["report"] == "on":
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            print("note: matplotlib is not installed, so no report.html is drawn "
                  "(pip install 'striate[report]'); training goes on", file=progress_stream or sys.stderr)
        else:
            from ..report.callback import ReportWriter

            callbacks.append(ReportWriter(directory))
    trainer = Trainer(model, SoftmaxCrossEntropy(config["label_smoothing"]), make_optimizer(config, model),
                      schedule=make_schedule(config, len(loader)), callbacks=callbacks, tta=config["tta"])
    return Run(config, directory, data, preprocess, model, trainer, loader, val, meta)


def new_run_dir(out: str) -> Path:
    if out:
        return Path(out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, i = Path("runs") / stamp, 1
    while path.exists():
        i += 1
        path = Path("runs") / f"{stamp}-{i}"
    return path


def write_config(directory: Path, config: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "config.json", json.dumps(config, indent=1) + "\n")
    write_atomic(directory / "config.toml", cfg.to_toml(config))


def read_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise cfg.ConfigError(f"{str(directory)!r} is not a run directory (no config.json)")
    return cfg.resolve(json.loads(path.read_text()), where=str(path))


def execute(run: Run, resume: bool = False) -> dict:
    """Train (or continue) the run and write summary.json; returns the summary. Its 'status' is
    'finished', 'stopped_early', 'diverged' or 'interrupted'."""
    trainer = run.trainer
    store = CheckpointStore(run.directory / "checkpoints")
    if resume:
        trainer.restore(store.load("last"))
    start = time.perf_counter()
    logs = trainer.fit(run.train_loader, run.val, epochs=run.config["epochs"])
    elapsed = time.perf_counter() - start
    status = ("diverged" if trainer.diverged else "interrupted" if trainer.interrupted
              else "stopped_early" if trainer.stop_training else "finished")
    ckpt = trainer.callback(ModelCheckpoint)
    summary = {"status": status, "epochs_completed": trainer.epoch, "iterations": trainer.iteration,
               "seconds": round(elapsed, 3), "stop_reason": trainer.stop_reason,
               "last": {k: v for k, v in logs.items() if isinstance(v, int | float)},
               "best_val_accuracy": ckpt.best if run.val is not None else None,
               "best_epoch": None if ckpt.best_epoch is None else ckpt.best_epoch + 1}
    if run.val is None:  # without a validation split the best checkpoint follows training accuracy
        summary["best_train_accuracy"] = ckpt.best
    if status in ("finished", "stopped_early") and run.data.test is not None:
        best = store.load("best") if store.has("best") else None
        if best is not None:
            run.model.load_state_dict(best.weights)
        test = run.data.test
        result = trainer.evaluate((apply_preprocess(run.preprocess, test.images), test.labels))
        summary["test"] = {"loss": result["loss"], "accuracy": result["accuracy"], "count": result["count"],
                           "checkpoint": "best" if best is not None else "final"}
    write_atomic(run.directory / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


# ----- loading a trained run (eval, predict) --------------------------------------------------
@dataclass
class Trained:
    model: object
    preprocess: list
    classes: list[str]
    input_shape: tuple[int, int, int]
    config: dict
    checkpoint: object


def load_trained(directory: str | os.PathLike, tag: str = "best") -> Trained:
    """The model of a run with its weights from checkpoint `tag` (falls back to 'last' when there is no
    'best'), the saved preprocessing, the class names and the input shape."""
    from ..models import from_config

    if not Path(directory).is_dir():
        raise cfg.ConfigError(f"{str(directory)!r} is not a run directory")
    store = CheckpointStore(Path(directory) / "checkpoints")
    if tag == "best" and not store.has("best"):
        tag = "last"
    ckpt = store.load(tag)
    meta = ckpt.state.get("meta")
    keys = ("model", "preprocess", "classes", "input_shape")
    if not isinstance(meta, dict) or any(k not in meta for k in keys):
        have = sorted(meta) if isinstance(meta, dict) else []
        raise CheckpointError(f"checkpoint {ckpt.path} lacks the run's meta data ({', '.join(keys)}; it has "
                              f"{have or 'none'}): it was not written by striate train")
    model = from_config(meta["model"], rng=np.random.default_rng(0))
    model.load_state_dict(ckpt.weights)
    model.eval()
    config = read_config(directory) if (Path(directory) / "config.json").is_file() else {}
    return Trained(model, preprocess_from_state(meta["preprocess"]), list(meta["classes"]),
                   tuple(meta["input_shape"]), config, ckpt)
