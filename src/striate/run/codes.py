"""CNN codes: what a frozen network body gives for a split's images (the notes' "ConvNet as fixed feature
extractor": the activations right before the classifier, after its ReLU), computed once with the batched-inference
helper (`train.inference.scores`: eval mode, so dropout is off and BatchNorm uses its running statistics; the
preprocessing applied batch by batch) and cached on disk.

The cache is `<data cache>/codes/<key>.npy` (`$STRIATE_DATA`, default `~/.cache/striate`: the datasets' cache,
`data.datasets.download.cache_dir`), float32 (N, D), written atomically (a partial file renamed into place, see
`data.datasets.partial`) and read back memory-mapped with `allow_pickle=False`. `key` hashes everything the codes
depend on: the body's architecture (its repr) and its weights as transferred from the source (another source file,
run or checkpoint changes them), the fitted preprocessing statistics, the images (shape and bytes) and `FORMAT`; a
change to any of them computes the codes again. The data cache rather than the run directory, because codes belong
to the source and the data, not to one run: a second head on the same codes (another loss, learning rate or number
of epochs) is a new run directory and reads them in a fraction of a second. A damaged entry is computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

FORMAT = 1  # what a cache entry holds; a change here keys new entries, so no code computed the old way is reused
HASH_CHUNK = 1 << 26  # bytes of images hashed at a time (a memory-mapped split is never copied whole)


def _update_arrays(h, arrays) -> None:
    for name, a in sorted(arrays, key=lambda item: item[0]):
        a = np.asarray(a)
        h.update(f"{name}|{a.dtype.str}|{a.shape}\n".encode())
        h.update(np.ascontiguousarray(a).tobytes())


def model_digest(body, preprocess) -> str:
    """sha256 of the body's architecture and weights and of the fitted preprocessing `preprocess` (a
    data.Preprocessing): what turns an image into its code."""
    from ..train.checkpoint import flatten_state

    h = hashlib.sha256(f"striate-codes/{FORMAT}\n{body!r}\n".encode())
    _update_arrays(h, [*((n, p.data) for n, p in body.named_parameters()), *body.named_buffers()])
    skeleton, arrays = flatten_state(preprocess.state())
    h.update(json.dumps(skeleton, sort_keys=True).encode())
    _update_arrays(h, arrays.items())
    return h.hexdigest()


def images_digest(images: np.ndarray) -> str:
    """sha256 of a split's images (N, H, W, C): their shape, dtype and bytes, read a chunk at a time."""
    h = hashlib.sha256(f"{images.dtype.str}|{images.shape}\n".encode())
    rows = max(1, HASH_CHUNK // max(1, images[0].nbytes)) if len(images) else 1
    for i in range(0, len(images), rows):
        h.update(np.ascontiguousarray(images[i:i + rows]).data)
    return h.hexdigest()


def cache_file(model_key: str, images: np.ndarray, root: str | os.PathLike | None = None) -> Path:
    """Where the codes of `images` under `model_key` (`model_digest`) are cached."""
    from ..data.datasets.download import cache_dir

    key = hashlib.sha256(f"{model_key}|{images_digest(images)}".encode()).hexdigest()[:32]
    return cache_dir(root) / "codes" / f"{key}.npy"


def _read(path: Path, n: int) -> np.ndarray | None:
    """The cached codes of `n` images, memory-mapped, or None (absent, damaged, another shape or dtype)."""
    try:
        codes = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return codes if codes.dtype == np.float32 and codes.ndim == 2 and len(codes) == n else None


def _write(path: Path, codes: np.ndarray) -> None:
    """`codes` as `path`, atomically: readers see the whole entry or none."""
    from ..atomic import fsync_dir
    from ..data.datasets import partial

    path.parent.mkdir(parents=True, exist_ok=True)
    partial.remove_stale(path.parent)
    partial.save(path, lambda f: np.save(f, codes, allow_pickle=False))
    fsync_dir(path.parent)


def compute(body, preprocess, images: np.ndarray) -> np.ndarray:
    """The codes (N, D) float32 of raw `images` (N, H, W, C): `preprocess`, then `body`, a batch at a time."""
    from ..train import inference

    codes = inference.scores(body, images, transform=preprocess)
    if codes.ndim != 2:
        raise ValueError(f"the body's output is {codes.shape[1:]} per image, not a vector: the head it feeds is "
                         "a Linear layer, which takes (N, D)")
    return np.asarray(codes, dtype=np.float32)


def cached_codes(body, preprocess, images: np.ndarray, model_key: str | None = None,
                 root: str | os.PathLike | None = None) -> tuple[np.ndarray, Path, bool]:
    """(codes (N, D) float32, their cache file, read from the cache) for raw `images`: from the cache when an
    entry for this body, preprocessing and these images is there, else computed and cached (a cache that cannot be
    written, a full disk or a read-only folder, is a warning: the codes are computed, only the next run is slower).
    `model_key`: `model_digest(body, preprocess)`, when the caller has it already."""
    from .. import console

    path = cache_file(model_key or model_digest(body, preprocess), images, root)
    codes = _read(path, len(images))
    if codes is not None:
        return codes, path, True
    codes = compute(body, preprocess, images)
    try:
        _write(path, codes)
    except OSError as err:
        console.note(f"warning: could not cache the CNN codes in {path.parent}: {err.strerror or err}")
    return codes, path, False
