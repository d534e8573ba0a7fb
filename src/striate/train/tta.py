"""Test-time augmentation: classify several views of each image and average the class probabilities (or, for
flip-translate, the logits).

    "none":       the image itself.
    "flip":       the image and its left-right mirror (the views a flip-augmented net was trained on).
    "flip-translate[:P]": airbench's six views — the image and its mirror (weights 1/4 each), and the image
                  reflect-padded by P (default 1) cropped back at offsets (0, 0) and (2P, 2P), i.e. shifted by P
                  pixels down-right and up-left, each with its mirror (1/8 each). Their LOGITS are averaged with
                  those weights, as airbench does; flip averages probabilities instead.
    "dropout:N":  N stochastic forward passes with the dropout layers active (everything else in eval mode),
                  the notes' E_z[f(x, z)] estimated by Monte Carlo instead of the inverted-dropout scaling.
                  The passes draw from copies of the layers' generators, so they never change a run's
                  training randomness.

The averaged probabilities come back as log-probabilities, so they are valid scores for argmax and for
softmax cross-entropy (softmax(log p) = p); flip-translate's scores are the weighted mean of the raw scores.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np

from ..nn.dropout import DropConnect, Dropout, Dropout2d
from ..nn.losses import log_softmax
from ..nn.module import Module

MODES = ("none", "flip", "flip-translate[:P]", "dropout:N")
_TRANSLATE = "flip-translate"
_STOCHASTIC = (Dropout, Dropout2d, DropConnect)


def check(mode: str) -> str:
    """`mode`, or ValueError naming the known modes."""
    if mode in ("none", "flip", _TRANSLATE):
        return mode
    counted = {"dropout": (2, "passes, e.g. dropout:10"), _TRANSLATE: (1, "pixels, e.g. flip-translate:1")}
    kind, _, text = mode.partition(":") if isinstance(mode, str) else ("", "", "")
    if kind in counted:
        least, example = counted[kind]
        if text.isdigit() and int(text) >= least:
            return mode
        raise ValueError(f"test-time augmentation {mode!r}: write {kind}:N with N ≥ {least} {example}")
    raise ValueError(f"test-time augmentation {mode!r} is unknown; choose from {', '.join(MODES)}")


def averages_logits(mode: str) -> bool:
    """Whether `mode` averages its views' raw scores (flip-translate) rather than their probabilities."""
    return check(mode).startswith(_TRANSLATE)


def weighted_views(x: np.ndarray, mode: str) -> list[tuple[np.ndarray, float]]:
    """(view, weight) pairs of an NHWC batch `x` for `mode`, the weights summing to 1: [(x, 1)] for none and
    dropout:N; x and its mirror for flip; flip-translate:P's six views (module docstring). Views are contiguous
    (N, H, W, C) copies of x's dtype."""
    if check(mode) == "none" or mode.startswith("dropout:"):
        return [(x, 1.0)]
    if x.ndim != 4:
        raise ValueError(f"test-time augmentation {mode!r} mirrors images (N, H, W, C), got an array of shape "
                         f"{x.shape}")
    mirror = np.ascontiguousarray(x[:, :, ::-1])
    if mode == "flip":
        return [(x, 0.5), (mirror, 0.5)]
    p = int(mode.split(":", 1)[1]) if ":" in mode else 1
    h, w = x.shape[1:3]
    if p >= min(h, w):
        raise ValueError(f"test-time augmentation {mode!r}: reflect padding by {p} needs images larger than {p} "
                         f"pixels, got {h}×{w}")
    pairs = [(x, 0.25), (mirror, 0.25)]
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")  # torch's F.pad(..., "reflect")
    for o in (0, 2 * p):  # airbench: 0.5 · the pair above + 0.5 · the mean of these two pairs
        t = np.ascontiguousarray(padded[:, o:o + h, o:o + w])
        pairs += [(t, 0.125), (np.ascontiguousarray(t[:, :, ::-1]), 0.125)]
    return pairs


def views(x: np.ndarray, mode: str) -> list[np.ndarray]:
    """The views of an NHWC batch `x` that `mode` classifies (`weighted_views` without the weights)."""
    return [v for v, _ in weighted_views(x, mode)]


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
    """(N, C) scores of `model` (in eval mode) on batch `x`: the raw scores for "none", the weighted mean of the
    views' raw scores for flip-translate, otherwise the log of the mean softmax over the views or the passes."""
    if check(mode).startswith("dropout:"):
        passes = int(mode.split(":", 1)[1])
        with _dropout_active(model) as layers:
            if not layers:
                raise ValueError(f"test-time augmentation {mode!r}: the model has no dropout layer to sample")
            return _mean_log_prob([log_softmax(model.forward(x)) for _ in range(passes)])
    pairs = weighted_views(x, mode)
    if len(pairs) == 1:
        return model.forward(x)
    if averages_logits(mode):
        return sum(np.float32(w) * model.forward(v) for v, w in pairs)
    return _mean_log_prob([log_softmax(model.forward(v)) for v, _ in pairs])
