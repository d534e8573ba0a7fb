"""The UCI ML hand-written digits, shipped with striate: 1,797 images of 8x8 pixels, 10 classes.

Source: "Optical Recognition of Handwritten Digits", UCI Machine Learning Repository, created by
E. Alpaydin and C. Kaynak (Bogazici University, 1998); see C. Kaynak (1995), "Methods of Combining Multiple
Classifiers and Their Applications to Handwritten Digit Recognition", MSc thesis, and E. Alpaydin,
C. Kaynak (1998), "Cascading Classifiers", Kybernetika. 32x32 NIST bitmaps were divided into 4x4 blocks and
the on-pixels counted, giving 8x8 images with values 0..16. The file `digits.csv.gz` (64 pixel columns, then
the label) is the copy of the UCI test set distributed with scikit-learn (`sklearn/datasets/data/`,
BSD-3-Clause), taken unchanged (sha256 09f66e6d...e23aa22).

Pixels are rescaled 0..16 -> 0..255 (round(v * 255 / 16)) to uint8 (N, 8, 8, 1). The train/test split is
fixed: stratified by class with a seeded generator, 1,438 train / 359 test.
"""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

from ..errors import DataError
from .base import Dataset

CLASSES = [str(d) for d in range(10)]
SPLIT_SEED = 20260
TEST_FRACTION = 0.2
N_SAMPLES = 1797


def _read() -> tuple[np.ndarray, np.ndarray]:
    with resources.files(__package__).joinpath("digits.csv.gz").open("rb") as f:
        table = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.int64)
    if table.shape != (N_SAMPLES, 65) or table[:, :64].min() < 0 or table[:, :64].max() > 16:
        raise DataError(f"digits.csv.gz: unexpected content, shape {table.shape}")
    pixels = np.rint(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    return pixels, table[:, 64]


def split_indices(labels: np.ndarray, test_fraction: float = TEST_FRACTION,
                  seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: each class gives its share of round(N * test_fraction) test samples (largest
    remainder), chosen by a seeded permutation. Returns sorted (train_idx, test_idx)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * test_fraction
    n_test = np.floor(quota).astype(np.int64)
    short = int(round(len(labels) * test_fraction)) - int(n_test.sum())
    n_test[np.argsort(-(quota - n_test), kind="stable")[:short]] += 1
    test = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, n_test, strict=True)]
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def load_digits(split: str = "train") -> Dataset:
    """Digits split 'train' (1,438), 'test' (359) or 'all' (1,797): uint8 (N, 8, 8, 1), labels 0..9."""
    images, labels = _read()
    if split == "all":
        idx = np.arange(len(labels))
    elif split in ("train", "test"):
        idx = split_indices(labels)[0 if split == "train" else 1]
    else:
        raise DataError(f"digits split {split!r}: expected 'train', 'test' or 'all'")
    return Dataset(images[idx], labels[idx], CLASSES, name="digits", split=split, source="striate (UCI digits)")
