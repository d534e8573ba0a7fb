"""Keyed random numbers: each value a pure function of (seed, epoch, batch, sample id, draw, element).

A `np.random.Generator` hands out numbers in the order they are asked for, so a batch split over K
processes, or a run resumed under another K, would see other numbers. `KeyedRandom` has no state that
depends on the order of samples: a draw of shape (n, ...) gives row i the numbers of sample `ids[i]`,
whichever process computes them and whoever else is in its batch. It is a drop-in for the Generator
methods the augmentations and stochastic layers use (`random`, `integers`, `standard_normal`, `normal`).

The numbers: SplitMix64 (Steele, Lea & Flood 2014) — a row key from the seed, the draw's stream, epoch,
batch and sample id, then `mix(row key + (element + 1)·γ)` per element, vectorised over the whole draw.

Stochastic layers draw through `layer_random(self.rng)`: inside `scope(keys)` (the trainer's forward pass of
a keyed run) a fresh KeyedRandom per call, in call order; elsewhere the layer's own generator.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

_GAMMA = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix_int(z: int) -> int:
    """SplitMix64's finaliser on a Python int (exact modulo 2**64)."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array, in place (wraps modulo 2**64)."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def _key(*parts: int) -> int:
    k = 0
    for p in parts:
        k = _mix_int(k + _GAMMA + (int(p) & _MASK))
    return k


class KeyedRandom:
    """Random numbers keyed by (seed, epoch, batch, sample id): `ids` (n,) int — the samples of this batch by
    their index in the dataset — or None for draws shared by the whole batch (one number per element).

    A draw of `size` (n, ...) with ids gives each row its sample's numbers; the i-th draw of a KeyedRandom uses
    stream i, so calling the same methods in the same order reproduces the same numbers."""

    def __init__(self, seed: int, epoch: int = 0, batch: int = 0, ids=None, stream: int = 0):
        self.seed, self.epoch, self.batch, self.stream = int(seed), int(epoch), int(batch), int(stream)
        self.ids = None if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        self._draws = 0

    def shared(self) -> KeyedRandom:
        """The same key without sample ids: draws shared by the whole (global) batch."""
        return KeyedRandom(self.seed, self.epoch, self.batch, None, self.stream)

    def per_sample(self, stream: int) -> KeyedRandom:
        """The same samples keyed by (seed, `stream`, sample id) alone, epoch and batch fixed at 0: numbers a
        sample keeps for the whole run (altflip's base flip), whichever epoch or batch asks for them. Give a
        `stream` no other key uses (the loader's augmentations draw from stream 0, keyed layers from 1000 on)."""
        return KeyedRandom(self.seed, 0, 0, self.ids, stream)

    def _bits(self, size) -> np.ndarray:
        """uint64 array of `size`, the next draw's raw numbers."""
        shape = () if size is None else ((int(size),) if np.isscalar(size) else tuple(int(s) for s in size))
        draw = self._draws
        self._draws += 1
        base = _key(self.seed, self.stream, draw, self.epoch)
        count = int(np.prod(shape, dtype=np.int64))
        if self.ids is None:  # one row: the batch
            rows = np.array([_key(base, self.batch)], dtype=np.uint64)
            per_row = count
        else:
            if not shape or shape[0] != len(self.ids):
                raise ValueError(f"KeyedRandom: a per-sample draw needs size (n, ...) with n = {len(self.ids)} "
                                 f"samples, got {shape}; use .shared() for draws of the whole batch")
            with np.errstate(over="ignore"):
                rows = _mix(self.ids.astype(np.uint64) * np.uint64(_GAMMA) + np.uint64(_key(base, self.batch)))
            per_row = count // max(len(self.ids), 1)
        with np.errstate(over="ignore"):
            z = rows[:, None] + (np.arange(1, per_row + 1, dtype=np.uint64) * np.uint64(_GAMMA))[None, :]
            return _mix(z).reshape(shape)

    def random(self, size=None, dtype=np.float64, out=None):
        """Uniform [0, 1) of `size` (float64 from 53 bits, float32 from 24)."""
        dtype = np.dtype(dtype)
        bits = self._bits(size)
        if dtype == np.float32:
            values = (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
        else:
            values = (bits >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
        if out is not None:
            out[...] = values
            return out
        return values if size is not None else values[()]

    def integers(self, low, high=None, size=None, dtype=np.int64):
        """Integers uniform in [low, high) (or [0, low) without high)."""
        if high is None:
            low, high = 0, low
        span = np.asarray(high) - np.asarray(low)
        values = np.floor(self.random(size) * span).astype(np.int64) + np.asarray(low, dtype=np.int64)
        values = np.minimum(values, np.asarray(high, dtype=np.int64) - 1)  # never `high`, whatever the rounding
        return values.astype(dtype) if size is not None else dtype(values)

    def standard_normal(self, size=None, dtype=np.float64):
        """Standard normal numbers by Box–Muller: two uniforms per value."""
        shape = () if size is None else ((int(size),) if np.isscalar(size) else tuple(size))
        u = self.random((*shape, 2) if shape else (2,))
        z = np.sqrt(-2.0 * np.log1p(-u[..., 0])) * np.cos(2.0 * np.pi * u[..., 1])
        z = z.astype(dtype, copy=False)
        return z if size is not None else z[()]

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + scale * self.standard_normal(size)


_scope = threading.local()


@contextlib.contextmanager
def scope(seed: int, epoch: int, batch: int, ids):
    """Inside: `layer_random` hands each stochastic layer call a KeyedRandom keyed by this batch's sample
    `ids`, stream = the call's position in the pass (a net's layers run in a fixed order)."""
    previous = getattr(_scope, "keys", None)
    _scope.keys, _scope.calls = (int(seed), int(epoch), int(batch), np.asarray(ids)), 0
    try:
        yield
    finally:
        _scope.keys = previous


def layer_random(fallback: np.random.Generator, shared: bool = False):
    """The generator for one call of a stochastic layer: within `scope(...)` a KeyedRandom for this call
    (per sample, or `shared` by the whole batch, e.g. DropConnect's weight mask); else `fallback`."""
    keys = getattr(_scope, "keys", None)
    if keys is None:
        return fallback
    _scope.calls += 1
    seed, epoch, batch, ids = keys
    keyed = KeyedRandom(seed, epoch, batch, ids, stream=1000 + _scope.calls)
    return keyed.shared() if shared else keyed
