"""`DataLoader`: shuffled minibatches without replacement, prepared on a background thread, exactly resumable.

Each epoch draws one permutation from the loader's generator; batch k holds samples perm[k*B:(k+1)*B].
A single producer thread prepares batches strictly in order (index, augment with the same generator,
convert to float32, preprocess) one ahead of the consumer, so every random draw happens in the same order
as without prefetching and the batches are identical either way. With each batch the producer records the
generator state right after preparing it; `state_dict()` reports that snapshot, not the live generator
(which may already have run ahead), so a loader restored from it yields exactly the batches that follow.

Keyed (`keyed=seed`): the augmentations draw from a `KeyedRandom` keyed by (seed, epoch, batch, sample id)
instead of the generator, which then only shuffles; a sample's crop and flip no longer depend on which other
samples share its batch. With `shard=(rank, ranks)` each of `ranks` processes yields its part of every
global batch of `batch_size` (`np.array_split`: a short last batch splits as evenly as it goes, a part may
be empty); every process shuffles alike and the position (`state_dict`) counts global batches, so a run
resumes under any number of processes.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from ..kernels.keyed_random import KeyedRandom
from .datasets.base import check_images, check_labels
from .errors import DataError
from .rows import Rows, take_rows

_END = object()


class DataLoader:
    """Minibatches (x float32 (B, H, W, C) or transform's output, y int64 (B,)) over (images, labels).

    images: (N, H, W, C) uint8 or float, an ndarray, a memory map (an image folder's cache) or data.Rows (a
    run's part of one); only a batch's rows are read and converted, so memory does not grow with N.

    transform: `transform(x, rng)` applied to each raw batch before the float32 conversion: augmentations,
    `Compose`, or fitted preprocessors. The float32 conversion does not rescale: add `Scale()` for [0, 1].
    rng: np.random.Generator used for the permutation and the augmentations; give the loader its own (a
    generator shared with another thread would be drawn in a timing-dependent order). Required with shuffle.
    Breaking out of an epoch and iterating again continues that epoch where it stopped.
    keyed: seed of per-sample keyed augmentation randomness (see the module docstring); `keys` is then the
    (seed, epoch, batch, sample ids) of the batch last yielded, for keyed stochastic layers.
    shard: (rank, ranks) — this process's part of each global batch; needs `keyed` when ranks > 1.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool = True,
                 drop_last: bool = False, rng: np.random.Generator | None = None, transform=None,
                 prefetch: bool = True, keyed: int | None = None, shard: tuple[int, int] = (0, 1)):
        check_images(images.base if isinstance(images, Rows) else images, "DataLoader images")
        self.labels = check_labels(labels, len(images), name="DataLoader labels")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise DataError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if rng is None and shuffle:
            raise DataError("DataLoader: shuffle=True needs rng=np.random.default_rng(seed)")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise DataError(f"DataLoader: rng must be a numpy Generator, got {type(rng).__name__}")
        if transform is not None and not callable(transform):
            raise DataError(f"DataLoader: transform must be callable as transform(x, rng), got {transform!r}")
        rank, ranks = (int(v) for v in shard)
        if ranks < 1 or not 0 <= rank < ranks:
            raise DataError(f"DataLoader: shard must be (rank, ranks) with 0 ≤ rank < ranks, got {shard!r}")
        if ranks > 1 and keyed is None:
            raise DataError("DataLoader: a shard of a batch needs keyed=seed (a generator's draws would depend on "
                            "how the batch is split)")
        self.shard, self.keyed = (rank, ranks), None if keyed is None else int(keyed)
        self.keys = None  # (seed, epoch, batch, ids) of the batch last yielded, when keyed
        self.images = images
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.transform = transform
        self.prefetch = bool(prefetch)
        self.epoch = 0
        self._perm: np.ndarray | None = None  # set while an epoch is under way
        self._batch = 0  # batches of the current epoch already yielded
        self._rng_state = None  # generator state right after the last yielded batch (mid-epoch only)

    def __len__(self) -> int:
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _prepare(self, k: int):
        idx = self._perm[k * self.batch_size:(k + 1) * self.batch_size]
        rank, ranks = self.shard
        if ranks > 1:
            idx = np.array_split(idx, ranks)[rank]
        x = take_rows(self.images, idx)  # this batch's rows only, out of a memory map too
        keys = None if self.keyed is None else (self.keyed, self.epoch, k, idx)
        if self.transform is not None and len(idx):
            x = self.transform(x, self.rng if keys is None else KeyedRandom(*keys))
        x = np.asarray(x, dtype=np.float32)
        return x, self.labels[idx], self.rng.bit_generator.state, keys

    def _produce(self, start: int, out: queue.Queue, stop: threading.Event) -> None:
        def put(item) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for k in range(start, len(self)):
                if stop.is_set() or not put(self._prepare(k)):
                    return
            put(_END)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(err)

    def __iter__(self):
        if self._perm is None:
            n = len(self.images)
            self._perm = self.rng.permutation(n) if self.shuffle else np.arange(n)
            self._batch = 0
            self._rng_state = self.rng.bit_generator.state
        start = self._batch
        if not self.prefetch:
            try:
                for k in range(start, len(self)):
                    x, y, self._rng_state, self.keys = self._prepare(k)
                    self._batch = k + 1
                    yield x, y
            finally:
                self._settle()
            return
        out: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(start, out, stop), daemon=True,
                                  name="striate-prefetch")
        worker.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                x, y, self._rng_state, self.keys = item
                self._batch += 1
                yield x, y
        finally:
            stop.set()
            worker.join()
            self._settle()

    def _settle(self) -> None:
        """After an epoch ends or is abandoned: put the generator where the last yielded batch left it."""
        if self._rng_state is not None:
            self.rng.bit_generator.state = self._rng_state
        if self._perm is not None and self._batch >= len(self):
            self._perm, self._batch, self._rng_state = None, 0, None
            self.epoch += 1

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: generator state, epoch, and mid-epoch the permutation and
        the number of batches already yielded."""
        mid = self._perm is not None
        return {
            "epoch": self.epoch,
            "batch": self._batch if mid else 0,
            "perm": self._perm.copy() if mid else None,
            "rng": self._rng_state if mid else self.rng.bit_generator.state,
            "num_samples": len(self.images),
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`; the next iteration yields the batches that would have followed."""
        keys = ("epoch", "batch", "perm", "rng", "num_samples", "batch_size")
        missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
        if missing or not isinstance(state["rng"], dict) or "bit_generator" not in state["rng"]:
            raise DataError(f"DataLoader state: missing {missing or ['rng.bit_generator']} (not a DataLoader "
                            f"state_dict, or a damaged one)")
        if state["num_samples"] != len(self.images) or state["batch_size"] != self.batch_size:
            raise DataError(f"DataLoader state for {state['num_samples']} samples / batch {state['batch_size']} "
                            f"does not fit {len(self.images)} samples / batch {self.batch_size}")
        if state["rng"]["bit_generator"] != type(self.rng.bit_generator).__name__:
            raise DataError(f"DataLoader state uses {state['rng']['bit_generator']}, this loader's generator is "
                            f"{type(self.rng.bit_generator).__name__}")
        perm = None
        if state["perm"] is not None:
            n = len(self.images)
            perm = check_labels(state["perm"], name="DataLoader state: 'perm'")
            if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
                raise DataError(f"DataLoader state: 'perm' is not a permutation of {n} samples")
        try:
            self.rng.bit_generator.state = state["rng"]
        except (ValueError, TypeError, KeyError) as err:
            raise DataError(f"DataLoader state: bad generator state 'rng' ({type(err).__name__}: {err})") from None
        self.epoch = int(state["epoch"])
        if perm is None:
            self._perm, self._batch, self._rng_state = None, 0, None
        else:
            self._perm, self._batch, self._rng_state = perm, int(state["batch"]), state["rng"]

    def __repr__(self) -> str:
        shard = f", shard={self.shard}" if self.shard[1] > 1 else ""
        keyed = f", keyed={self.keyed}" if self.keyed is not None else ""
        return (f"DataLoader(n={len(self.images)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, batches={len(self)}{keyed}{shard}, transform={self.transform!r})")
