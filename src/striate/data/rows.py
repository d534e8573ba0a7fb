"""Images read a batch at a time: `take_rows` gathers rows of an in-memory or memory-mapped array, `Rows` is a
lazy subset of one (a run's training or held-out part) with an optional per-batch transform (the fitted
preprocessing), and `row_chunks` walks an array in chunks of bounded size.

A run's memory must not grow with its data set: an image folder's decoded uint8 cache stays memory-mapped
(image_folder.py) and only the rows a batch needs are copied out of it; float32 exists per batch only. Pages
of a read-only mapping that a read touched count in the process's resident set although the kernel can drop
them at will, so after each read the mapping's pages are released (MADV_DONTNEED: the file's pages stay in the
page cache, the process no longer maps them) and peak RSS stays at a batch's worth, whatever N is.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

CHUNK_BYTES = 32 << 20  # float64 bytes of one chunk of a streaming pass (preprocessing statistics)


def release(images) -> None:
    """Unmap the pages of the memory map `images` that reads or writes touched (nothing for other arrays). Only
    shared maps ('r', 'r+', 'w+'): their pages are the file's, kept in the page cache, and mapped again when
    touched (a private 'c' map would lose its changes)."""
    m = getattr(images, "_mmap", None)
    if m is not None and getattr(images, "mode", None) in ("r", "r+", "w+") and hasattr(mmap, "MADV_DONTNEED"):
        try:
            m.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed map, a platform without it: only memory is at stake
            pass


def take_rows(images, key) -> np.ndarray:
    """images[key] (a slice or int64 positions) as an in-memory array, never a view into a memory map (whose
    pages are released once copied). Values and order are exactly those of `images[key]`."""
    if isinstance(images, Rows):
        return images[key]
    if not isinstance(images, np.memmap):
        return images[key]
    out = images[key]
    if isinstance(key, slice | int | np.integer):  # a view into the map (positions gather a copy already)
        out = np.array(out)
    release(images)
    return out


class Rows:
    """A lazy (M, ...) array: rows `index` of `base` (N, ...) (all of them when None), each batch read passed
    through `transform(batch)` when given. Nothing is read until indexed: `rows[i]` is one row, `rows[a:b]`
    and `rows[positions]` an ndarray batch (`take_rows` of the base, then the transform); `take(positions)`
    and `map(transform)` are lazy. `np.asarray(rows)` reads every row at once: for small arrays only.

    shape, dtype and ndim are those of the batch rows[:] would be (found from one row when transformed).
    """

    def __init__(self, base, index=None, transform=None):
        self.base = base
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        self.transform = transform
        self._row = None  # one transformed row: the shape and dtype of the output

    def __len__(self) -> int:
        return len(self.base) if self.index is None else len(self.index)

    def _probe(self) -> np.ndarray:
        if self._row is None:
            self._row = self[:1] if len(self) else self.transform(take_rows(self.base, slice(0, 1)))
        return self._row

    @property
    def shape(self) -> tuple[int, ...]:
        rest = tuple(self.base.shape[1:]) if self.transform is None else tuple(self._probe().shape[1:])
        return (len(self), *rest)

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype if self.transform is None else self._probe().dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def positions(self, key) -> np.ndarray | slice:
        """The base's rows that `key` (an int, a slice, int positions or a boolean mask) names."""
        if isinstance(key, slice) and self.index is None:
            return key
        if isinstance(key, slice):
            return self.index[key]
        key = np.asarray(key)
        if key.dtype == np.bool_:
            key = np.flatnonzero(key)
        if key.ndim > 1 or not (key.size == 0 or np.issubdtype(key.dtype, np.integer)):
            raise IndexError(f"Rows: index with an int, a slice or 1-D positions, got {key!r}")
        n = len(self)
        if key.size and (key.min() < -n or key.max() >= n):
            raise IndexError(f"Rows: position out of range for {n} rows")
        key = np.where(key < 0, key + n, key).astype(np.int64)
        return key if self.index is None else self.index[key]

    def __getitem__(self, key):
        if isinstance(key, int | np.integer):
            return self[np.array([key])][0]
        x = take_rows(self.base, self.positions(key))
        return x if self.transform is None else self.transform(x)

    def take(self, positions) -> Rows:
        """The rows at `positions` (of this subset), lazily: nothing is read."""
        pos = self.positions(positions)
        if isinstance(pos, slice):
            pos = np.arange(len(self.base), dtype=np.int64)[pos]
        return Rows(self.base, pos, self.transform)

    def map(self, transform) -> Rows:
        """These rows with `transform` applied to every batch read (after this one's own transform)."""
        inner = self.transform
        return Rows(self.base, self.index, transform if inner is None else (lambda x: transform(inner(x))))

    def __array__(self, dtype=None, copy=None):
        x = self[:]
        return x if dtype is None else x.astype(dtype, copy=False)

    def __repr__(self) -> str:
        kind = "memory-mapped " if isinstance(self.base, np.memmap) else ""
        return f"Rows({len(self)} of {len(self.base)} {kind}rows, transform={self.transform!r})"


def chunk_rows(shape: tuple[int, ...], budget: int | None = None) -> int:
    """Rows per chunk so that one chunk of `shape` (N, ...) is about `budget` bytes of float64 (CHUNK_BYTES)."""
    return max(1, (budget or CHUNK_BYTES) // (8 * max(1, math.prod(shape[1:]))))


def row_chunks(x, rows: int | None = None):
    """x (N, ...) (an ndarray, a memory map or Rows) as consecutive in-memory batches of `rows` rows (default
    `chunk_rows`), in order; each one read when it is reached."""
    rows = rows or chunk_rows(tuple(x.shape))
    for lo in range(0, len(x), rows):
        yield take_rows(x, slice(lo, lo + rows))
