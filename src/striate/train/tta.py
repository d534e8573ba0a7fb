"""Test-time augmentation: classify several views of each image and average the class probabilities.

    "none": the image itself.
    "flip": the image and its left-right mirror (the views a flip-augmented net was trained on).

The averaged probabilities come back as log-probabilities, so they are valid scores for argmax and for
softmax cross-entropy (softmax(log p) = p).
"""

from __future__ import annotations

import numpy as np

from ..nn.losses import log_softmax

MODES = ("none", "flip")


def check(mode: str) -> str:
    """`mode`, or ValueError naming the known modes."""
    if mode not in MODES:
        raise ValueError(f"test-time augmentation {mode!r} is unknown; choose from {list(MODES)}")
    return mode


def views(x: np.ndarray, mode: str) -> list[np.ndarray]:
    """The views of an NHWC batch `x` that `mode` classifies."""
    if check(mode) == "none":
        return [x]
    if x.ndim != 4:
        raise ValueError(f"test-time augmentation {mode!r} mirrors images (N, H, W, C), got an array of shape "
                         f"{x.shape}")
    return [x, np.ascontiguousarray(x[:, :, ::-1])]


def tta_scores(forward, x: np.ndarray, mode: str) -> np.ndarray:
    """(N, C) scores of `forward` on batch `x`: the raw scores for "none", otherwise the log of the mean
    softmax over the views."""
    batches = views(x, mode)
    if len(batches) == 1:
        return forward(x)
    logp = [log_softmax(forward(v)) for v in batches]
    m = np.max(logp, axis=0)
    mean = np.log(np.mean([np.exp(lp - m) for lp in logp], axis=0)) + m
    return mean.astype(logp[0].dtype, copy=False)
