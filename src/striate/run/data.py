"""A run's data: the training split less a seeded validation fraction (optionally limited), and the test
split when the dataset has one. The same seed always holds out the same images, so a resume, an
evaluation of `--split val` and the run itself agree on which images were seen; each split keeps where its
images came from (`Sources`: their files, or the dataset and position), so a result leads back to them.

The parts are data.Rows: positions into the loaded split's images (an image folder's memory-mapped cache, or
an in-memory array), read a batch at a time, so a run's memory does not grow with its data set."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import config as cfg

SPLIT, INIT, LOADER = 1, 2, 3  # sub-seeds of the run seed, one stream per consumer


class NoHeldOut(cfg.ConfigError):
    """`--split val` where there are no held-out images (the run held out none, or another dataset): a
    ConfigError (exit 2), which `eval --split all` catches to leave the split out."""

    split = "val"


@dataclass
class Data:
    train_x: object  # data.Rows (N, H, W, C) uint8, read when indexed
    train_y: np.ndarray
    val_x: object | None  # data.Rows
    val_y: np.ndarray | None
    test: object | None  # a data.Dataset
    classes: list[str]
    shape: tuple[int, int, int]
    name: str = ""
    skipped: list = field(default_factory=list)  # unreadable files left out: (path, reason)
    train_sources: object | None = None  # a data.Sources aligned with train_x (and val_x): each image's origin
    val_sources: object | None = None


def load_data(config: dict) -> Data:
    """Train split (less a seeded validation fraction, optionally limited) and the test split if any. A data
    path that is not there (a run's data that moved) is a ConfigError suggesting --data."""
    from ..data import Rows
    from ..data.datasets import NAMES, MissingSplit, load

    name = config["data"]
    if cfg.data_missing(name):
        raise cfg.ConfigError(f"the run's data {name!r} is not there (moved or deleted?): give its new place with "
                              "--data PATH")
    options = {**image_options(config), "strict": config.get("strict", False)}
    try:
        train = load(name, "train", **options)
    except MissingSplit:
        if name in NAMES or not os.path.isdir(name):
            raise
        train = load(name, None, **options)  # a folder of <class>/ images without train/test splits
        test = None
    else:
        try:
            test = load(name, "test", **options)
        except MissingSplit:
            test = None
    train, test = named_classes(train, config), test if test is None else named_classes(test, config)
    x, y = train.images, train.labels
    order = np.random.default_rng([config["seed"], SPLIT]).permutation(len(x))
    if config["limit"]:
        order = order[:config["limit"]]
    n_val = int(round(len(order) * config["val_fraction"]))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    if len(train_idx) == 0:
        raise cfg.ConfigError(f"no training images left after limit = {config['limit']} and "
                              f"val_fraction = {config['val_fraction']}")
    sources = train.sources
    return Data(Rows(x, train_idx), y[train_idx], Rows(x, val_idx) if n_val else None, y[val_idx] if n_val else None,
                test, list(train.classes), tuple(train.shape), name=name,
                skipped=[*train.skipped, *(test.skipped if test is not None else [])],
                train_sources=sources.take(train_idx), val_sources=sources.take(val_idx) if n_val else None)


def image_options(config: dict) -> dict:
    """`load`'s size, mode and shorter_side for the run's images (image_size, shorter_side), checked."""
    size, mode = cfg.parse_size(config.get("image_size", ""))
    shorter = config.get("shorter_side", 0)
    if shorter and (size is None or shorter < max(size)):
        raise cfg.ConfigError(f"shorter_side = {shorter} crops image_size, which it needs at most as large: "
                              f"image_size = {config.get('image_size', '')!r}")
    return {"size": size, "mode": mode, "shorter_side": shorter}


def named_classes(ds, config: dict):
    """The dataset with the run's class list when the configuration names one (classes = "imagenet": the
    1000 ImageNet classes, in the published heads' order): each class folder is mapped to its class by name,
    the labels renumbered. Unchanged otherwise."""
    import dataclasses
    import difflib

    if config.get("classes", "data") != "imagenet":
        return ds
    from ..models.pretrained import imagenet_classes

    names = list(imagenet_classes())
    index = {n: i for i, n in enumerate(names)}
    unknown = [c for c in ds.classes if c not in index]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], names, n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise cfg.ConfigError(f"classes = 'imagenet': the class folder {unknown[0]!r}{maybe} of {config['data']!r} "
                              f"is not an ImageNet class name ({len(unknown)} of {len(ds.classes)} are not): name "
                              "each folder after one of the 1000 (striate/models/imagenet_classes.txt)")
    lut = np.array([index[c] for c in ds.classes], dtype=np.int64)
    return dataclasses.replace(ds, labels=lut[ds.labels], classes=names)


def default_model(data: str) -> str:
    return "digits_net" if data == "digits" else "three_layer"


SPLITS = ("train", "val", "test")


def _same_place(a: str, b: str) -> bool:
    return a == b or (not cfg.is_dataset_name(a) and not cfg.is_dataset_name(b)
                      and os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b)))


def split_arrays(config: dict, split: str, data: str | None = None):
    """(images uint8 (an array, memory map or data.Rows: index it, do not convert it whole), labels, classes,
    sources) of one split as the run `config` saw it: 'train' without the
    held-out images, 'val' exactly those, 'test' the dataset's test split; `sources` (a data.Sources) says
    where each image came from. With `data`: the run's own data at this new place when its recorded place is
    gone (or `data` is that place), else another dataset and its own 'train' or 'test' split."""
    from ..data import load
    from ..data.datasets import MissingSplit

    if split not in SPLITS:
        raise cfg.ConfigError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}, all")
    if data is not None and (_same_place(data, config["data"]) or cfg.data_missing(config["data"])):
        config, data = {**config, "data": data}, None  # the run's own data, moved
    if data is not None:
        if split == "val":
            raise NoHeldOut(f"--split val is the run's own held-out part of its data; --data {data!r} has "
                            "none (use train or test)")
        ds = named_classes(load(data, split, **image_options(config)), {**config, "data": data})
        return ds.images, ds.labels, list(ds.classes), ds.sources
    d = load_data(config)
    if split == "train":
        return d.train_x, d.train_y, d.classes, d.train_sources
    if split == "val":
        if d.val_x is None:
            raise NoHeldOut(f"the run held out no validation images (val_fraction = {config['val_fraction']})")
        return d.val_x, d.val_y, d.classes, d.val_sources
    if d.test is None:
        instead = "its held-out images with --split val" if d.val_x is not None else "--split train"
        raise MissingSplit(f"dataset {config['data']!r} has no test split: evaluate {instead}", "test")
    return d.test.images, d.test.labels, list(d.test.classes), d.test.sources
