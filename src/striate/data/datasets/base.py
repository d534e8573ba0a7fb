"""`Dataset`: images uint8 (N, H, W, C), labels int64 (N,), class names; validated at construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Validate an image batch: uint8 (N, H, W, C), or floating (N, H, W, C) without NaN/inf. Returns it."""
    if not isinstance(images, np.ndarray):
        raise DataError(f"{name}: expected a numpy array (N, H, W, C), got {type(images).__name__}")
    if images.ndim != 4:
        raise DataError(f"{name}: expected shape (N, H, W, C), got {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{name}: expected dtype uint8 or float32, got {images.dtype}")
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise DataError(f"{name}: contains NaN or inf")
    return images


def check_labels(labels: np.ndarray, n: int | None = None, num_classes: int | None = None,
                 name: str = "labels") -> np.ndarray:
    """Validate labels: integer (N,), in [0, num_classes). Returns them as int64."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{name}: expected shape (N,), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{name}: expected an integer dtype, got {labels.dtype}")
    if n is not None and labels.shape[0] != n:
        raise DataError(f"{name}: {labels.shape[0]} labels for {n} images")
    if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise DataError(f"{name}: label {int(bad)} outside [0, {num_classes})")
    return labels.astype(np.int64, copy=False)


@dataclass
class Dataset:
    """One split of a labelled image dataset.

    images: uint8 (N, H, W, C); labels: int64 (N,) in [0, len(classes)); classes: class names by index.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""
    split: str = ""
    source: str = field(default="", repr=False)

    def __post_init__(self):
        where = f"{self.name or 'dataset'}[{self.split or '?'}]"
        check_images(self.images, f"{where}.images")
        if self.images.dtype != np.uint8:
            raise DataError(f"{where}.images: expected dtype uint8, got {self.images.dtype}")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise DataError(f"{where}: no classes")
        self.labels = check_labels(self.labels, len(self.images), len(self.classes), f"{where}.labels")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, split={self.split!r}, n={len(self)}, shape={self.shape}, "
                f"classes={self.num_classes})")
