"""Datasets by name or path: `load('cifar10' | 'mnist' | 'digits' | <folder or .tar.gz>, split)`.

Every loader returns a `Dataset` (images uint8 (N, H, W, C), labels int64 (N,), classes). None of these
modules imports Pillow at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .base import Dataset, as_uint8, check_images, check_labels
from .cifar10 import RestrictedUnpickler, archive_path, load_cifar10, read_archive, restricted_loads
from .digits import load_digits
from .download import cache_dir, download, file_digest, verify
from .image_file import MAX_PIXELS, ImageHeader, ImageSizeError, probe_image, read_image
from .image_folder import MissingSplit, extract_archive, is_archive, load_image_folder
from .mnist import load_mnist, parse_idx, read_idx

SHARED_CIFAR10 = "cifar10-jpg.tar.gz"
NAMES = ("cifar10", "mnist", "digits")
_REPO = Path(__file__).resolve().parents[4]


def shared_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for shared data files: root, $STRIATE_DATA, ./../shared/data, <repo>/../shared/data."""
    dirs = [root, os.environ.get("STRIATE_DATA"), Path.cwd().parent / "shared" / "data",
            _REPO.parent / "shared" / "data"]
    out: list[Path] = []
    for d in dirs:
        if d is not None and Path(d).is_dir() and Path(d).resolve() not in out:
            out.append(Path(d).resolve())
    return out


def find_shared_cifar10(root: str | os.PathLike | None = None) -> Path | None:
    """The shared CIFAR-10 JPEG archive (or its extracted folder) if one of `shared_dirs` holds it."""
    for d in shared_dirs(root):
        for candidate in (d / SHARED_CIFAR10, d / "cifar10-jpg"):
            if candidate.exists():
                return candidate
    return None


def load(name_or_path: str | os.PathLike, split: str | None = "train", root: str | os.PathLike | None = None,
         base_url: str | None = None, download_ok: bool = True, workers: int | None = None,
         size: tuple[int, int] | None = None, mode: str | None = None, strict: bool = False,
         shorter_side: int = 0) -> Dataset:
    """Load one split of a dataset by name or path.

    'digits': the embedded UCI digits (no I/O). 'mnist': IDX files in the cache, downloaded if absent.
    'cifar10': the official python archive if it is in the cache, else the shared JPEG archive
    (`cifar10-jpg.tar.gz` in `shared_dirs`), else download the official archive.
    A path: the official CIFAR archive (`cifar-10-python.tar.gz`), or an image folder / .tar.gz of one.
    root: cache folder (default `$STRIATE_DATA` or `~/.cache/striate`); base_url overrides download URLs.
    size (H, W), mode ('L'/'RGB') and strict apply to image folders (`load_image_folder`): resize and convert
    every image, and abort on an unreadable file instead of skipping it; shorter_side: resize the shorter side
    to it and centre-crop `size` (torchvision's Resize + CenterCrop).
    """
    key = str(name_or_path)
    if key == "digits":
        return load_digits(split or "all")
    if key == "mnist":
        return load_mnist(split or "train", root, base_url=base_url, download_ok=download_ok)
    if key == "cifar10":
        split = split or "train"
        if archive_path(root).exists() or base_url is not None:
            return load_cifar10(split, root, base_url=base_url, download_ok=download_ok)
        shared = find_shared_cifar10(root)
        if shared is not None:
            return load_image_folder(shared, split, name="cifar10-jpg", root=root, workers=workers, size=size,
                                     mode=mode, strict=strict, shorter_side=shorter_side)
        return load_cifar10(split, root, base_url=base_url, download_ok=download_ok)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DataError(f"unknown dataset {key!r}: expected one of {list(NAMES)} or an existing folder/archive")
    if path.name == "cifar-10-python.tar.gz":
        return read_archive(path, split or "train")
    return load_image_folder(path, split, root=root, workers=workers, size=size, mode=mode, strict=strict,
                             shorter_side=shorter_side)


__all__ = [
    "MAX_PIXELS", "NAMES", "DataError", "Dataset", "ImageHeader", "ImageSizeError", "MissingSplit",
    "RestrictedUnpickler", "archive_path", "as_uint8", "cache_dir", "check_images", "check_labels", "download",
    "extract_archive", "file_digest", "find_shared_cifar10", "is_archive", "load", "load_cifar10", "load_digits",
    "load_image_folder", "load_mnist", "parse_idx", "probe_image", "read_archive", "read_idx", "read_image",
    "restricted_loads", "shared_dirs", "verify",
]
