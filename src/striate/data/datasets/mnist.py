"""MNIST (LeCun, Cortes & Burges) from its IDX files, gzip-compressed or raw.

IDX format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, then each dimension as a big-endian int32, then the data big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
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


def parse_idx(data: bytes, where: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (already decompressed) into an array of native byte order."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{where}: not an IDX file (bad magic {data[:4]!r})")
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, 4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{where}: truncated or padded: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gunzipping it when it starts with the gzip magic."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
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
    arrays = []
    for stem in FILES[split]:
        for attempt in range(2):
            path = _locate(folder, stem, url, retries, checks)
            try:
                arrays.append(read_idx(path))
                break
            except DataError:
                if url is None or attempt:
                    raise
                path.unlink(missing_ok=True)
    images, labels = arrays
    if images.ndim != 3:
        raise DataError(f"MNIST {split} images: expected (N, 28, 28), got {images.shape}")
    return Dataset(images[..., None].astype(np.uint8), labels.astype(np.int64), CLASSES, name="mnist",
                   split=split, source=str(folder))

