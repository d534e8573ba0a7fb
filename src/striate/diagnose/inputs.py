"""What the doctor's checks are given: data as arrays, an optimizer factory, and small helpers to
evaluate a model's loss and accuracy without touching its caches or its training state."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np

from ..nn.losses import MulticlassSVM, SoftmaxCrossEntropy
from ..nn.module import Module
from ..train import inference

OptimizerSpec = str | Callable  # a name ('sgd', 'momentum', 'nesterov', 'adam', ...) or f(model, lr) -> Optimizer


def as_arrays(data, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x float, y int) from an (images, labels) pair or an iterable of (x, y) batches (a DataLoader:
    its batches are concatenated until `limit` samples — this advances the loader). uint8 images are
    converted to float32 but NOT rescaled here."""
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape"):
        x, y = data
    else:
        xs, ys, n = [], [], 0
        for xb, yb in data:
            xs.append(np.asarray(xb))
            ys.append(np.asarray(yb))
            n += len(yb)
            if limit is not None and n >= limit:
                break
        if not xs:
            raise ValueError("doctor: the data loader yielded no batches")
        x, y = np.concatenate(xs), np.concatenate(ys)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    y = np.asarray(y)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y.astype(np.int64, copy=False)


def make_optimizer(spec: OptimizerSpec, model: Module, lr: float, momentum: float = 0.9):
    """An optimizer over `model` at learning rate `lr` from a name (`optim.registry`) or a factory
    `f(model, lr)`."""
    from ..optim.registry import build

    if callable(spec):
        return spec(model, lr)
    return build(str(spec).lower(), model, lr, momentum=momentum)


def fresh_copy(model: Module, dropout: bool = True) -> Module:
    """A deep copy with empty caches (the checks train copies; the caller's model is never changed);
    dropout=False switches its dropout off (p = 0) while keeping training mode (BatchNorm's batch statistics)."""
    from ..nn.dropout import DropConnect, Dropout

    m = copy.deepcopy(model)
    m.clear_state()
    if not dropout:
        for layer in m.modules():
            if isinstance(layer, (Dropout, DropConnect)):
                layer.p = 0.0
    return m


def scores_eval(model: Module, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Class scores in eval mode, no caches; the model's training flag is restored."""
    return inference.scores(model, x, batch)


def loss_and_accuracy(model: Module, loss, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    s = scores_eval(model, x)
    return float(loss(s, y)), float(np.mean(s.argmax(axis=1) == y))


def chance_loss(loss, num_classes: int) -> float | None:
    """The loss of all-equal scores: ln C (softmax), (C − 1)·margin (multiclass SVM); None if unknown."""
    if isinstance(loss, SoftmaxCrossEntropy):
        return math.log(num_classes)
    if isinstance(loss, MulticlassSVM):
        return (num_classes - 1) * loss.margin
    return None
