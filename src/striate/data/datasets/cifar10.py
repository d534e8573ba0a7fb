"""CIFAR-10 from the official python archive `cifar-10-python.tar.gz` (Krizhevsky, 2009).

The archive holds `cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`, each a Python 2 pickle
of a dict whose `data` is a uint8 ndarray (N, 3072) in CHW order and `labels` a list of ints. The batches are
read straight from the tar with `RestrictedUnpickler`, which resolves only the three numpy names an ndarray
needs; anything else (os.system, builtins.eval, ...) is refused before it can run.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
from .download import cache_dir, download

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

FILENAME = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
BASE_URL = "https://www.cs.toronto.edu/~kriz/"
URL_ENV = "STRIATE_CIFAR10_URL"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: plain containers plus numpy array reconstruction, nothing else."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}: not part of a CIFAR batch") \
                from None


def restricted_loads(data: bytes):
    """Unpickle `data` (Python 2 or 3 pickle) allowing only what a CIFAR batch holds; keys come back as str."""
    obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    if isinstance(obj, dict):
        obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    return obj


def _parse_batch(obj, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(obj, dict) or "data" not in obj or not ({"labels", "fine_labels"} & obj.keys()):
        raise DataError(f"{where}: not a CIFAR batch (expected a dict with 'data' and 'labels')")
    data = obj["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{where}: 'data' should be uint8 (N, 3072), got {type(data).__name__} {shape}")
    labels = np.asarray(obj.get("labels", obj.get("fine_labels")), dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {labels.shape} labels for {data.shape[0]} images")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_archive(path: str | os.PathLike, split: str = "train") -> Dataset:
    """Parse one split from an official-format archive. Raises DataError on a corrupt or malicious file."""
    if split not in SPLITS:
        raise DataError(f"CIFAR-10 split {split!r}: expected one of {sorted(SPLITS)}")
    path = Path(path)
    wanted = set(SPLITS[split]) | {"batches.meta"}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"corrupt or truncated archive {path}: {err}") from err
    missing = sorted(set(SPLITS[split]) - found.keys())
    if missing:
        raise DataError(f"archive {path} lacks {missing}: not the CIFAR-10 python archive, or truncated")
    parts = []
    for name in SPLITS[split]:
        where = f"{path}:{name}"
        try:
            obj = restricted_loads(found[name])
        except pickle.UnpicklingError as err:
            raise DataError(f"{where}: {err}") from err
        except Exception as err:  # truncated pickle data: EOFError, ValueError, ...
            raise DataError(f"{where}: unreadable pickle ({type(err).__name__}: {err})") from err
        parts.append(_parse_batch(obj, where))
    classes = CLASSES
    if "batches.meta" in found:
        try:
            meta = restricted_loads(found["batches.meta"])
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta["label_names"]]
        except pickle.UnpicklingError as err:
            raise DataError(f"{path}:batches.meta: {err}") from err
        except Exception:  # a damaged meta file only costs the class names
            classes = CLASSES
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Dataset(images, labels, classes, name="cifar10", split=split, source=str(path))


def archive_path(root: str | os.PathLike | None = None) -> Path:
    """Where the official archive lives in the cache."""
    return cache_dir(root) / FILENAME


def load_cifar10(split: str = "train", root: str | os.PathLike | None = None, base_url: str | None = None,
                 md5: str | None = MD5, download_ok: bool = True, retries: int = 3) -> Dataset:
    """CIFAR-10 from the official archive in the cache, downloading it when absent.

    base_url: folder URL holding `cifar-10-python.tar.gz` (default `$STRIATE_CIFAR10_URL`, else Toronto).
    md5: expected checksum (None skips it: only for test archives). A cached archive that fails its checksum
    or cannot be parsed is removed and downloaded once more; if that copy is bad too, DataError names it.
    """
    dest = archive_path(root)
    url = (base_url or os.environ.get(URL_ENV) or BASE_URL).rstrip("/") + "/" + FILENAME
    if not download_ok:
        if not dest.exists():
            raise DataError(f"CIFAR-10 archive not found: place {FILENAME} at {dest}")
        return read_archive(dest, split)
    download(url, dest, md5=md5, retries=retries)
    try:
        return read_archive(dest, split)
    except DataError as err:
        if "refused to load global" in str(err):
            raise  # a hostile file is reported, not fetched again
        dest.unlink(missing_ok=True)
    download(url, dest, md5=md5, retries=retries)
    try:
        return read_archive(dest, split)
    except DataError as err:
        raise DataError(f"{err} (re-downloaded from {url}; delete {dest} and check the source)") from err
