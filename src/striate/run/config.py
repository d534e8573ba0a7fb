"""The one option table: every setting that `striate train`, `finetune`, `doctor` and `search` take, from
flags and run files alike. Each option has one type, one default (a command may declare its own, e.g.
`finetune` trains 5 epochs), one help text, its choices and bounds; strings become values here, once, and a
bad value is quoted with where it came from.

A run file (`--config run.toml`) holds the same keys, flat or under `[train]`; a `[model]` table names the
model and passes keywords to its builder:

    data = "cifar10"
    optimizer = "nesterov"
    [model]
    name = "reference"
    hidden = 512          # a keyword of the builder: config["model_options"]["hidden"]

A search file's `[search]` table is checked by the same machinery (`SEARCH_OPTIONS`).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..data.datasets.image_file import FORMAT_NAMES
from ..data.pipeline import AUGMENT_CHOICES, PREPROCESS
from ..nn.losses import NAMES as LOSSES
from ..nn.losses import REDUCTIONS
from . import schedule
from .option import RUN_COMMANDS, Option
from .values import ConfigError, parse_size

COMMANDS = ("train", "finetune", "doctor", "search")


def is_dataset_name(value: str) -> bool:
    """A built-in dataset's name (digits, mnist, cifar10), not a path."""
    from ..data.datasets import NAMES

    return value in NAMES


def data_missing(value: str) -> bool:
    """`value` names neither a dataset nor an existing path."""
    return not is_dataset_name(value) and not (value and Path(value).expanduser().exists())


def check_data(value: str, where: str) -> None:
    """A dataset name or an existing path, or ConfigError saying which it is not."""
    from ..data.datasets import NAMES

    if not value:
        raise ConfigError(f"{where}: give a dataset: {', '.join(NAMES)}, or a path to an image folder / archive")
    if data_missing(value):
        looks_like_path = any(ch in value for ch in "/\\.~")
        what = "no such file or directory" if looks_like_path else "unknown dataset"
        raise ConfigError(f"{where}: {what}; give one of {', '.join(NAMES)}, or a path to an image folder / "
                          "archive")


def _models() -> list[str]:
    from ..models import names

    return names()


def _datasets() -> list[str]:
    from ..data.datasets import NAMES

    return list(NAMES)


def _check_model(value: str, where: str) -> None:
    from ..models import names

    if value and value not in names():
        hint = difflib.get_close_matches(value, names(), n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{where}: unknown model{maybe}; choose from {', '.join(names())}")


def _check_augment(value: list, where: str) -> None:
    from ..data import DataError
    from ..data.pipeline import check_augment

    try:
        check_augment(value)
    except DataError as e:
        raise ConfigError(f"{where}: {e}") from None


def _check_model_options(value: dict, where: str) -> None:
    """Everything a [model] table can be refused for without knowing its model (`models.keywords.check_table`:
    a number that is not finite anywhere inside, nesting too deep; `models.layers.check`: a layer list's
    unknown layers and keywords, values of the wrong type). The builder's keywords are checked against the
    model (`models.registry.check_keywords`) once it is known."""
    from ..models.keywords import check_table
    from ..models.layers import check

    try:
        check_table(value, "model")
        if "layers" in value:
            check(value["layers"])
    except ValueError as e:
        raise ConfigError(f"{where.removesuffix(': [model]')}: {e}") from None


def _check_tta(value: str, where: str) -> None:
    from ..train.tta import check

    try:
        check(value)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


def _check_param_groups(value: list, where: str) -> None:
    from ..optim.groups import check_rules

    try:
        check_rules(value)
    except ValueError as e:
        raise ConfigError(f"{where.split(': ')[0]}: param_groups: {e}") from None


def _optimizers() -> tuple[str, ...]:
    from ..optim.registry import NAMES

    return NAMES


DOCTOR_TOO = (*RUN_COMMANDS, "doctor")

D = DOCTOR_TOO
OPTIONS: tuple[Option, ...] = (
    # data
    Option("data", str, "digits", "dataset name, or a path to an image folder (root/<class>/…/*.jpg, the class the "
           f"top-level folder; {FORMAT_NAMES}) or an archive of one",
           check=check_data, commands=D, group="data", aliases=("dataset", "data_dir", "dataset_name"),
           listing=_datasets, names_path=True),
    Option("preprocess", str, "per-channel-mean", "preprocessing after scaling to [0, 1] (pca, whiten: each image "
           "becomes a vector of n_components values, for a model that takes vectors; zca keeps images)",
           tuple(PREPROCESS), commands=D, group="data"),
    Option("n_components", int, 0, "with preprocess pca or whiten: the principal components kept (0: all)", minimum=0,
           commands=D, group="data", aliases=("components", "pca_components")),
    Option("whiten_eps", float, 1e-5, "with preprocess whiten or zca: ε of Xrot / √(S + ε), raise it for stronger "
           "smoothing (the notes)", minimum=0.0, commands=D, group="data", aliases=("eps", "epsilon")),
    Option("loss", str, "softmax", "the classifier's loss: softmax (cross-entropy) or svm (the notes' multiclass "
           "SVM, margin 1: its scores are not probabilities)", LOSSES, commands=D, group="optimization",
           aliases=("criterion", "objective")),
    Option("loss_reduction", str, "mean", "the loss over a batch: mean, or sum (PyTorch's reduction='sum': gradients "
           "not divided by the batch size; the logged loss stays the per-sample mean, an l1 penalty is added as is)",
           REDUCTIONS, group="optimization", aliases=("reduction",)),
    Option("augment", list, [], f"augmentations, comma-separated: {AUGMENT_CHOICES} (crop zero-pads by 1/8 of "
           "the side; translate:P shifts by up to P pixels with reflect padding, translate alone by 2 at 32×32; "
           "altflip mirrors a fixed random half of the images on even epochs and the other half on odd ones, "
           "not with flip; noise:σ: Gaussian input noise of std σ after the preprocessing)", check=_check_augment,
           group="data", aliases=("augmentation", "aug", "augmentations")),
    Option("drop_last", bool, False, "drop the last partial training batch of each epoch (N // batch_size steps "
           "an epoch instead of ⌈N / batch_size⌉)", group="data", aliases=("drop_remainder",)),
    Option("val_fraction", float, 0.1, "fraction of the training split held out for validation", minimum=0.0,
           below=1.0, commands=D, group="data", aliases=("validation_split", "val_split", "validation_fraction")),
    Option("limit", int, 0, "use only this many training images (0: all)", minimum=0, commands=D, group="data"),
    Option("image_size", str, "", "resize every image of an image folder to HxW (e.g. 32x32), or HxWxC to also "
           "convert the channels (C 1: greyscale, 3: RGB); without it the images must share one size",
           check=parse_size, commands=D, group="data", aliases=("size", "resize", "img_size")),
    Option("shorter_side", int, 0, "with image_size: resize each image's shorter side to this many pixels (aspect "
           "kept), then centre-crop image_size (torchvision's Resize + CenterCrop; 0: resize to image_size)",
           minimum=0, commands=D, group="data", aliases=("resize_size",)),
    Option("classes", str, "data", "the run's classes: data (its class folders) or imagenet (ImageNet's 1000, in "
           "the published heads' order; each class folder named after one; fine-tuning torchvision weights then "
           "keeps their head)", ("data", "imagenet"), commands=D, group="data", aliases=("keep_head", "labels")),
    Option("strict", bool, False, "abort on an unreadable image in an image folder instead of skipping it (the "
           "skipped files are listed in the run directory)", commands=D, group="data"),
    # model
    Option("model", str, "", "model name (default: digits_net on digits, three_layer otherwise)",
           check=_check_model, commands=D, group="model", aliases=("arch", "architecture", "net", "network"),
           listing=_models),
    Option("model_options", dict, {}, "keywords of the model builder (a run file's [model] table)", commands=D,
           flag=False, group="model", check=_check_model_options, label="[model]"),
    Option("width", float, 1.0, "width multiplier of the model's channels (1: as published)", minimum=0.0,
           exclusive=True, commands=D, group="model"),
    # optimization
    Option("optimizer", str, "adam", "optimizer", _optimizers(), commands=D, group="optimization",
           aliases=("optim", "solver")),
    Option("lr", float, 1e-3, "base learning rate", minimum=0.0, exclusive=True, commands=D, resumable=True,
           group="optimization", aliases=("learning_rate", "learning_rate_init", "eta", "rate")),
    Option("momentum", float, 0.9, "momentum of momentum/nesterov", minimum=0.0, commands=D, group="optimization"),
    Option("param_groups", list, [], "parameter groups, a run file's [[param_groups]] tables: match = a layer kind "
           "and parameter ('BatchNorm.bias') or a glob over parameter names ('*.bias'), lr_mult and decay_mult "
           "(default 1) multiply lr and weight_decay; a parameter takes the first rule it matches",
           item=dict, check=_check_param_groups, flag=False, group="optimization", label="[[param_groups]]",
           aliases=("parameter_groups", "groups", "lr_mult")),
    Option("epochs", int, 10, "epochs to train (in total, counting resumed ones)", minimum=1,
           defaults=(("finetune", 5),), resumable=True, group="optimization",
           aliases=("epoch", "n_epochs", "num_epochs", "max_epochs")),
    Option("batch_size", int, 64, "minibatch size", minimum=1, commands=D, group="optimization",
           aliases=("batch", "bs", "minibatch", "mini_batch_size")),
    # schedule
    Option("schedule", str, "constant", schedule.describe(), schedule.NAMES, group="schedule",
           aliases=("lr_schedule", "scheduler", "lr_policy")),
    Option("gamma", float, 0.1, "decay factor of the step, multistep and exp schedules", minimum=0.0,
           exclusive=True, group="schedule"),
    Option("step_size", float, 0.0, "epochs between decays of the step schedule (0: a third of the run)",
           minimum=0.0, group="schedule"),
    Option("milestones", list, [], "epochs at which the multistep schedule decays, comma-separated "
           "(default: half and three quarters of the run)", item=float, minimum=0.0, group="schedule"),
    Option("pct_start", float, 0.23, "the triangular schedule's peak, as a fraction of the run's steps",
           minimum=0.0, below=1.0, group="schedule", aliases=("peak", "warmup_fraction")),
    Option("start_factor", float, 0.2, "the triangular schedule's first learning rate, × lr", minimum=0.0,
           group="schedule", aliases=("initial_factor", "div_factor")),
    Option("end_factor", float, 0.07, "the triangular schedule's last learning rate, × lr", minimum=0.0,
           group="schedule", aliases=("final_factor", "final_div_factor")),
    Option("warmup", float, 0.0, "linear warm-up length in epochs", minimum=0.0, group="schedule",
           aliases=("warmup_epochs", "warm_up")),
    Option("lr_reference_batch", int, 0, "the linear scaling rule: the learning rate is --lr × batch_size / this "
           "(e.g. 256: --lr is the rate for a batch of 256; 0: off)", minimum=0, group="optimization",
           aliases=("reference_batch", "base_batch")),
    # regularization
    Option("weight_decay", float, 0.0, "L2 weight decay (the optimizer's weight_decay)", minimum=0.0, commands=D,
           group="regularization", aliases=("reg", "l2", "decay", "wd", "l2_reg")),
    Option("decoupled_weight_decay", bool, False, "weight decay of a strength independent of the lr: the L2 "
           "term is weight_decay / (initial lr × lr_mult), so each step decays by weight_decay × lr(t) / lr (the "
           "published airbench's form; not AdamW's, which refuses it)", group="regularization",
           aliases=("decoupled_wd", "decouple_weight_decay")),
    Option("label_smoothing", float, 0.0, "label smoothing ε of the cross-entropy (PyTorch's label_smoothing)",
           minimum=0.0, below=1.0, commands=D, group="regularization", aliases=("smoothing",)),
    Option("patience", int, 0, "early stopping patience in epochs on val accuracy (0: off)", minimum=0,
           resumable=True, group="regularization", aliases=("early_stopping", "early_stop")),
    Option("l1", float, 0.0, "L1 penalty λ·Σ|w| over the weights, added to the loss (0: off)", minimum=0.0,
           group="regularization"),
    Option("max_norm", float, 0.0, "max-norm constraint: after every update, clip each unit's incoming weight "
           "vector to this L2 norm, e.g. 3 or 4 (0: off)", minimum=0.0, group="regularization"),
    # weight averaging and ensembles
    Option("ema_decay", float, 0.0, "keep an exponential moving average of the weights with this decay, e.g. "
           "0.999: evaluated at each epoch end and on the test split, saved with every checkpoint (0: off)",
           minimum=0.0, below=1.0, group="averaging", aliases=("ema",)),
    Option("polyak", bool, False, "keep Polyak's running average of the weights (evaluated and saved like the "
           "EMA)", group="averaging", aliases=("polyak_averaging", "swa")),
    Option("lookahead", int, 0, "Lookahead-style averaging copied back into the weights: every this many steps the "
           "network continues from an exponential average of its weights and BatchNorm statistics, and ends as "
           "the average (airbench: 5; 0: off)", minimum=0, group="averaging",
           aliases=("lookahead_every", "lookahead_steps")),
    Option("lookahead_decay", float, 0.95, "the lookahead average's decay per step: an update after step t of T "
           "uses lookahead_decay^lookahead · (t/T)^lookahead_power", minimum=0.0, below=1.0, group="averaging",
           aliases=("lookahead_alpha",)),
    Option("lookahead_power", float, 3.0, "the power of t/T in the lookahead average's decay (0: a constant "
           "decay)", minimum=0.0, group="averaging"),
    Option("snapshots", int, 0, "snapshot ensemble: a cosine schedule with this many restarts, each cycle's "
           "weights saved, the ensemble of the snapshots evaluated on the test split (0: off)", minimum=0,
           group="averaging", aliases=("snapshot_ensemble",)),
    # evaluation
    Option("tta", str, "none", "test-time augmentation for validation and test: none; flip (average the "
           "probabilities of the image and its mirror); flip-translate[:P] (airbench's six views: the image, it "
           "shifted diagonally by ±P pixels (default 1, reflect padding), and their mirrors, weighted 1/4, 1/4 and "
           "1/8 each, their logits averaged); dropout:N (average N passes with dropout active)",
           check=_check_tta, resumable=True, group="evaluation"),
    # run
    Option("seed", int, 0, "seed for initialisation, the validation split, shuffling and augmentation",
           minimum=0, commands=D, group="run", aliases=("random_seed", "random_state")),
    Option("explode_factor", float, 3.0, "stop when the smoothed loss (median of the last 5 steps) exceeds this × the "
           "reference max(initial loss, ln C, 1); a non-finite loss stops at once", minimum=1.0,
           exclusive=True, resumable=True, group="run"),
    Option("diagnostics", int, 100, "every this many iterations record per-layer activation and gradient "
           "statistics (update/weight ratios 10× as often) into diagnostics.json (0: off)", minimum=0,
           resumable=True, group="run"),
    Option("report", str, "on", "draw report.html (plots, the doctor's verdicts) as training goes", ("on", "off"),
           resumable=True, group="run"),
    Option("sync_bn", bool, False, "in an MPI run (mpiexec -n K striate train), BatchNorm statistics over the "
           "global batch of all ranks instead of each rank's part: K ranks then equal one process",
           resumable=True, group="run", aliases=("sync_batchnorm", "syncbn")),
    Option("iterations", int, 300, "length of the doctor's short training run", minimum=1, commands=("doctor",),
           group="run"),
    # fine-tuning (`striate finetune`; recorded so that the run file reproduces the run)
    Option("from", str, "", "the source: a run directory, published weights torchvision:NAME (downloaded once), "
           "or a weights file with --model NAME: a PyTorch .pth/.pt/.safetensors of torchvision's NAME, or a "
           "file of striate's keys (default: none; required)", commands=("finetune",), group="fine-tuning"),
    Option("torch_arch", str, "", "the PyTorch key layout of a --from file whose architecture is not torchvision's: "
           "sequential (an nn.Sequential laid out like the --model, same indices); torchvision's NAME needs only "
           "--model NAME (default: none)", commands=("finetune",), group="fine-tuning"),
    Option("freeze", int, 0, "freeze the first K layers with weights (convolutions and fully-connected layers, each "
           "with the BatchNorm after it; ReLU and pooling are not counted); re-initialised layers stay trainable. "
           "all: the ConvNet as a fixed feature extractor: the CNN codes (the activations before the last Linear) "
           "are computed once, cached under $STRIATE_DATA/codes, and only that last layer trains on them, in "
           "seconds; augmentation, tta and --freeze-layers are refused with it (codes are not images)",
           minimum=0, commands=("finetune",), group="fine-tuning", words=("all",)),
    Option("freeze_layers", list, [], "freeze these layers or parameters by exact name, e.g. 0,3 or "
           "features.0.weight (`striate summary` shows the names)", commands=("finetune",), group="fine-tuning"),
    Option("cast", bool, False, "round float64 weights that float32 cannot hold exactly (default: refuse them)",
           commands=("finetune",), group="fine-tuning"),
    Option("out", str, "", "run directory: a new path or an empty directory, never one holding other files "
           "(default runs/<timestamp>)", group="run",
           aliases=("output", "output_dir", "run_dir", "logdir", "log_dir")),
)
BY_NAME = {o.name: o for o in OPTIONS}


def options(command: str) -> list[Option]:
    """The options `command` takes, in table order."""
    return [o for o in OPTIONS if command in o.commands]


def resumable() -> list[str]:
    return [o.name for o in OPTIONS if o.resumable]


def defaults(command: str = "train") -> dict:
    return {o.name: o.default_for(command) for o in options(command)}


def nearest(name: str, known) -> str | None:
    """The known option `name` most likely meant: one whose alias it is (`learning_rate` → `lr`), else the
    closest spelling."""
    key = name.lstrip("-").replace("-", "_")
    for o in OPTIONS:
        if o.name in known and key in o.aliases:
            return o.name
    hint = difflib.get_close_matches(key, list(known), n=1)
    return hint[0] if hint else None


def unknown_key(name: str, known, where: str, what: str = "key") -> ConfigError:
    """The error for a key nobody declared, with the nearest known one."""
    hint = nearest(name, known)
    maybe = f"; did you mean {hint!r}?" if hint else ""
    return ConfigError(f"{where}: unknown {what} {name!r}{maybe} (known: {', '.join(known)})")


def resolve(values: dict, where: str = "config", base: dict | None = None, command: str = "train",
            recorded: bool = False) -> dict:
    """`base` (default: `command`'s defaults) updated with `values`, each key checked and converted.
    `recorded`: the values are a run directory's record, read back (a data path in it may have moved)."""
    return resolve_with(options(command), values, where, defaults(command) if base is None else base, recorded)


def resolve_with(table, values: dict, where: str, base: dict, recorded: bool = False) -> dict:
    """`base` updated with `values`, each key checked and converted by its option in `table`."""
    known = {o.name: o for o in table}
    out = dict(base)
    for name, value in values.items():
        key = name.replace("-", "_")
        if key not in known:
            raise unknown_key(name, known, where)
        out[key] = known[key].convert(value, where, recorded)
    return out
