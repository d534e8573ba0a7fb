"""Shared pieces of the side-by-side benchmarks: the reference CIFAR net in striate and in PyTorch,
thread setup, and an alternating timer that reports medians. Scripts, not tests."""

from __future__ import annotations

import time

import numpy as np


def blas_threads() -> int:
    """NumPy's BLAS thread count (threadpoolctl), used for torch.set_num_threads too."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


def setup_torch():
    import torch

    torch.set_num_threads(blas_threads())
    return torch


def reference_net_striate(rng, num_classes=10):
    """[conv3×3-64, BN, ReLU]×2, pool, [conv3×3-128, BN, ReLU]×2, pool, [conv3×3-256, BN, ReLU]×2, pool,
    flatten, linear-256, ReLU, dropout 0.5, linear-10 on 32×32×3."""
    import striate as st
    from striate.nn.activation import ReLU
    from striate.nn.dropout import Dropout
    from striate.nn.norm import BatchNorm
    from striate.nn.pool import MaxPool2d

    layers, c = [], 3
    for width in (64, 128, 256):
        for _ in range(2):
            layers += [st.nn.Conv2d(c, width, 3, padding=1, rng=rng), BatchNorm(width), ReLU()]
            c = width
        layers.append(MaxPool2d(2))
    layers += [st.nn.Flatten(), st.nn.Linear(4 * 4 * 256, 256, rng=rng), ReLU(), Dropout(0.5, rng=rng),
               st.nn.Linear(256, num_classes, rng=rng)]
    return st.nn.Sequential(*layers)


def reference_net_torch(torch, num_classes=10):
    nn = torch.nn
    layers, c = [], 3
    for width in (64, 128, 256):
        for _ in range(2):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            c = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(4 * 4 * 256, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(256, num_classes)]
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


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
