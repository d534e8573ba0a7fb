"""Batch augmentations, vectorised over the batch: each is `aug(x, rng) -> x'` for x (N, H, W, C).

They draw from the generator they are handed (the loader's: a np.random.Generator, or a KeyedRandom in a keyed
loader), keep the input's dtype and never modify the input in place.
"""

from __future__ import annotations

import numpy as np

from ..kernels.keyed_random import KeyedRandom
from .errors import DataError


def _check_batch(x: np.ndarray, who: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise DataError(f"{who}: expected a batch (N, H, W, C), got {getattr(x, 'shape', type(x).__name__)}")


def _windows(x: np.ndarray, p: int, size: tuple[int, int], mode: str, rng, who: str) -> np.ndarray:
    """Pad x (N, H, W, C) by `p` on each side (np.pad `mode`), then take a `size` window per sample at offsets
    drawn uniformly (rows first, then columns) — by fancy indexing, no per-sample loop."""
    n, h, w, _ = x.shape
    sh, sw = size
    if sh > h + 2 * p or sw > w + 2 * p:
        raise DataError(f"{who}: crop {size} larger than padded image ({h + 2 * p}, {w + 2 * p})")
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode) if p else x
    oy = rng.integers(0, h + 2 * p - sh + 1, size=n)
    ox = rng.integers(0, w + 2 * p - sw + 1, size=n)
    rows = oy[:, None, None] + np.arange(sh)[None, :, None]  # (N, sh, 1)
    cols = ox[:, None, None] + np.arange(sw)[None, None, :]  # (N, 1, sw)
    return xp[np.arange(n)[:, None, None], rows, cols]


class RandomCrop:
    """Zero-pad by `padding` on each side, then crop a random `size` window per sample (same window for all
    channels). x: (N, H, W, C) -> (N, size_h, size_w, C). Offsets are drawn uniformly for every sample at once
    and applied by fancy indexing, so there is no per-sample loop."""

    def __init__(self, size: int | tuple[int, int], padding: int = 0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1 or padding < 0:
            raise DataError(f"RandomCrop: bad size {size!r} or padding {padding!r}")
        self.padding = int(padding)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(x, "RandomCrop")
        return _windows(x, self.padding, self.size, "constant", rng, "RandomCrop")

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomTranslate:
    """Shift each sample by up to `pad` pixels along each axis (airbench's translate): pad by `pad` on each side
    — mode "reflect" mirrors about the edge pixel, as np.pad(mode="reflect") and torch's F.pad(..., "reflect");
    "constant" pads zeros — then take an H×W window at offsets drawn uniformly from 0..2·pad per sample (the
    draws of RandomCrop((H, W), pad)). x: (N, H, W, C) -> same shape and dtype, no per-sample loop.

    A run applies it to the raw images, before the preprocessing: reflect padding only copies pixels, so it
    commutes with the per-channel affine standardisation that airbench applies first (the same result)."""

    def __init__(self, pad: int, mode: str = "reflect"):
        if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 1:
            raise DataError(f"RandomTranslate: pad must be an int ≥ 1, got {pad!r}")
        if mode not in ("reflect", "constant"):
            raise DataError(f"RandomTranslate: mode must be 'reflect' or 'constant', got {mode!r}")
        self.pad, self.mode = int(pad), mode

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(x, "RandomTranslate")
        h, w = x.shape[1:3]
        if self.mode == "reflect" and self.pad >= min(h, w):
            raise DataError(f"RandomTranslate: reflect padding by {self.pad} needs images larger than {self.pad} "
                            f"pixels, got {h}×{w}")
        return _windows(x, self.pad, (h, w), self.mode, rng, "RandomTranslate")

    def __repr__(self) -> str:
        return f"RandomTranslate(pad={self.pad}, mode={self.mode!r})"


class RandomFlip:
    """Mirror each sample left-right with probability `p`. x: (N, H, W, C) -> same shape."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise DataError(f"RandomFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(x, "RandomFlip")
        flip = rng.random(x.shape[0]) < self.p
        return np.where(flip[:, None, None, None], x[:, :, ::-1], x)

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class AlternatingFlip:
    """airbench's alternating flip: each sample has a base flip, a fair random bit keyed by (seed, sample id)
    alone, and is mirrored where that bit is set on even epochs and where it is not on odd epochs, so every
    image is seen in both orientations on alternate epochs. x: (N, H, W, C) -> same shape.

    It needs the loader's keyed randomness (`DataLoader(keyed=seed)`, as every run has): a KeyedRandom knows
    the epoch and the samples' ids; a plain np.random.Generator knows neither, and is refused."""

    STREAM = 1 << 32  # the base bits' key stream: apart from the loader's (0) and the keyed layers' (1000 on)

    def __call__(self, x: np.ndarray, rng) -> np.ndarray:
        _check_batch(x, "AlternatingFlip")
        if not isinstance(rng, KeyedRandom) or rng.ids is None:
            raise DataError("altflip (alternating flip) needs a keyed loader, DataLoader(keyed=seed), that tells it "
                            f"the epoch and the sample ids; got {type(rng).__name__}")
        base = rng.per_sample(self.STREAM).random(len(x)) < 0.5  # the same bit in every epoch and batch
        flip = base ^ bool(rng.epoch % 2)
        out = x.copy()
        out[flip] = x[flip, :, ::-1]  # only the mirrored half is rewritten (np.where would build both whole)
        return out

    def __repr__(self) -> str:
        return "AlternatingFlip()"


class GaussianNoise:
    """Input-noise regularisation: add N(0, sigma²) to every value (after preprocessing, so sigma is in the
    units the network sees). x: (N, H, W, C) float -> same shape and dtype."""

    def __init__(self, sigma: float):
        if not sigma > 0:
            raise DataError(f"GaussianNoise: sigma must be > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_batch(x, "GaussianNoise")
        noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(self.sigma)
        return (x + noise).astype(x.dtype, copy=False)

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma:g})"


class Compose:
    """Apply steps in order: each is `step(x, rng)` (augmentations, or fitted preprocessors, which ignore rng)."""

    def __init__(self, steps):
        self.steps = list(steps)
        for s in self.steps:
            if not callable(s):
                raise DataError(f"Compose: step {s!r} is not callable as step(x, rng)")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for step in self.steps:
            x = step(x, rng)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(s) for s in self.steps) + ")"
