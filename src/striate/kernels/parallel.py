"""striate's own threads: each convolution splits its batch, and each elementwise pass (BatchNorm, ReLU,
pooling, padding, im2col copies) its array, into one contiguous part per thread.

NumPy's ufuncs and copies run on one core, and OpenBLAS's threads help only inside a multiply: during
a training step they idle (spin-waiting) through every other pass. NumPy releases the GIL in its loops
and in BLAS calls, so handing the parts to a small thread pool keeps every core busy for the whole
step, each thread running single-threaded GEMMs on its share of the batch. Measured on 2 cores, a
training step of the reference net went from 145 (OpenBLAS on 2 threads) to 180–190 images/s.

BLAS and striate must not both use every core: while striate runs more than one thread, BLAS is pinned
to one thread (through threadpoolctl) — spinning BLAS workers next to striate's threads made steps
several times slower. `set_num_threads(1)` (or `STRIATE_NUM_THREADS=1`) hands the cores back to BLAS.

Results are reproducible for a given thread count: the split depends only on the array's length and the
thread count, and BLAS's own thread count depends only on striate's, never on what the process computed
before. The pin is taken at striate's first computation (the first layer built or kernel called) and
kept until the count changes. (It used to be taken when the pool first started, so small products that
ran before the first large one used a multi-threaded BLAS in one process and a pinned one in another:
on OpenBLAS's Haswell kernels those differ in the last bit, and a resumed run drifted from a straight
one.) Results equal one thread's within float32 rounding: partial weight gradients are summed in a
different order.
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
_blas_limit = None  # threadpoolctl's limiter while striate pins BLAS to one thread


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _default_threads() -> int:
    env = os.environ.get("STRIATE_NUM_THREADS", "").strip()
    if not env:
        return cores()
    try:
        return max(1, int(env))
    except ValueError:
        raise ValueError(f"STRIATE_NUM_THREADS must be a whole number, got {env!r}") from None


def num_threads() -> int:
    """Threads striate's kernels use: env `STRIATE_NUM_THREADS`, default every available core."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(n: int) -> None:
    """Use `n` threads from now on; 1 runs everything in the calling thread and leaves BLAS's own
    thread count to BLAS (its default, or OPENBLAS_NUM_THREADS)."""
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: need a whole number ≥ 1, got {n!r}")
    _threads = n
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _release_blas()
    configure()


def configure() -> None:
    """Apply the thread setting before striate computes anything: with more than one striate thread,
    BLAS runs on one thread from now on. Idempotent and cheap; called by every `for_parts` and by
    `Module.__init__`, so no computation of striate's sees an unpinned BLAS that a later one would not."""
    if _blas_limit is None and num_threads() > 1:
        _pin_blas()


def _pin_blas() -> None:
    """BLAS to one thread while striate's pool runs (threadpoolctl; without it, a one-time warning)."""
    global _blas_limit
    if _blas_limit is not None:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import warnings

        warnings.warn("striate runs its own threads but threadpoolctl is not installed to pin BLAS to one "
                      "thread: set OPENBLAS_NUM_THREADS=1 (or STRIATE_NUM_THREADS=1)", stacklevel=3)
        _blas_limit = False
        return
    _blas_limit = threadpool_limits(limits=1, user_api="blas")


def _release_blas() -> None:
    global _blas_limit
    if _blas_limit:
        _blas_limit.restore_original_limits()
    _blas_limit = None


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
    configure()
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
