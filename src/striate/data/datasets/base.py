"""`Dataset`: images uint8 (N, H, W, C), labels int64 (N,), class names, and where each image came from
(`Sources`: its file, or the dataset, split and position); validated at construction.

Also the lossless conversions every reader uses: `check_labels` (integers, or integral floats, to int64)
and `as_uint8` (integral values in [0, 255] to uint8). Nothing is ever cast with loss: a label 0.5 or a
pixel 300 is refused with a message naming the file or array, never rounded, truncated or wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_MAX = int(np.iinfo(np.int64).max)


def _first(mask: np.ndarray, values: np.ndarray) -> str:
    """'value V at index I' for the first True of mask (mask and values of one shape)."""
    i = np.unravel_index(int(np.argmax(mask)), mask.shape)
    at = i[0] if len(i) == 1 else tuple(int(k) for k in i)
    return f"value {values[i].item()!r} at index {at}"


def _numeric(values, name: str, what: str) -> np.ndarray:
    """values as a numeric ndarray (integer or floating, not bool), else DataError naming `name`."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:  # ragged lists, unconvertible objects
        raise DataError(f"{name}: expected {what}, got an irregular sequence ({err})") from None
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        example = f" (e.g. {arr.flat[0]!r})" if arr.size else ""
        raise DataError(f"{name}: expected {what}, got dtype {arr.dtype}{example}")
    return arr


def as_uint8(values, name: str = "images") -> np.ndarray:
    """values as uint8 without loss: integers in [0, 255], or floats with such integral values (so 3.0 is
    accepted, 0.5, 300 and -1 are refused: nothing rounds or wraps). Raises DataError naming `name`."""
    arr = _numeric(values, name, "pixel values (uint8, or integers in [0, 255])")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            raise DataError(f"{name}: pixels must be whole numbers in [0, 255] to become uint8, got non-integral "
                            f"{_first(bad, arr)} (dtype {arr.dtype})")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        bad = (arr < 0) | (arr > 255)
        raise DataError(f"{name}: pixels must be in [0, 255] to become uint8, got {_first(bad, arr)} "
                        f"(dtype {arr.dtype})")
    return arr.astype(np.uint8)


def check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    """Validate an image batch: uint8 (N, H, W, C), or floating (N, H, W, C) without NaN/inf and within
    float32's range (the loader converts to float32). Returns it."""
    if not isinstance(images, np.ndarray):
        raise DataError(f"{name}: expected a numpy array (N, H, W, C), got {type(images).__name__}")
    if images.ndim != 4:
        raise DataError(f"{name}: expected shape (N, H, W, C), got {images.shape}")
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{name}: expected dtype uint8 or float32, got {images.dtype}")
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise DataError(f"{name}: contains NaN or inf")
        if images.dtype.itemsize > 4 and images.size and np.abs(images).max() > _FLOAT32_MAX:
            raise DataError(f"{name}: values beyond float32's range (|x| > {_FLOAT32_MAX:.3g}) would become inf")
    return images


def check_labels(labels, n: int | None = None, num_classes: int | None = None,
                 name: str = "labels") -> np.ndarray:
    """Validate labels (N,): integers, or floats with integral values (3.0 is 3; 0.5 is refused), in
    [0, num_classes). Returns them as int64; raises DataError naming `name` and the first bad value."""
    labels = _numeric(labels, name, "integer class labels")
    if labels.ndim != 1:
        raise DataError(f"{name}: expected shape (N,), got {labels.shape}")
    if np.issubdtype(labels.dtype, np.floating):
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DataError(f"{name}: expected integer labels, got non-integral {_first(bad, labels)} "
                           f"(dtype {labels.dtype})")
        if labels.size and np.abs(labels).max() > 2.0**53:  # integers beyond this are not exact in float64
            raise DataError(f"{name}: label {labels[np.argmax(np.abs(labels))]!r} is too large to be exact")
    if n is not None and labels.shape[0] != n:
        raise DataError(f"{name}: {labels.shape[0]} labels for {n} images")
    if labels.size and labels.dtype == np.uint64 and labels.max() > _INT64_MAX:
        raise DataError(f"{name}: label {int(labels.max())} does not fit int64")
    if num_classes is not None and labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise DataError(f"{name}: label {int(bad)} outside [0, {num_classes})")  # integral by now
    return labels.astype(np.int64, copy=False)


@dataclass(frozen=True)
class Sources:
    """Where each image of a set came from, so that a result leads back to it: `str(sources[i])` is the i-th
    image's file (image folders), else the dataset, split and the image's position in that split
    ('digits[test] #99'). `take(index)` follows a subset (a shuffle, a held-out part, a limit).

    label: 'name[split]'; paths: str (M,) of the split's files, or None; index: int64 (N,) positions in it.
    """

    label: str
    paths: np.ndarray | None
    index: np.ndarray

    def __len__(self) -> int:
        return int(len(self.index))

    def __getitem__(self, i) -> str:
        j = int(self.index[i])
        return str(self.paths[j]) if self.paths is not None else f"{self.label} #{j}"

    def take(self, index) -> Sources:
        """The sources of the images at `index` (positions in this set), in that order."""
        return Sources(self.label, self.paths, self.index[np.asarray(index, dtype=np.int64)])


@dataclass
class Dataset:
    """One split of a labelled image dataset.

    images: uint8 (N, H, W, C); labels: int64 (N,) in [0, len(classes)); classes: class names by index;
    skipped: the files left out as unreadable, (path, reason) pairs (image folders); paths: each image's
    file, (N,) strings aligned with `images` (image folders; None for arrays such as the built-in datasets).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str = ""
    split: str = ""
    source: str = field(default="", repr=False)
    skipped: list = field(default_factory=list, repr=False)
    paths: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        where = f"{self.name or 'dataset'}[{self.split or '?'}]"
        check_images(self.images, f"{where}.images")
        if self.images.dtype != np.uint8:
            raise DataError(f"{where}.images: expected dtype uint8, got {self.images.dtype} (convert without loss "
                            f"with striate.data.datasets.as_uint8)")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise DataError(f"{where}: no classes")
        self.labels = check_labels(self.labels, len(self.images), len(self.classes), f"{where}.labels")
        if self.paths is not None:
            self.paths = np.asarray(self.paths, dtype=str)
            if self.paths.shape != (len(self.images),):
                raise DataError(f"{where}.paths: expected one path per image ({len(self.images)}), got shape "
                                f"{self.paths.shape}")

    @property
    def sources(self) -> Sources:
        """Where each image came from (`Sources`): its file, or this dataset, split and position."""
        return Sources(f"{self.name or 'dataset'}[{self.split or '?'}]", self.paths,
                       np.arange(len(self), dtype=np.int64))

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
