"""Test-time augmentation: classify several views of each image and average the class probabilities.

    "none":       the image itself.
    "flip":       the image and its left-right mirror (the views a flip-augmented net was trained on).
    "dropout:N":  N stochastic forward passes with the dropout layers active (everything else in eval mode),
                  the notes' E_z[f(x, z)] estimated by Monte Carlo instead of the inverted-dropout scaling.
                  The passes draw from copies of the layers' generators, so they never change a run's
                  training randomness.

The averaged probabilities come back as log-probabilities, so they are valid scores for argmax and for
softmax cross-entropy (softmax(log p) = p).
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np

from ..nn.dropout import DropConnect, Dropout, Dropout2d
from ..nn.losses import log_softmax
from ..nn.module import Module

MODES = ("none", "flip", "dropout:N")
_STOCHASTIC = (Dropout, Dropout2d, DropConnect)


def check(mode: str) -> str:
    """`mode`, or ValueError naming the known modes."""
    if mode in ("none", "flip"):
        return mode
    if isinstance(mode, str) and mode.startswith("dropout:"):
        try:
            n = int(mode.split(":", 1)[1])
        except ValueError:
            n = 0
        if n >= 2:
            return mode
        raise ValueError(f"test-time augmentation {mode!r}: write dropout:N with N ≥ 2 passes, e.g. dropout:10")
    raise ValueError(f"test-time augmentation {mode!r} is unknown; choose from none, flip, dropout:N")


def views(x: np.ndarray, mode: str) -> list[np.ndarray]:
    """The views of an NHWC batch `x` that the mirror modes classify."""
    if check(mode) != "flip":
        return [x]
    if x.ndim != 4:
        raise ValueError(f"test-time augmentation {mode!r} mirrors images (N, H, W, C), got an array of shape "
                         f"{x.shape}")
    return [x, np.ascontiguousarray(x[:, :, ::-1])]


def _mean_log_prob(logps: list[np.ndarray]) -> np.ndarray:
    m = np.max(logps, axis=0)
    mean = np.log(np.mean([np.exp(lp - m) for lp in logps], axis=0)) + m
    return mean.astype(logps[0].dtype, copy=False)


@contextlib.contextmanager
def _dropout_active(model: Module):
    """The dropout layers in training mode, drawing from copies of their generators; restored after."""
    layers = [m for m in model.modules() if isinstance(m, _STOCHASTIC)]
    saved = [(m, m.training, m.rng) for m in layers]
    try:
        for m in layers:
            object.__setattr__(m, "training", True)
            object.__setattr__(m, "rng", copy.deepcopy(m.rng))
        yield layers
    finally:
        for m, training, rng in saved:
            object.__setattr__(m, "training", training)
            object.__setattr__(m, "rng", rng)


def tta_scores(model: Module, x: np.ndarray, mode: str) -> np.ndarray:
    """(N, C) scores of `model` (in eval mode) on batch `x`: the raw scores for "none", otherwise the log of
    the mean softmax over the views or the stochastic passes."""
    if check(mode).startswith("dropout:"):
        passes = int(mode.split(":", 1)[1])
        with _dropout_active(model) as layers:
            if not layers:
                raise ValueError(f"test-time augmentation {mode!r}: the model has no dropout layer to sample")
            return _mean_log_prob([log_softmax(model.forward(x)) for _ in range(passes)])
    batches = views(x, mode)
    if len(batches) == 1:
        return model.forward(x)
    return _mean_log_prob([log_softmax(model.forward(v)) for v in batches])
