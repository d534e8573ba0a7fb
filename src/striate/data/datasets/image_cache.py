"""An image folder's decoded images on disk, read back memory-mapped: `<stem>.images.npy` (uint8 (N, H, W, C))
and `<stem>.labels.npz` (labels, classes, the files skipped), written by `image_folder.load_image_folder`.

The images never need to fit in memory: they are decoded straight into the cache file (`CacheTarget`: a
writable memory map of a partial file, its disk space reserved first), renamed into place when complete, and
read back as a read-only memory map (`load_cache`, `save_cache`), of which a run reads a batch at a time
(data.rows). The labels file is written last: it marks a complete entry.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from . import partial


def _mapped(images_file: Path) -> np.ndarray:
    return np.load(images_file, mmap_mode="r", allow_pickle=False)


def load_cache(images_file: Path, labels_file: Path, files: list, classes: list[str]):
    """(images, labels, skipped) of an intact cache entry that agrees with the listing `files` (its labels,
    less the files it skipped) and `classes`, else None. The images are a read-only memory map (never read
    whole), so a header that lies about its shape or dtype costs nothing either."""
    try:
        with np.load(labels_file, allow_pickle=False) as z:
            skipped = [tuple(str(s).split("\t", 1)) for s in z["skipped"]] if "skipped" in z else []
            left_out = {rel for rel, _ in skipped}
            expected = np.array([f[1] for f in files if f[0] not in left_out], dtype=np.int64)
            if not (np.array_equal(z["labels"], expected) and [str(c) for c in z["classes"]] == classes):
                return None
        images = _mapped(images_file)
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(expected):
            return None
        return images, expected, skipped
    except (OSError, ValueError, KeyError, TypeError, zlib.error, EOFError):
        return None


class CacheTarget:
    """A partial cache file to decode into: `images`, a writable memory map (N, H, W, C) uint8 of it, with its
    disk space reserved up front (a full disk is an OSError now, not a SIGBUS mid-decode). `discard()`
    removes it; `save_cache` renames it into place."""

    def __init__(self, images_file: Path, shape: tuple[int, ...]):
        partial.remove_stale(images_file.parent)
        fd, tmp = partial.make_file(images_file)
        os.close(fd)
        self.path = Path(tmp)
        try:
            self.images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
            if hasattr(os, "posix_fallocate"):
                with open(tmp, "r+b") as f:
                    os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self.images = None
        self.path.unlink(missing_ok=True)

    def commit(self, images_file: Path) -> None:
        """Flush the decoded images to disk and rename the file into place."""
        self.images.flush()
        self.images = None
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.path, images_file)


@contextlib.contextmanager
def cache_target(folder: Path, images_file: Path, shape: tuple[int, ...], cache: bool = True):
    """A CacheTarget for `shape` to decode into, removed if the block raises; None when `cache` is False, or
    with a warning when the cache cannot hold it (the images are then decoded into memory, not cached)."""
    target = None
    if cache:
        try:
            images_file.parent.mkdir(parents=True, exist_ok=True)
            target = CacheTarget(images_file, shape)
        except OSError as err:  # disk full, read-only cache
            _warn(folder, images_file, err, 5)
    try:
        yield target
    except BaseException:
        if target is not None:
            target.discard()
        raise


def save_cache(folder: Path, images_file: Path, labels_file: Path, images, labels, classes, skipped,
               target: CacheTarget | None) -> np.ndarray:
    """Complete the cache entry of the decoded `images` (the target's memory map when every file decoded,
    else an array, written anew) and return the images to use: the entry read-only memory-mapped, or
    `images` themselves with a warning when it cannot be written (only the next run is slower)."""
    try:  # images first, labels last: the labels file marks a complete cache entry
        if target is not None and images is target.images:
            target.commit(images_file)
        else:  # some files failed to decode: the kept images, in a file of their own size
            partial.save(images_file, lambda f: np.save(f, images, allow_pickle=False))
            if target is not None:
                target.discard()
        partial.save(labels_file, lambda f: np.savez(f, labels=labels, classes=np.array(classes),
                                                    skipped=np.array([f"{r}\t{why}" for r, why in skipped],
                                                                     dtype=str)))
        return _mapped(images_file)
    except OSError as err:  # disk full, read-only cache
        images_file.unlink(missing_ok=True)
        if target is not None:
            with contextlib.suppress(OSError):
                target.path.unlink(missing_ok=True)
        _warn(folder, images_file, err)
        return images


def _warn(folder: Path, images_file: Path, err: OSError, stacklevel: int = 4) -> None:
    warnings.warn(f"could not cache the decoded images of {folder} in {images_file.parent}: "
                  f"{err.strerror or err}", RuntimeWarning, stacklevel=stacklevel)
