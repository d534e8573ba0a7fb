"""`striate finetune --freeze all`: the ConvNet as a fixed feature extractor. The notes: "take a ConvNet pretrained
on ImageNet, remove the last fully-connected layer, then treat the rest of the ConvNet as a fixed feature extractor
for the new dataset". The network splits into its body (every layer before its last Linear) and that Linear, the
head; the body's CNN codes of the training and validation images are computed once (`run.codes`, cached on disk)
and the head alone trains on them, with the run's loss (softmax or svm), optimizer, schedule, epochs and callbacks.
The trainer's model is the network seen through `HeadOnCodes`: checkpoints hold the whole network (body and head)
under its own names, so `striate eval`, `predict` and `train --resume` use the run as any other; the test split
is evaluated through the whole network.

The one difference from `--freeze K` with every layer but the head frozen: there the body runs in training mode,
so its dropout is active and its BatchNorm normalises with each batch's statistics (and moves its running ones);
here the codes are the body's test-time activations (dropout off, running statistics), as the notes' CNN codes
are. Without dropout or BatchNorm in the body the two train the same head, within float32 rounding.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .. import console
from ..nn.module import Module
from . import config as cfg

ALL = "all"  # --freeze all


def check(config: dict) -> None:
    """Options that cannot go with --freeze all, refused before any work (a usage error)."""
    if config.get("freeze") != ALL:
        return
    why = "the head trains on CNN codes computed once, not on images"
    if config["augment"]:
        raise cfg.ConfigError(f"--freeze all cannot augment ({', '.join(config['augment'])}): {why}; drop the "
                              "augmentation, or fine-tune with --freeze K to augment the images")
    if config["tta"] != "none":
        raise cfg.ConfigError(f"--freeze all takes no --tta ({config['tta']!r}): {why}, and validated on codes")
    if config["freeze_layers"]:
        raise cfg.ConfigError("--freeze all freezes every layer but the last already: drop --freeze-layers")


def split(model: Module) -> tuple[Module, Module, str]:
    """(body, head, head's name): `model` without its last Linear layer (a Sequential over the same layer objects,
    nested Sequentials opened from the end), that layer, and its dotted name; ConfigError when the network does
    not end with a Linear layer."""
    from ..nn.containers import Sequential
    from ..nn.linear import Linear

    layers, node = [], model
    while isinstance(node, Sequential) and len(node):
        *before, node = list(node)
        layers += before
    if not isinstance(node, Linear):
        raise cfg.ConfigError(f"--freeze all needs a network whose last layer is fully connected (a Linear, the head "
                              f"that trains on the codes); this one ends with {node.describe()}")
    name = next(n for n, m in model.named_modules() if m is node)
    return Sequential(*layers), node, name


def frozen_layers(model: Module, freeze):
    """`freeze` as `run.transfer.transfer` takes it: for 'all', every layer with weights but the head (the last)."""
    if freeze != ALL:
        return freeze
    split(model)  # a network without a Linear head is refused before any weight is loaded
    return len(model.weighted_layers()) - 1


class HeadOnCodes(Module):
    """The trainer's model with --freeze all: `forward(codes (N, D)) -> scores (N, C)` and `backward` run the head
    alone, while every traversal (parameters, buffers, modules, state_dict, load_state_dict, train/eval) is the whole
    network's, so the optimizer, weight averaging, checkpoints and a resume see the network under its own names,
    and a checkpoint holds body and head."""

    def __init__(self, network: Module, head: Module):
        super().__init__()
        object.__setattr__(self, "network", network)  # not registered as a child: its names stay the network's
        object.__setattr__(self, "head", head)

    @property
    def build_config(self):
        return self.network.build_config

    @property
    def dtype(self):
        return self.network.dtype

    def named_modules(self, prefix: str = ""):
        return self.network.named_modules(prefix)

    def modules(self):
        return self.network.modules()

    def children(self):
        return self.network.children()

    def named_children(self):
        return self.network.named_children()

    def train(self, mode: bool = True) -> HeadOnCodes:
        object.__setattr__(self, "training", mode)
        self.network.train(mode)
        return self

    def forward(self, x):
        return self.head.forward(x)

    def backward(self, dy):
        self.head.requires_input_grad = self.requires_input_grad  # the codes' gradient is never wanted
        return self.head.backward(dy)

    def output_shape(self, input_shape):
        return self.head.output_shape(input_shape)

    def macs(self, input_shape):
        return self.head.macs(input_shape)

    def describe(self) -> str:
        return f"{self.head.describe()} on the CNN codes of {self.network.describe()}"

    def __repr__(self) -> str:
        return f"HeadOnCodes({self.describe()})"


def _as_vectors(x, rng=None):
    """A loader batch of codes (B, 1, 1, D) as the (B, D) the head takes (the loader holds them as 1×1 images)."""
    return x.reshape(len(x), -1)


def _codes(run, body, images: np.ndarray, what: str, key: str) -> np.ndarray:
    from . import codes

    console.note(f"CNN codes of the {len(images):,} {what} images …")
    start = time.perf_counter()
    out, path, cached = codes.cached_codes(body, run.preprocess, images, key)
    took = f"{time.perf_counter() - start:.1f}s"
    console.note(f"  {f'read from {path}' if cached else f'computed in {took} and cached in {path}'}")
    return out


def train_on_codes(run, reinitialised=()):
    """`run` (a built `run.Run` whose model has every layer but its head frozen: `frozen_layers`) made to train the
    head on the CNN codes: the codes of its training and validation images (cached), a loader over them that
    shuffles exactly as the run's image loader would (same seed, same order), and `HeadOnCodes` as the trainer's
    model. `reinitialised`: the transfer's re-initialised layers ({'layer', 'class', 'reason'}); one of them in the
    body is refused (a fixed feature extractor with random layers). Returns the new Run."""
    from . import codes
    from .build import train_loader

    body, head, head_name = split(run.model)
    fresh = [r for r in reinitialised if r["layer"] != head_name]
    if fresh:
        r = fresh[0]
        raise cfg.ConfigError(f"--freeze all keeps the body fixed, but its layer {r['layer']} {r['class']} could not "
                              f"be transferred ({r['reason']}) and would compute the codes with random weights: give "
                              "the images the source's size (--image-size), or train it with --freeze K")
    key = codes.model_digest(body, run.preprocess)
    data, config = run.data, run.config
    train = _codes(run, body, data.train_x, "training", key)
    val = None if data.val_x is None else (_codes(run, body, data.val_x, "validation", key), data.val_y)
    # as `run.build` makes the image loader: the same order
    loader = train_loader(config, train.reshape(len(train), 1, 1, -1), data.train_y, _as_vectors)
    run.trainer.model = HeadOnCodes(run.model, head)
    console.note(f"training layer {head_name} {head.describe()} on {train.shape[1]}-dimensional CNN codes; the body's "
                 f"{len(run.model.weighted_layers()) - 1} layers with weights stay fixed")
    return replace(run, train_loader=loader, val=val)
