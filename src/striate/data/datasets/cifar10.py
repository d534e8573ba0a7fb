"""CIFAR-10 from the official python archive `cifar-10-python.tar.gz` (Krizhevsky, 2009).

The archive holds `cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`, each a Python 2 pickle
of a dict whose `data` is a uint8 ndarray (N, 3072) in CHW order and `labels` a list of ints. The batches are
read straight from the tar with `RestrictedUnpickler`, which resolves only the names these pickles need,
each narrowed to that use: numpy's array reconstruction (`_reconstruct` of an empty ndarray, `dtype`, and
`_frombuffer` for protocol 5), and for protocol-2 pickles written by Python 3 the spelling of bytes as
`_codecs.encode(str, 'latin1')` / `bytes()`. Anything else (os.system, builtins.eval, ...) is refused
before it can run. Labels must be integers, pixels uint8 (or integral values in [0, 255]); every error
names the archive, the batch and the key.
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
from .base import Dataset, as_uint8, check_labels
from .download import cache_dir, download

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

FILENAME = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
BASE_URL = "https://www.cs.toronto.edu/~kriz/"
URL_ENV = "STRIATE_CIFAR10_URL"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
MAX_MEMBER_BYTES = 512 << 20  # a CIFAR-10 batch is 31 MB (CIFAR-100's train file 158 MB)


class _NdarrayType:
    """Stands for numpy.ndarray inside a pickle: only `_reconstruct` may use it, nothing may call it."""


_NDARRAY = _NdarrayType()


def _reconstruct_array(subtype, shape, dtype):
    """numpy's `_reconstruct` as array pickles use it: an empty ndarray that its pickled state then fills."""
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise pickle.UnpicklingError(f"refused _reconstruct({subtype!r}, {shape!r}, ...): not a numpy array pickle")
    return _reconstruct(np.ndarray, shape, dtype)


def _latin1_bytes(text, encoding):
    """`_codecs.encode(text, 'latin1')`: how Python 3 spells a bytes object in a protocol-2 pickle."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode(..., {encoding!r}): only latin1 text spells bytes")
    return text.encode("latin1")


def _empty_bytes(*args):
    """`bytes()`: the empty bytes object in a protocol-2 pickle (nothing else: bytes(n) would allocate n)."""
    if args:
        raise pickle.UnpicklingError("refused bytes(...) with arguments: only the empty bytes object is pickled so")
    return b""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
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


class RefusedPickle(DataError):
    """A pickle that asked for something a CIFAR batch never needs: hostile, not merely damaged."""


def _unpickle(data: bytes, where: str):
    try:
        return restricted_loads(data)
    except pickle.UnpicklingError as err:
        kind = RefusedPickle if str(err).startswith("refused") else DataError
        raise kind(f"{where}: {err}") from err
    except Exception as err:  # truncated pickle data: EOFError, ValueError, ...
        raise DataError(f"{where}: unreadable pickle ({type(err).__name__}: {err})") from err


def _parse_batch(obj, where: str) -> tuple[np.ndarray, np.ndarray]:
    """images uint8 (N, 32, 32, 3) and labels int64 (N,) of one unpickled batch."""
    if not isinstance(obj, dict) or "data" not in obj or not ({"labels", "fine_labels"} & obj.keys()):
        raise DataError(f"{where}: not a CIFAR batch (expected a dict with 'data' and 'labels')")
    data = obj["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"{where}: 'data' should be uint8 (N, 3072), got {type(data).__name__} {shape}")
    data = as_uint8(data, f"{where}: 'data'")
    key = "labels" if "labels" in obj else "fine_labels"
    labels = check_labels(obj[key], data.shape[0], name=f"{where}: {key!r}")
    if labels.size and labels.min() < 0:
        raise DataError(f"{where}: {key!r}: label {int(labels.min())} is negative")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _class_names(meta, where: str) -> list[str]:
    """The 'label_names' of an unpickled batches.meta, as str."""
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{where}: expected a dict with a non-empty 'label_names' list, got "
                        f"{type(names if isinstance(meta, dict) else meta).__name__}")
    out = []
    for i, c in enumerate(names):
        if isinstance(c, bytes):
            try:
                c = c.decode()
            except UnicodeDecodeError:
                raise DataError(f"{where}: 'label_names'[{i}] {c!r} is not UTF-8 text") from None
        if not isinstance(c, str):
            raise DataError(f"{where}: 'label_names'[{i}] should be a class name, got {type(c).__name__} {c!r}")
        out.append(c)
    return out


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
                    if member.size > MAX_MEMBER_BYTES:
                        raise DataError(f"{path}:{base}: {member.size:,} bytes, more than a CIFAR batch can be "
                                        f"({MAX_MEMBER_BYTES:,})")
                    found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"corrupt or truncated archive {path}: {err}") from err
    missing = sorted(set(SPLITS[split]) - found.keys())
    if missing:
        raise DataError(f"archive {path} lacks {missing}: not the CIFAR-10 python archive, or truncated")
    parts = {name: _parse_batch(_unpickle(found[name], f"{path}:{name}"), f"{path}:{name}") for name in SPLITS[split]}
    classes = CLASSES
    if "batches.meta" in found:
        where = f"{path}:batches.meta"
        classes = _class_names(_unpickle(found["batches.meta"], where), where)
    for name, (_, labels) in parts.items():
        if labels.size and labels.max() >= len(classes):
            n, top = len(classes), int(labels.max())
            if "batches.meta" in found:
                raise DataError(f"{path}:batches.meta: 'label_names' lists {n} class{'es' if n != 1 else ''} but "
                                f"{name} has label {top}")
            raise DataError(f"{path}:{name}: label {top} outside [0, {n}) (no batches.meta: CIFAR-10's {n} classes)")
    images = np.concatenate([p[0] for p in parts.values()])
    labels = np.concatenate([p[1] for p in parts.values()])
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
    except RefusedPickle:
        raise  # a hostile file is reported, not fetched again
    except DataError:
        dest.unlink(missing_ok=True)
    download(url, dest, md5=md5, retries=retries)
    try:
        return read_archive(dest, split)
    except DataError as err:
        raise DataError(f"{err} (re-downloaded from {url}; delete {dest} and check the source)") from err
