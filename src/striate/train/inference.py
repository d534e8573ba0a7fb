"""Batched inference in eval mode, the one home for it: class scores, probabilities and an evaluation
(loss, accuracy, optionally every sample's scores) of a model on arrays or a loader. The model runs
without caches under `no_grad()` and gets its train/eval mode back afterwards.

    scores(model, x)                 (N, C) float scores (any model's outputs, batch by batch)
    probabilities(model, x)          (N, C) float64 softmax
    evaluate(model, loss, data)      {'loss', 'accuracy', 'count'} (+ 'scores', 'labels' with keep=True)

`tta` names a test-time augmentation (see `tta.py`): with "flip" each image and its mirror are classified
and their probabilities averaged; "flip-translate" averages six views' logits, weighted.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from ..data.rows import Rows
from ..nn.losses import softmax
from ..nn.module import Module, no_grad
from .metrics import Evaluation
from .tta import tta_scores

BATCH = 500  # images per forward pass: large enough for BLAS, small enough for memory
BATCH_BYTES = 64 << 20  # at most, float32 bytes of one batch of input: fewer large images (224×224×3: 111)


def rows_per_batch(x, batch_size: int) -> int:
    """`batch_size`, or fewer for large images, so that a batch of x (N, ...) is within BATCH_BYTES of float32
    (images up to 64×64×3 keep batches of 500)."""
    return max(1, min(batch_size, BATCH_BYTES // (4 * max(1, math.prod(x.shape[1:])))))


@contextlib.contextmanager
def inference(model: Module):
    """Eval mode and no caches for the block; the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield model
    finally:
        model.train(was_training)


def batches(data, batch_size: int = BATCH):
    """`data` as (x, y) batches: an (images, labels) pair of arrays (or data.Rows, read and preprocessed a batch
    at a time) is cut into consecutive batches; any other iterable of batches (a loader) passes through."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray | Rows):
        x, y = data
        b = rows_per_batch(x, batch_size)
        return ((x[i:i + b], y[i:i + b]) for i in range(0, len(x), b))  # one batch at a time
    return data


def scores(model: Module, x: np.ndarray, batch_size: int = BATCH, tta: str = "none", transform=None) -> np.ndarray:
    """Class scores (N, C) of images `x` (already preprocessed), or any model's outputs (N, ...) batch by batch
    (a network's body: its CNN codes). `transform(batch)`: applied to each batch of `x` first (raw images →
    the net's input), so that float32 input exists one batch at a time. Batches of large images are smaller
    (`rows_per_batch`)."""
    b = rows_per_batch(x, batch_size)

    def batch(i):
        return x[i:i + b] if transform is None else transform(x[i:i + b])

    with inference(model):
        outs = [tta_scores(model, batch(i), tta) for i in range(0, len(x), b)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def probabilities(model: Module, x: np.ndarray, batch_size: int = BATCH, tta: str = "none") -> np.ndarray:
    """Softmax probabilities (N, C) in float64."""
    s = scores(model, x, batch_size, tta)
    return softmax(s.astype(np.float64)) if s.size else np.zeros((len(x), 0))


def evaluate(model: Module, loss, data, batch_size: int = BATCH, tta: str = "none", keep: bool = False) -> dict:
    """Mean `loss` and accuracy of `model` on `data` (an (images, labels) pair or a loader of batches).
    With `keep`, also every sample's `scores` (N, C) and `labels` (N,)."""
    loss_sum, seen, kept, labels = 0.0, 0, [], []
    with inference(model):
        for x, y in batches(data, batch_size):
            s = tta_scores(model, x, tta)
            value = loss(s, y)
            loss_sum += value if getattr(loss, "reduction", "mean") == "sum" else value * len(y)
            seen += len(y)
            kept.append(s if keep else s.argmax(axis=1))
            labels.append(np.asarray(y))
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    out = Evaluation(loss=loss_sum / seen if seen else math.nan, count=seen)
    if keep:
        s = np.concatenate(kept) if kept else np.zeros((0, 0), np.float32)
        out["scores"], out["labels"] = s, y
        predictions = s.argmax(axis=1) if s.size else np.zeros(0, np.int64)
    else:
        predictions = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    out["accuracy"] = float(np.mean(predictions == y)) if seen else math.nan
    return out
