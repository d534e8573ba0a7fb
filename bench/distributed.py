"""Data-parallel training on one machine, measured: K ranks × (cores ÷ K) threads against one process using
every core, on the same global batch, and what the measured communication projects for K machines.

    python bench/distributed.py [--model reference] [--batch 128] [--steps 20] [--ranks 2]

Each configuration runs this script as a worker (`--_worker`, under `mpiexec -n K` for K > 1): it builds the
zoo model, trains `--steps` steps on CIFAR-sized images (random: the speed does not depend on the values)
with exactly the trainer's distributed step (`train.Trainer(comm=…)`:
sharded batch, forward, backward, gradient averaging, update), and reports per step the wall time and the
time spent in collectives (`MpiComm.seconds`). The parent prints images/s, the epoch time at that speed,
the communication share, the bytes each rank sends per step, the allreduce's measured α (latency) and β
(bandwidth) between the ranks, and a projection for K machines: per step, compute(B / K) + ring allreduce
2(K − 1)/K · bytes / β + 2(K − 1) · α, with a network's α and β in place of the shared-memory ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NETWORKS = {"10 GbE": (50e-6, 1.25e9), "1 GbE": (50e-6, 0.125e9)}  # α seconds, β bytes/s (assumed)


def _images(n: int, shape):
    """n random images and labels: a step's speed does not depend on the values."""
    rng = np.random.default_rng(0)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 10, n)


def _allreduce_alpha_beta(comm) -> tuple[float, float]:
    """Latency α (s) and bandwidth β (bytes/s) of this job's allreduce: t(bytes) = α + bytes / β, fitted on
    8 B and 64 MB (medians of several)."""
    def timed(nbytes, repeats):
        buf = np.zeros(nbytes // 4, dtype=np.float32)
        times = []
        for _ in range(repeats):
            comm.barrier()
            t = time.perf_counter()
            comm.allreduce(buf)
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    small, big = timed(8, 50), timed(64 << 20, 5)
    return small, (64 << 20) / max(big - small, 1e-9)


def worker(args) -> None:
    import striate as st
    from striate.distributed import share_cores, world
    from striate.nn.losses import SoftmaxCrossEntropy
    from striate.train import Trainer

    comm = world()
    threads = share_cores(comm)
    shape = (32, 32, 3)
    model = st.models.get(args.model, 10, 3, rng=np.random.default_rng(0))
    opt = st.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    trainer = Trainer(model, SoftmaxCrossEntropy(), opt, comm=comm)
    x, y = _images(args.batch * 4, shape)
    part = np.array_split(np.arange(args.batch), comm.size)[comm.rank]
    if comm.size > 1:
        trainer._parallel.start([])
    step_times, comm_times = [], []
    for i in range(args.steps + 3):
        j = (i % 4) * args.batch
        xb, yb = x[j:j + args.batch][part], y[j:j + args.batch][part]
        before = getattr(comm, "seconds", 0.0)
        comm.barrier()
        t = time.perf_counter()
        trainer.train_step(xb, yb)
        if i >= 3:  # warm-up: first-use algorithm choices, workspaces
            step_times.append(time.perf_counter() - t)
            comm_times.append(getattr(comm, "seconds", 0.0) - before)
    alpha, beta = _allreduce_alpha_beta(comm) if comm.size > 1 else (0.0, float("inf"))
    if comm.is_root:
        grad_bytes = sum(p.grad.nbytes for p in model.parameters() if p.requires_grad)
        print(json.dumps({"ranks": comm.size, "threads": threads, "step": float(np.median(step_times)),
                          "comm": float(np.median(comm_times)), "grad_bytes": grad_bytes, "alpha": alpha,
                          "beta": beta, "batch": args.batch}))


def run(ranks: int, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", "--model", args.model, "--batch",
           str(args.batch), "--steps", str(args.steps)]
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(ranks), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_", "PMIX_"))}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="reference")
    ap.add_argument("--batch", type=int, default=128, help="the global batch")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        return worker(args)
    one, many = run(1, args), run(args.ranks, args)
    print(f"{args.model}, global batch {args.batch}, medians of {args.steps} steps, {os.cpu_count()} cores\n")
    print("| configuration | step ms | images/s | CIFAR-10 epoch (50,000) | in collectives |")
    print("|---|---:|---:|---:|---:|")
    for r in (one, many):
        ips = r["batch"] / r["step"]
        print(f"| {r['ranks']} rank(s) × {r['threads']} thread(s) | {1e3 * r['step']:.0f} | {ips:.0f} | "
              f"{50000 / ips:.0f} s | {1e3 * r['comm']:.1f} ms ({100 * r['comm'] / r['step']:.1f} %) |")
    nbytes = many["grad_bytes"]
    print(f"\nGradient bytes per step and rank: {nbytes / 2**20:.1f} MiB (float32) plus 5 statistics. "
          f"Allreduce between the ranks here: α = {1e6 * many['alpha']:.0f} µs, β = {many['beta'] / 1e9:.2f} GB/s.")
    compute_per_image = (one["step"] - one["comm"]) / one["batch"]  # one process, its cores
    print(f"\nProjection for K machines like this one (each computing B/K images at {1e3 * compute_per_image:.2f} "
          "ms per image; ring allreduce 2(K−1)/K·bytes/β + 2(K−1)·α; network α, β assumed):\n")
    print("| K | " + " | ".join(f"{name}: step ms (speed-up)" for name in NETWORKS) + " |")
    print("|---:|" + "---:|" * len(NETWORKS))
    for k in (1, 2, 4, 8, 16):
        cells = []
        for alpha, beta in NETWORKS.values():
            comm_s = 0.0 if k == 1 else 2 * (k - 1) / k * nbytes / beta + 2 * (k - 1) * alpha
            step = compute_per_image * one["batch"] / k + comm_s
            cells.append(f"{1e3 * step:.0f} ({compute_per_image * one['batch'] / step:.2f}×)")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
