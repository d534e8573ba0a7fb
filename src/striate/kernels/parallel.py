"""Spread elementwise NumPy work over the cores.

BLAS multiplies run on every core, but NumPy's ufuncs, copies and reductions run on one: during a
training step the other cores idle through every BatchNorm, ReLU, pooling pass and im2col copy.
NumPy releases the GIL inside those loops, so splitting an array into one contiguous part per core and
handing the parts to a small thread pool runs them in parallel. The split depends only on the array's
length and the thread count, so results are reproducible for a given `STRIATE_NUM_THREADS`.
It is opt-in (see `num_threads`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

MIN_BYTES = 1 << 19  # below this the hand-off costs more than it saves

_pool: ThreadPoolExecutor | None = None
_threads: int | None = None
_local = threading.local()


def _default_threads() -> int:
    env = os.environ.get("STRIATE_NUM_THREADS")
    return max(1, int(env)) if env else 1


def num_threads() -> int:
    """Threads used for elementwise work: env `STRIATE_NUM_THREADS`, default 1.

    Off by default: measured on 2 cores, splitting elementwise passes while OpenBLAS's own worker
    threads spin-wait between multiplies made a training step slower, not faster."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(n: int) -> None:
    """Use `n` threads for elementwise work from now on (1 disables threading)."""
    global _threads, _pool
    if n < 1:
        raise ValueError(f"set_num_threads: need n ≥ 1, got {n}")
    _threads = int(n)
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def _worker_init():
    _local.inside = True


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=num_threads() - 1, thread_name_prefix="striate",
                                   initializer=_worker_init)
    return _pool


def split(n: int, parts: int) -> list[slice]:
    """`parts` contiguous slices covering range(n), sizes differing by at most one."""
    parts = max(1, min(parts, n))
    q, r = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + q + (i < r)
        bounds.append(slice(start, stop))
        start = stop
    return bounds


def for_parts(fn: Callable[[slice], object], n: int, nbytes: int) -> list:
    """[fn(part) for part in split(n, threads)], run in parallel when the work is large enough.

    `fn` must only write to disjoint slices of shared arrays. Small jobs, single-thread settings and
    calls made from inside a worker (nesting) run inline in the calling thread.
    """
    threads = num_threads()
    if threads == 1 or nbytes < MIN_BYTES or n < 2 or getattr(_local, "inside", False):
        return [fn(slice(0, n))]
    parts = split(n, threads)
    futures = [_executor().submit(fn, p) for p in parts[:-1]]
    _local.inside = True  # the caller's own part: its nested splits run inline too
    try:
        last = fn(parts[-1])
    finally:
        _local.inside = False
    return [f.result() for f in futures] + [last]
