"""MNIST (LeCun, Cortes & Burges) from its IDX files, gzip-compressed or raw.

IDX format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, then each dimension as a big-endian int32, then the data big-endian.
Pixels of other types than uint8 become uint8 only when that loses nothing (integral values in [0, 255]);
labels must be integers. A header's dimensions are checked before any data is read or decompressed.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset, as_uint8, check_labels
from .download import cache_dir, download

BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
URL_ENV = "STRIATE_MNIST_URL"
FILES = {  # split -> (images, labels), as published, with the md5 of the .gz files
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CLASSES = [str(d) for d in range(10)]
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 4 << 30  # the largest payload a header may declare (EMNIST's biggest file is under 1 GB)
_DEFLATE_RATIO = 1032  # deflate cannot expand more than this: a .gz declaring more is inconsistent


def _header(data: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and header length from the first bytes of an IDX file; the payload size it declares is
    checked against MAX_IDX_BYTES with Python integers, so huge or negative dimensions cannot overflow."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{where}: not an IDX file (bad magic {data[:4]!r})")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated header ({len(data)} bytes, the {ndim} dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, 4))
    if any(d < 0 for d in shape):
        raise DataError(f"{where}: negative dimension in shape {shape}")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_IDX_BYTES:
        raise DataError(f"{where}: header declares shape {shape} ({size:,} bytes of data), more than the limit "
                        f"of {MAX_IDX_BYTES:,}: corrupt dimensions")
    return dtype, shape, header


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (already decompressed) into an array of native byte order."""
    dtype, shape, header = _header(data, where)
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{where}: truncated or padded: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gunzipping it when it starts with the gzip magic. Only as many bytes as the header
    declares (plus one, to detect padding) are decompressed, so a gzip bomb cannot exhaust memory."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as z:
                head = z.read(4)
                head += z.read(4 * head[3]) if len(head) == 4 else b""
                dtype, shape, header = _header(head, str(path))
                size = math.prod(shape) * dtype.itemsize
                if size > _DEFLATE_RATIO * len(raw):
                    raise DataError(f"{path}: header declares shape {shape} ({size:,} bytes), more than "
                                    f"{len(raw):,} compressed bytes can hold: corrupt dimensions")
                raw = head + z.read(size + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"corrupt or truncated file {path}: {err}") from err
    return parse_idx(raw, str(path))


def _locate(folder: Path, stem: str, url: str | None, retries: int, checks: dict[str, str]) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    if url is None:
        raise DataError(f"MNIST file {stem}(.gz) not found: place it in {folder}")
    gz = f"{stem}.gz"
    return download(url.rstrip("/") + "/" + gz, folder / gz, md5=checks.get(gz), retries=retries)


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, base_url: str | None = None,
               download_ok: bool = True, retries: int = 3, md5: dict[str, str] | None = None) -> Dataset:
    """MNIST images uint8 (N, 28, 28, 1) and labels from `<cache>/mnist/`, downloading the .gz files if absent.

    base_url: folder holding the four .gz files (default `$STRIATE_MNIST_URL`, else the PyTorch mirror).
    md5: overrides the official checksums by file name (tests serve their own files).
    A file that cannot be parsed is removed and fetched once more; a second failure raises DataError.
    """
    if split not in FILES:
        raise DataError(f"MNIST split {split!r}: expected one of {sorted(FILES)}")
    folder = cache_dir(root) / "mnist"
    folder.mkdir(exist_ok=True)
    url = (base_url or os.environ.get(URL_ENV) or BASE_URL) if download_ok else None
    checks = MD5 if md5 is None else md5
    arrays, paths = [], []
    for stem in FILES[split]:
        for attempt in range(2):
            path = _locate(folder, stem, url, retries, checks)
            try:
                arrays.append(read_idx(path))
                paths.append(path)
                break
            except DataError:
                if url is None or attempt:
                    raise
                path.unlink(missing_ok=True)
    (images, labels), (images_path, labels_path) = arrays, paths
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected MNIST images (N, 28, 28), got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected MNIST labels (N,), got shape {labels.shape}")
    images = as_uint8(images, str(images_path))[..., None]
    labels = check_labels(labels, len(images), len(CLASSES), str(labels_path))
    return Dataset(images, labels, CLASSES, name="mnist", split=split, source=str(folder))
