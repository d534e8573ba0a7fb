"""Shared pieces of the side-by-side benchmarks: thread setup and an alternating timer that reports
medians (the nets themselves are in models.py). Scripts, not tests."""

from __future__ import annotations

import time

import numpy as np


def blas_threads() -> int:
    """NumPy's BLAS thread count right now (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


def compute_threads() -> int:
    """Threads striate computes with: its own pool's (BLAS pinned to one thread), or with
    STRIATE_NUM_THREADS=1 NumPy's BLAS threads. torch.set_num_threads gets the same number."""
    from striate.kernels.parallel import num_threads

    return num_threads() if num_threads() > 1 else blas_threads()


def setup_torch():
    import torch

    torch.set_num_threads(compute_threads())
    return torch


def race(fns: dict, repeats: int = 10, warmup: int = 2, block: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, measured side by side: after `warmup` calls each, the
    functions take turns in blocks of `block` timed calls, each block preceded by one untimed call —
    both runtimes' worker threads keep spinning for a while after their last task, and the first call
    after a switch pays for the other's spinning threads. `repeats` timed calls each in all."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    while min(len(v) for v in times.values()) < repeats:
        for k, f in fns.items():
            f()
            for _ in range(block):
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}
