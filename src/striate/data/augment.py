"""Batch augmentations, vectorised over the batch: each is `aug(x, rng) -> x'` for x (N, H, W, C).

They draw from the generator they are handed (the loader's), keep the input's dtype and never modify the
input in place.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError


def _check_batch(x: np.ndarray, who: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise DataError(f"{who}: expected a batch (N, H, W, C), got {getattr(x, 'shape', type(x).__name__)}")


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
        n, h, w, _ = x.shape
        p, (sh, sw) = self.padding, self.size
        if sh > h + 2 * p or sw > w + 2 * p:
            raise DataError(f"RandomCrop: crop {self.size} larger than padded image ({h + 2 * p}, {w + 2 * p})")
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
        oy = rng.integers(0, h + 2 * p - sh + 1, size=n)
        ox = rng.integers(0, w + 2 * p - sw + 1, size=n)
        rows = oy[:, None, None] + np.arange(sh)[None, :, None]  # (N, sh, 1)
        cols = ox[:, None, None] + np.arange(sw)[None, None, :]  # (N, 1, sw)
        return xp[np.arange(n)[:, None, None], rows, cols]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


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
