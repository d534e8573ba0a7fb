"""Image folders `root/<class>/*.jpg|png` (torchvision ImageFolder layout; classes sorted by name).

Images are decoded with Pillow on a thread pool (its decoders release the GIL) and the result is cached per
split as `<cache>/image_folder/<name>-<split>-<key>.images.npy` plus `.labels.npz`, where `key` hashes every
file's relative path, size and mtime, so an edited folder is decoded again and an unchanged one reloads
from the cache in a fraction of a second (read with `allow_pickle=False`). A `.tar.gz` of such folders (the
shared `cifar10-jpg.tar.gz`, with `train/<class>/*.jpg` and `test/<class>/*.jpg`, optionally under one
top-level folder) is extracted once into the cache and read from there.

Pillow is imported only when images are actually decoded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Dataset
from .download import cache_dir

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_DONE = ".extracted"


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def extract_archive(archive: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Extract `archive` once into `<cache>/image_folder/<stem>-<key>/` and return that folder.

    The key hashes the archive's size and mtime; extraction goes to a temporary folder renamed into place
    only when complete, so an interrupted run leaves nothing that looks finished.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise DataError(f"archive not found: {archive}")
    st = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    base = cache_dir(root) / "image_folder"
    base.mkdir(exist_ok=True)
    target = base / f"{_archive_stem(archive)}-{key}"
    if (target / _DONE).exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=base))
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, filter="data")
        (tmp / _DONE).touch()
        if target.exists():  # a stale, incomplete earlier attempt
            _rmtree(target)
        os.replace(tmp, target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        _rmtree(tmp)
        raise DataError(f"corrupt or truncated archive {archive}: {err}") from err
    except BaseException:
        _rmtree(tmp)
        raise
    return target


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def find_split(folder: str | os.PathLike, split: str | None) -> Path:
    """The folder holding `<class>/` subfolders for `split`: `folder/split`, or `folder/<top>/split` when the
    tree sits under one top-level folder; `folder` itself when `split` is None."""
    folder = Path(folder)
    if split is None:
        return folder
    if (folder / split).is_dir():
        return folder / split
    subdirs = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")] if folder.is_dir() else []
    if len(subdirs) == 1 and (subdirs[0] / split).is_dir():
        return subdirs[0] / split
    raise DataError(f"no {split!r} folder in {folder} (looked for {folder / split} and <top>/{split})")


def scan(folder: str | os.PathLike) -> tuple[list[str], list[tuple[str, int, int, int]]]:
    """List classes (sorted subfolder names) and files as (relative path, label, size, mtime_ns), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"empty image folder {folder}: expected <class>/ subfolders of images")
    files = []
    for label, cls in enumerate(classes):
        entries = sorted((e for e in os.scandir(folder / cls)
                          if e.is_file() and e.name.lower().endswith(EXTENSIONS)), key=lambda e: e.name)
        if not entries:
            raise DataError(f"class folder {folder / cls} holds no images ({', '.join(EXTENSIONS)})")
        for e in entries:
            st = e.stat()
            files.append((f"{cls}/{e.name}", label, st.st_size, st.st_mtime_ns))
    return classes, files


def _decode(path: Path, mode: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img if img.mode == mode else img.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"unreadable image {path}: {err}") from err


def decode_images(folder: Path, relpaths: list[str], workers: int | None = None,
                  mode: str | None = None) -> np.ndarray:
    """Decode images into uint8 (N, H, W, C). All must share one size. `mode` 'RGB' or 'L'; by default 'L'
    when the first image is greyscale, else 'RGB'."""
    from PIL import Image

    first = folder / relpaths[0]
    if mode is None:
        try:
            with Image.open(first) as img:
                mode = "L" if img.mode in ("L", "1", "I;16") else "RGB"
        except OSError as err:
            raise DataError(f"unreadable image {first}: {err}") from err
    sample = _decode(first, mode)
    h, w = sample.shape[:2]
    c = 1 if mode == "L" else 3
    out = np.empty((len(relpaths), h, w, c), dtype=np.uint8)

    def work(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            arr = _decode(folder / relpaths[i], mode)
            if arr.shape[:2] != (h, w):
                raise DataError(f"image {folder / relpaths[i]} is {arr.shape[1]}x{arr.shape[0]}, "
                                f"expected {w}x{h} like {first.name}: resize the folder first")
            out[i] = arr.reshape(h, w, c)

    step = 256
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, lo, min(lo + step, len(relpaths))) for lo in range(0, len(relpaths), step)]
        try:
            for f in futures:
                f.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # stop decoding the rest after the first bad file
            raise
    return out


def load_image_folder(path: str | os.PathLike, split: str | None = None, name: str | None = None,
                      root: str | os.PathLike | None = None, workers: int | None = None, cache: bool = True,
                      mode: str | None = None) -> Dataset:
    """A split of an image-folder dataset, from a folder or a .tar(.gz) archive of one.

    path: `<path>/<split>/<class>/*.jpg` (or `<path>/<top>/<split>/...`), or `<path>/<class>/*.jpg` with
    split=None. root: the cache folder (default `$STRIATE_DATA` or `~/.cache/striate`).
    """
    path = Path(path)
    name = name or (_archive_stem(path) if is_archive(path) else path.name)
    folder = find_split(extract_archive(path, root) if is_archive(path) else path, split)
    classes, files = scan(folder)
    listing = "\n".join(f"{p}|{lab}|{size}|{mtime}" for p, lab, size, mtime in files)
    key = hashlib.sha256(f"{mode}\n{'|'.join(classes)}\n{listing}".encode()).hexdigest()[:16]
    split_name = split or "all"
    stem = cache_dir(root) / "image_folder" / f"{name}-{split_name}-{key}"
    images_file, labels_file = stem.with_name(stem.name + ".images.npy"), stem.with_name(stem.name + ".labels.npz")
    if cache and labels_file.exists() and images_file.exists():
        try:
            images = np.load(images_file, allow_pickle=False)
            with np.load(labels_file, allow_pickle=False) as z:
                return Dataset(images, z["labels"], [str(c) for c in z["classes"]], name=name, split=split_name,
                               source=str(folder))
        except (OSError, ValueError, KeyError, zlib.error, EOFError, DataError):
            labels_file.unlink(missing_ok=True)  # a damaged cache is rebuilt from the images
            images_file.unlink(missing_ok=True)
    images = decode_images(folder, [f[0] for f in files], workers, mode)
    labels = np.array([f[1] for f in files], dtype=np.int64)
    data = Dataset(images, labels, classes, name=name, split=split_name, source=str(folder))
    if cache:
        # Images first, labels last: the labels file marks a complete cache entry.
        _atomic_save(images_file, lambda f: np.save(f, images, allow_pickle=False))
        _atomic_save(labels_file, lambda f: np.savez(f, labels=labels, classes=np.array(classes)))
    return data


def _atomic_save(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
