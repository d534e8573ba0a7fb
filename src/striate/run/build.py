"""A run from its resolved configuration: data, preprocessing, model, optimizer, schedule and callbacks,
built deterministically from the seed, so that a resume rebuilds exactly the same pieces.

    run = build(config, RunDir("runs/x"))                      # nothing trained or written yet
    run = build(config, directory, model=tuned, callbacks=[pruning], test=False)   # the seams callers use

`model=` trains a model the caller made instead of building one from the configuration: a Module, or a
function `f(num_classes, (H, W, C)) -> Module` called once the data is loaded (a fine-tune's, which sizes
the source architecture for the new data and transfers the weights); `callbacks=` adds the caller's
callbacks to the run's own; `test=False` leaves the test split unseen (a search ranks trials by validation
accuracy); `fitted=` reuses saved preprocessing statistics (a resume) instead of fitting them again, or is a
function `f((H, W, C)) -> statistics or None` of the images' shape (a fine-tune's, which reuses its source's
when the images match).

`comm=` (an MPI job's `distributed.world()`): this process is one rank of a data-parallel run — its loader
yields its part of each global batch, its trainer averages gradients over the ranks, and on ranks other
than 0 the run gets no callback that writes or prints (rank 0 alone owns the run directory).
Augmentation and stochastic layers draw keyed random numbers (seed, epoch, sample id) in every run, so a
run gives the same numbers under any number of ranks and resumes under another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import config as cfg
from .data import INIT, LOADER, Data, default_model, load_data
from .directory import RunDir
from .schedule import base_lr, make_schedule

FIT_IMAGES = 5000  # training images a data-fitted layer (PatchWhitening) is fitted on, as airbench does


@dataclass
class Run:
    config: dict
    directory: RunDir
    data: Data
    preprocess: object  # data.Preprocessing, fitted
    model: object
    trainer: object  # train.Trainer
    train_loader: object
    val: tuple | None
    meta: dict = field(default_factory=dict)
    test: bool = True  # evaluate the test split at the end
    comm: object = None  # distributed.Single or MpiComm: the processes of this run


def make_model(config: dict, num_classes: int, shape: tuple[int, int, int], *, samples: int | None = None,
               measure_only: bool = False):
    """The configuration's model for `num_classes` classes and images `shape` (H, W, C). A keyword the
    builder does not take or a value of the wrong type, a model that cannot take these images, or one whose
    training step cannot fit in this machine's memory (the summary's estimate, made from a model of
    placeholder weights before any weight is allocated; at batch_size, or `samples`, the training images, when
    fewer) is a ConfigError saying which. `measure_only`: return that placeholder model (shapes, parameter
    counts, MACs; no weights, no memory check), for `summary`."""
    from ..models import registry
    from ..nn.init import shapes_only

    h, w, c = shape
    name = config["model"] or default_model(config["data"])
    kw = dict(config.get("model_options") or {})
    if config["width"] != 1.0:
        kw["width"] = config["width"]
    try:
        registry.check_keywords(name, config.get("model_options") or {}, user=True)
        with shapes_only():
            sketch = _build(config, name, num_classes, shape, kw)
        if measure_only:
            return sketch
        check_memory(sketch, config, name, shape, samples)
        return _build(config, name, num_classes, shape, kw)
    except ValueError as e:  # a bad keyword value, or images the architecture cannot take
        if isinstance(e, cfg.ConfigError):
            raise
        raise cfg.ConfigError(f"model {name!r} cannot be built for {config['data']!r} images {h}×{w}×{c}: {e}") \
            from None


def _build(config: dict, name: str, num_classes: int, shape: tuple[int, int, int], kw: dict):
    from ..models import registry

    h, w, c = shape
    try:
        model = registry.get(name, num_classes, c, rng=np.random.default_rng([config["seed"], INIT]),
                             image_size=(h, w), **kw)
        model.output_shape((1, h, w, c))
    except (TypeError, ArithmeticError) as e:  # a builder keyword's value its arithmetic cannot take
        raise ValueError(str(e)) from None
    return model


def check_memory(model, config: dict, name: str, shape: tuple[int, int, int], samples: int | None = None) -> None:
    """ConfigError when a training step of `model` on images `shape` at the configuration's batch size (or
    `samples`, when fewer: a batch holds at most the training set) and optimizer needs more memory than this
    machine has (`complexity.machine_memory`)."""
    from ..complexity import complexity, heaviest, machine_memory, mib
    from ..optim.registry import STATE_SLOTS

    have = machine_memory()
    if not have:
        return
    table = complexity(model, shape, batch_size=1)
    optimizer = config["optimizer"] if config["optimizer"] in STATE_SLOTS else 2  # 2: Adam's, the most
    batch = config["batch_size"] if samples is None else max(1, min(config["batch_size"], samples))
    need = table.training_memory(batch, optimizer)
    if need.total <= have:
        return
    row = heaviest(table, batch)
    where = "" if row is None else (f"; the largest layer is layer {row.name}, {row.layer} ({row.params:,} parameters, "
                                    f"output {'×'.join(map(str, row.output_shape[1:]))} per image)")
    raise cfg.ConfigError(f"model {name!r} on {config['data']!r} images {'×'.join(map(str, shape))} cannot fit in "
                          f"memory: a {need} (summary's estimate), more than this machine's {mib(have)}{where}; "
                          "use smaller layers, a smaller width or batch_size")


def preprocessing(config: dict):
    """The configuration's preprocessing, unfitted (data.Preprocessing), or ConfigError for a bad combination."""
    from ..data import DataError, Preprocessing

    try:
        return Preprocessing.named(config["preprocess"], config.get("n_components", 0), config.get("whiten_eps", 1e-5))
    except DataError as e:
        raise cfg.ConfigError(str(e)) from None


def model_input(config: dict, preprocess, shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The shape (H, W, C) the network receives for images of `shape` after `preprocess` (1×1×k after pca or
    whiten), or ConfigError (images too large for a covariance, more components than values)."""
    from ..data import DataError

    try:
        return preprocess.output_shape(shape)
    except DataError as e:
        raise cfg.ConfigError(f"preprocess = {config['preprocess']!r}: {e}") from None


def model_for(config: dict, num_classes: int, shape, preprocess, **kw):
    """`make_model` for the input `preprocess` gives images of `shape`; a model that cannot take vectors after
    pca / whiten is a ConfigError that says what to use instead."""
    inputs = model_input(config, preprocess, shape)
    try:
        return make_model(config, num_classes, inputs, **kw)
    except cfg.ConfigError as e:
        if tuple(inputs) == tuple(shape):
            raise
        raise cfg.ConfigError(f"{e} (preprocess = {config['preprocess']!r} makes each image a vector of {inputs[-1]} "
                              "values, a 1×1 image of as many channels: use a model that takes vectors, e.g. a layer "
                              "list [Flatten, Linear, ReLU, Linear])") from None


def check_combinations(config: dict) -> None:
    """Options that contradict each other, refused before any work (a usage error)."""
    if config.get("loss") == "svm" and (config.get("label_smoothing") or config.get("tta", "none") != "none"):
        raise cfg.ConfigError("loss = 'svm' takes no label_smoothing and no tta: both act on softmax probabilities, "
                              "which an SVM's scores are not")
    if config.get("ema_decay") and config.get("polyak"):
        raise cfg.ConfigError("give ema_decay or polyak, not both: one average of the weights is kept")
    k = config.get("snapshots", 0)
    if k == 1:
        raise cfg.ConfigError("snapshots = 1 is one model: give 2 or more (or 0 for no snapshot ensemble)")
    if k and config["schedule"] not in ("constant", "cosine"):
        raise cfg.ConfigError(f"snapshots = {k} sets the schedule (cosine with {k} restarts); drop schedule = "
                              f"{config['schedule']!r}")


def train_loader(config: dict, images, labels, transform, comm=None):
    """The training DataLoader: shuffled by the run's seed, keyed augmentation, this process's shard of each
    batch; `drop_last` drops each epoch's last partial batch (len(loader), so the schedules, counts it too)."""
    from ..data import DataLoader

    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    if config.get("drop_last") and len(images) < config["batch_size"]:
        raise cfg.ConfigError(f"drop_last with batch_size = {config['batch_size']} and {len(images)} training "
                              "images leaves no batch: lower batch_size or drop drop_last")
    return DataLoader(images, labels, config["batch_size"], shuffle=True, drop_last=config.get("drop_last", False),
                      rng=np.random.default_rng([config["seed"], LOADER]), keyed=config["seed"], shard=(rank, size),
                      transform=transform)


def build(config: dict, directory: RunDir | None, *, model=None, callbacks=(), fitted=None,
          test: bool = True, stream=None, comm=None) -> Run:
    """Every piece of a run from its resolved configuration (see the module docstring). `stream` receives
    the progress lines (default: the console, epoch lines on stdout and a bar on a terminal)."""
    from ..data import Compose, Preprocessing, augmentation
    from ..distributed.comm import Single
    from ..nn.losses import l1
    from ..nn.losses import named as named_loss
    from ..nn.module import Module
    from ..train import Trainer
    from .callbacks import run_callbacks

    comm = Single() if comm is None else comm
    data = load_data(config)
    check_combinations(config)
    # statistics given: a resume or a data-parallel rank but 0, whose weights come from the checkpoint or rank 0
    resuming = fitted is not None and not callable(fitted)
    if callable(fitted):
        fitted = fitted(data.shape)
    preprocess = Preprocessing.from_state(fitted) if fitted is not None else preprocessing(config)
    inputs = model_input(config, preprocess, data.shape)
    if fitted is None:
        preprocess.fit(data.train_x)
    if model is None:
        model = model_for(config, len(data.classes), data.shape, preprocess, samples=len(data.train_x))
    elif not isinstance(model, Module):
        model = model(len(data.classes), inputs)
    if not resuming:
        fit_layers(model, data, preprocess)
    before, after = augmentation(config["augment"], data.shape)
    loader = train_loader(config, data.train_x, data.train_y, Compose([*before, preprocess, *after]), comm)
    val = None if data.val_x is None else (preprocess.lazy(data.val_x), data.val_y)  # preprocessed per batch
    if config["patience"] and val is None:
        raise cfg.ConfigError(f"patience = {config['patience']} needs validation data: "
                              f"val_fraction = {config['val_fraction']!r} holds out nothing")
    meta = RunDir.make_meta(model, preprocess, data.classes, data.shape, config["data"])
    own = run_callbacks(config, directory, meta, len(data.classes), has_val=val is not None,
                        steps_per_epoch=len(loader), stream=stream, writers=comm.is_root, model=model)
    if config["sync_bn"] and comm.size > 1:
        share_batch_statistics(model, comm)
    trainer = Trainer(model, named_loss(config.get("loss", "softmax"), config["label_smoothing"],
                                        config.get("loss_reduction", "mean")), make_optimizer(config, model),
                      schedule=make_schedule(config, len(loader)), callbacks=[*own, *callbacks], tta=config["tta"],
                      penalty=l1(config["l1"]) if config.get("l1") else None, comm=comm)
    return Run(config, directory, data, preprocess, model, trainer, loader, val, meta, test=test, comm=comm)


def make_optimizer(config: dict, model):
    """The configuration's optimizer over `model`'s trainable parameters, grouped by its `param_groups` rules
    (`optim.groups.param_groups`), with `decoupled_weight_decay`; a rule that matches nothing, or a combination
    the optimizer refuses (AdamW with decoupled_weight_decay), is a ConfigError quoting it."""
    from ..optim.groups import param_groups
    from ..optim.registry import build as optimizer

    try:
        params = param_groups(model, config["param_groups"]) if config.get("param_groups") else model
    except ValueError as e:
        raise cfg.ConfigError(f"param_groups: {e}") from None
    try:
        return optimizer(config["optimizer"], params, base_lr(config), config["momentum"], config["weight_decay"],
                         decoupled_weight_decay=config.get("decoupled_weight_decay", False))
    except ValueError as e:
        raise cfg.ConfigError(f"optimizer = {config['optimizer']!r}: {e}") from None


def fit_layers(model, data: Data, preprocess, images: int = FIT_IMAGES) -> None:
    """Fit the layers of `model` whose weights come from data (every unfitted nn.PatchWhitening) on the first
    min(`images`, N) training images, preprocessed and un-augmented, read a chunk at a time (train_x may be a
    memory map). A resumed run does not call this: its checkpoint holds the fitted weights (`fitted_`)."""
    from ..data.rows import Rows, row_chunks
    from ..nn.whitening import fit_unfitted, unfitted

    if not unfitted(model):
        return
    first = Rows(data.train_x).take(np.arange(min(images, len(data.train_x))))
    fit_unfitted(model, lambda: row_chunks(preprocess.lazy(first), 500))


def share_batch_statistics(model, comm) -> None:
    """--sync-bn: every BatchNorm of `model` computes its training statistics over the global batch."""
    from ..nn.norm import BatchNorm

    for m in model.modules():
        if isinstance(m, BatchNorm):
            m.comm = comm
