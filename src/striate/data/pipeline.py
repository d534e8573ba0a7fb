"""The input pipelines a run names by string (`--preprocess`, `--augment`): the one table from those names to
steps, and `Preprocessing`, the fitted steps from uint8 images to a network's input.

    PREPROCESS  name → what follows Scale(1/255): scale (nothing), mean-image, per-channel-mean, standardize
                (per channel), per-image-standardize (each image by its own mean and std), per-pixel-standardize
                (each input dimension over the training set), imagenet and inception (published weights'
                fixed per-channel mean and std, `preprocess.FIXED_STATISTICS`), and the notes' PCA and
                whitening: pca (the top `n_components` principal components), whiten (those divided by
                √(eigenvalue + eps)), zca (the whitened data rotated back to image space)
    AUGMENT     name → the augmentation for images of a shape: crop (zero-pad by 1/8 of the side, crop back), flip,
                translate (`translate:P`: shift by up to P pixels, reflect padding; P = 1/16 of the shorter
                side, at least 1, without :P — 2 at 32×32), altflip (airbench's alternating flip); `noise:σ`
                adds Gaussian noise of std σ after the preprocessing (input-noise regularisation)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .augment import AlternatingFlip, GaussianNoise, RandomCrop, RandomFlip, RandomTranslate
from .errors import DataError
from .preprocess import (
    FIXED_STATISTICS,
    PCA,
    FixedStandardize,
    MeanImage,
    PerChannelMean,
    PerChannelStandardize,
    PerImageStandardize,
    PerPixelStandardize,
    Preprocessor,
    Scale,
    Whitening,
)
from .rows import Rows, row_chunks, take_rows

# name → f(n_components (None: all), eps) → the steps after Scale(1/255)
PREPROCESS: dict[str, Callable[[int | None, float], tuple[Preprocessor, ...]]] = {
    "scale": lambda k, eps: (), "mean-image": lambda k, eps: (MeanImage(),),
    "per-channel-mean": lambda k, eps: (PerChannelMean(),), "standardize": lambda k, eps: (PerChannelStandardize(),),
    "per-image-standardize": lambda k, eps: (PerImageStandardize(),),
    "per-pixel-standardize": lambda k, eps: (PerPixelStandardize(),),
    **{name: (lambda k, eps, s=stats: (FixedStandardize(*s),)) for name, stats in FIXED_STATISTICS.items()},
    "pca": lambda k, eps: (PCA(k),), "whiten": lambda k, eps: (Whitening("pca", eps, k),),
    "zca": lambda k, eps: (Whitening("zca", eps),),
}
VECTORS = ("pca", "whiten")  # the preprocessings that turn an image into a vector (n_components applies)
MAX_FEATURES = 12288  # values per image PCA and whitening take (64×64×3): their D×D covariance, 1.1 GiB here
AUGMENT = {
    "crop": lambda h, w: RandomCrop((h, w), padding=max(1, min(h, w) // 8)),
    "flip": lambda h, w: RandomFlip(),
    "translate": lambda h, w: RandomTranslate(max(1, min(h, w) // 16)),  # 2 pixels at 32×32, as airbench
    "altflip": lambda h, w: AlternatingFlip(),
}
AUGMENT_CHOICES = ", ".join([*AUGMENT, "translate:P", "noise:σ"])  # what an error or a help text offers
# no per-pixel statistics: they apply to images of any size
_ANY_SIZE = (Scale, FixedStandardize, PerChannelMean, PerChannelStandardize, PerImageStandardize)


def parse_augment(name: str) -> tuple[str, float | None]:
    """(kind, value) of one augmentation name: (name, None) for a name of AUGMENT, ("translate", P) for
    `translate:P` (P int ≥ 1 pixels), ("noise", σ) for `noise:σ` (σ finite > 0); DataError for an unknown or a
    malformed name."""
    kind, sep, text = str(name).partition(":")
    if not sep and name in AUGMENT:
        return name, None
    if kind == "noise":
        try:
            sigma = float(text)
        except ValueError:
            raise DataError(f"augmentation {name!r}: write noise:σ, e.g. noise:0.1") from None
        if not 0 < sigma < math.inf:  # NaN fails both
            raise DataError(f"augmentation {name!r}: σ must be a finite number > 0")
        return kind, sigma
    if kind == "translate" and sep:
        if not text.strip().isdigit() or int(text) < 1:
            raise DataError(f"augmentation {name!r}: write translate:P with P ≥ 1 pixels, e.g. translate:2")
        return kind, int(text)
    raise DataError(f"unknown augmentation {name!r}; choose from {AUGMENT_CHOICES}")


def check_augment(names: list[str]) -> list[tuple[str, float | None]]:
    """Each name parsed (`parse_augment`), and names that contradict each other refused: flip draws a fresh
    flip every epoch, altflip alternates a fixed one."""
    parsed = [parse_augment(n) for n in names]
    kinds = {k for k, _ in parsed}
    if {"flip", "altflip"} <= kinds:
        raise DataError("augmentations flip and altflip contradict each other (a random flip every epoch, or a "
                        "fixed one alternated by epoch): give one")
    return parsed


def augmentation(names: list[str], shape: tuple[int, int, int]) -> tuple[list, list]:
    """The augmentation steps `names` for images of `shape` (H, W, C): (steps on the raw images, steps after
    the preprocessing — the input noise)."""
    h, w, _ = shape
    before, after = [], []
    for kind, value in check_augment(names):
        if kind == "noise":
            after.append(GaussianNoise(value))
        else:
            before.append(RandomTranslate(int(value)) if kind == "translate" and value else AUGMENT[kind](h, w))
            if kind == "translate" and before[-1].pad >= min(h, w):
                raise DataError(f"augmentation translate:{before[-1].pad}: reflect padding needs images larger "
                                f"than {before[-1].pad} pixels, these are {h}×{w}")
    return before, after


class Preprocessing:
    """Fitted preprocessing steps (scikit-learn style): `fit` on the training images only, then apply to any
    split with `p(x)` (also usable as a loader transform); `state()` / `from_state()` save and restore the
    learned statistics with a checkpoint, so inference repeats exactly what training did."""

    def __init__(self, steps: list[Preprocessor]):
        self.steps = list(steps)

    @classmethod
    def named(cls, name: str, n_components: int = 0, eps: float = 1e-5) -> Preprocessing:
        """Scale(1/255) and the steps `name` adds (unfitted); `n_components` (0: all) for pca and whiten, `eps`
        for whiten and zca."""
        if name not in PREPROCESS:
            raise DataError(f"unknown preprocessing {name!r}; choose from {', '.join(PREPROCESS)}")
        if n_components and name not in VECTORS:
            raise DataError(f"n_components = {n_components} goes with preprocess {' or '.join(VECTORS)}, not {name!r}")
        return cls([Scale(1 / 255), *PREPROCESS[name](n_components or None, eps)])

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-sample shape a network receives for images of `shape` (H, W, C), known before fitting: the
        same, or (1, 1, k) after pca / whiten (a vector of k values as a 1×1 image of k channels, so networks
        keep their (N, H, W, C) input). DataError when the images cannot take the steps."""
        size = math.prod(shape)
        for s in self.steps:
            if isinstance(s, PCA | Whitening):
                if size > MAX_FEATURES:
                    raise DataError(f"{type(s).__name__} of {'×'.join(map(str, shape))} images: {size:,} values per "
                                    f"image need a {size:,}² covariance; at most {MAX_FEATURES:,} (resize with "
                                    "image_size, e.g. 32x32)")
                k = s.n_components or size
                if k > size:
                    raise DataError(f"n_components = {k} exceeds the {size} values of a "
                                    f"{'×'.join(map(str, shape))} image")
                if not (isinstance(s, Whitening) and s.kind == "zca"):
                    shape, size = (1, 1, k), k
        return tuple(shape)

    @classmethod
    def from_state(cls, states: list[dict]) -> Preprocessing:
        if not isinstance(states, list):
            raise DataError(f"preprocessing state must be a list of steps, got {type(states).__name__}")
        return cls([Preprocessor.from_state_dict(s) for s in states])

    def state(self) -> list[dict]:
        return [s.state_dict() for s in self.steps]

    def fit(self, x) -> Preprocessing:
        """Fit the steps in order on the training images x (N, H, W, C): an ndarray, a memory map or data.Rows,
        read in chunks (`row_chunks`), never converted whole. A step with statistics takes one pass over x,
        each chunk through the steps before it (one pass in all for every named preprocessing); a step
        without learns its input shape from one image."""
        self.output_shape(tuple(x.shape[1:]))  # images too large for a covariance fail before it is built
        if not len(x):
            raise DataError(f"Preprocessing.fit: expected a non-empty batch (N, ...), got shape {tuple(x.shape)}")
        for i, s in enumerate(self.steps):
            before = Preprocessing(self.steps[:i])
            if s.needs_fit:
                s.fit_batches(before.steps_on(c) for c in row_chunks(x))
            else:
                s.fit(before.steps_on(take_rows(x, slice(0, 1))))
        return self

    def steps_on(self, x: np.ndarray) -> np.ndarray:
        """The steps applied to a batch, keeping the steps' own output shape (no vector-as-image reshape)."""
        for s in self.steps:
            x = s.transform(x)
        return x

    def lazy(self, images) -> Rows:
        """`images` (N, H, W, C: an ndarray, a memory map or Rows) preprocessed batch by batch as they are read:
        a Rows whose batches are `self(batch)`, for evaluating a split without a float32 copy of it."""
        rows = images if isinstance(images, Rows) else Rows(images)
        return rows.map(self)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = self.steps_on(x)
        return x.reshape(len(x), 1, 1, -1) if x.ndim == 2 else x  # a vector as a 1×1 image (`output_shape`)

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
