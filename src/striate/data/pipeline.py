"""The input pipelines a run names by string (`--preprocess`, `--augment`): the one table from those names to
steps, and `Preprocessing`, the fitted steps from uint8 images to a network's input.

    PREPROCESS  name → what follows Scale(1/255): scale (nothing), mean-image, per-channel-mean, standardize
    AUGMENT     name → the augmentation for images of a shape: crop (pad by 1/8 of the side, crop back), flip
"""

from __future__ import annotations

import numpy as np

from .augment import RandomCrop, RandomFlip
from .errors import DataError
from .preprocess import MeanImage, PerChannelMean, PerChannelStandardize, Preprocessor, Scale

PREPROCESS: dict[str, tuple[type[Preprocessor], ...]] = {
    "scale": (), "mean-image": (MeanImage,), "per-channel-mean": (PerChannelMean,),
    "standardize": (PerChannelStandardize,),
}
AUGMENT = {
    "crop": lambda h, w: RandomCrop((h, w), padding=max(1, min(h, w) // 8)),
    "flip": lambda h, w: RandomFlip(),
}
_ANY_SIZE = (Scale, PerChannelMean, PerChannelStandardize)  # statistics per channel, not per pixel


def augmentation(names: list[str], shape: tuple[int, int, int]) -> list:
    """The augmentation steps `names` for images of `shape` (H, W, C)."""
    h, w, _ = shape
    unknown = [n for n in names if n not in AUGMENT]
    if unknown:
        raise DataError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENT)}")
    return [AUGMENT[n](h, w) for n in names]


class Preprocessing:
    """Fitted preprocessing steps (scikit-learn style): `fit` on the training images only, then apply to any
    split with `p(x)` (also usable as a loader transform); `state()` / `from_state()` save and restore the
    learned statistics with a checkpoint, so inference repeats exactly what training did."""

    def __init__(self, steps: list[Preprocessor]):
        self.steps = list(steps)

    @classmethod
    def named(cls, name: str) -> Preprocessing:
        """Scale(1/255) and the steps `name` adds (unfitted)."""
        if name not in PREPROCESS:
            raise DataError(f"unknown preprocessing {name!r}; choose from {', '.join(PREPROCESS)}")
        return cls([Scale(1 / 255), *(step() for step in PREPROCESS[name])])

    @classmethod
    def from_state(cls, states: list[dict]) -> Preprocessing:
        if not isinstance(states, list):
            raise DataError(f"preprocessing state must be a list of steps, got {type(states).__name__}")
        return cls([Preprocessor.from_state_dict(s) for s in states])

    def state(self) -> list[dict]:
        return [s.state_dict() for s in self.steps]

    def fit(self, x: np.ndarray) -> Preprocessing:
        for s in self.steps:
            x = s.fit_transform(x)
        return self

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for s in self.steps:
            x = s.transform(x)
        return x

    def any_size(self, images: np.ndarray, what: str = "image") -> np.ndarray:
        """The steps applied to images of another size than the training images (dense evaluation): steps
        with per-channel statistics apply to any size; a mean image cannot, and is an error."""
        x = images.astype(np.float32)
        for s in self.steps:
            if not isinstance(s, _ANY_SIZE):
                raise DataError(f"{what}: the run's {type(s).__name__} preprocessing is fitted at the training "
                                "size; evaluating other sizes needs per-channel preprocessing (scale, "
                                "per-channel-mean, standardize)")
            x = s._transform(x).astype(np.float32, copy=False)
        return x

    def __repr__(self) -> str:
        return f"Preprocessing({', '.join(repr(s) for s in self.steps)})"
