"""One-command benchmark: striate vs PyTorch (CPU, channels_last, equal thread counts) side by side in one
process run, alternating after warm-up (common.race, medians). Writes results.json and results.md into
--out and prints the Markdown.

    python bench/run.py [--batch 128] [--repeats 10] [--out bench/results] [--googlenet-width 0.25]

Sections: training step and inference images/s per net with the striate/PyTorch ratio; achieved GFLOP/s of
the training step against the measured GEMM peak; peak resident memory of a training process per framework
(subprocesses, `--_memory striate|torch`); `import` time (fresh subprocesses); per-layer ratios (layers.py).
Every ratio is a speed ratio, striate / PyTorch: ≥ 1 means striate is at least as fast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import layers  # noqa: E402
from common import compute_threads, race, setup_torch  # noqa: E402
from models import NETS, macs_per_image, max_output_difference, striate_net, to_torch  # noqa: E402
from train_step import striate_infer_fn, striate_step_fn, torch_infer_fn, torch_step_fn  # noqa: E402

HERE = os.path.abspath(__file__)


def machine(torch) -> dict:
    """CPU model, cores, BLAS (threadpoolctl), library versions."""
    from threadpoolctl import threadpool_info

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    from striate.kernels.conv_algorithm import get_conv_algorithm
    from striate.kernels.jit import numba_enabled

    return {"cpu": cpu, "cores": os.cpu_count(), "blas": "; ".join(blas) or "unknown", "threads": compute_threads(),
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "conv_algorithm": get_conv_algorithm(), "numba": numba_enabled(),
            "coretype": os.environ.get("OPENBLAS_CORETYPE", "")}


def gemm_peak(n: int = 4096, repeats: int = 5) -> dict:
    """GFLOP/s of an n×n float32 NumPy matmul (2n³ flops) with BLAS on every core, median of `repeats` after
    one warm-up."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), dtype=np.float32)
    from threadpoolctl import threadpool_limits

    times = []
    with threadpool_limits(limits=os.cpu_count(), user_api="blas"):  # striate may have pinned BLAS to one
        for i in range(repeats + 1):
            t = time.perf_counter()
            np.matmul(a, b, out=out)
            if i:
                times.append(time.perf_counter() - t)
    return {"n": n, "gflops": 2 * n**3 / statistics.median(times) / 1e9}


def import_times(repeats: int = 5) -> dict:
    """Median seconds of `import striate` and of `import torch`, each in a fresh interpreter, alternated."""
    times: dict[str, list[float]] = {"striate": [], "torch": []}
    for _ in range(repeats):
        for name in times:
            code = f"import time; t = time.perf_counter(); import {name}; print(time.perf_counter() - t)"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            times[name].append(float(out.split()[-1]))
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB: VmHWM from /proc/self/status where there is one.
    resource.getrusage(RUSAGE_SELF).ru_maxrss is the fallback only: Linux carries it across fork + exec,
    so a child started from this (large) process would report its parent's peak as its own."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_child(framework: str, batch: int, steps: int = 3) -> dict:
    """Run in a subprocess: peak RSS growth of `steps` training steps of the reference net, in MiB.
    Baseline = the peak right after the imports (both frameworks' imports in the torch child, since its net
    is translated from the striate one; the striate net is deleted before stepping)."""
    import striate  # noqa: F401

    torch = setup_torch() if framework == "torch" else None
    base = peak_rss_mib()
    s_net, shape = striate_net("reference", np.random.default_rng(0))
    if torch is None:
        step = striate_step_fn(s_net, shape, batch)
    else:
        t_net = to_torch(s_net, torch)
        del s_net
        step = torch_step_fn(torch, t_net, shape, batch)
    for _ in range(steps):
        step()
    return {"framework": framework, "baseline_mib": base, "growth_mib": peak_rss_mib() - base}


def peak_memory(batch: int) -> dict:
    """memory_child for each framework, each in its own process."""
    res = {}
    for fw in ("striate", "torch"):
        cmd = [sys.executable, HERE, "--_memory", fw, "--batch", str(batch)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        res[fw] = json.loads(out.strip().splitlines()[-1])
    return res


def nets(torch, batch: int, repeats: int, googlenet_width: float, peak_gflops: float) -> dict:
    """Training-step and inference images/s per net, both frameworks raced; GFLOP/s of the training step
    counted as 3 × forward (2·MACs per image forward, backward ≈ twice the forward)."""
    res = {}
    for name in NETS:
        torch.manual_seed(0)
        kw = {"width": googlenet_width} if name == "googlenet_cifar" else {}
        s_net, shape = striate_net(name, np.random.default_rng(0), **kw)
        t_net = to_torch(s_net, torch)
        row = {"macs_per_image": macs_per_image(s_net, shape), "params": s_net.num_parameters(),
               "max_logit_difference": max_output_difference(torch, s_net, t_net, shape), **kw}
        t = race({"striate": striate_step_fn(s_net, shape, batch),
                  "torch": torch_step_fn(torch, t_net, shape, batch)}, repeats)
        row["train"] = {k: batch / v for k, v in t.items()}
        t = race({"striate": striate_infer_fn(s_net, shape, batch),
                  "torch": torch_infer_fn(torch, t_net, shape, batch)}, repeats)
        row["infer"] = {k: batch / v for k, v in t.items()}
        for mode in ("train", "infer"):
            row[mode]["ratio"] = row[mode]["striate"] / row[mode]["torch"]
        flops = 6 * row["macs_per_image"]
        row["train_gflops"] = {k: flops * row["train"][k] / 1e9 for k in ("striate", "torch")}
        row["train_peak_fraction"] = {k: v / peak_gflops for k, v in row["train_gflops"].items()}
        res[name] = row
        print(f"  {name}: train ratio {row['train']['ratio']:.2f}, inference ratio {row['infer']['ratio']:.2f}",
              file=sys.stderr, flush=True)
    return res


def per_layer(torch, batch: int, repeats: int) -> list[dict]:
    """layers.py's per-layer races, as speed ratios (PyTorch time / striate time)."""
    rows = []
    for name, t in layers.measure(torch, batch, repeats):
        rows.append({"layer": name, **{k: v * 1e3 for k, v in t.items()},
                     "fwd_ratio": t["t_fwd"] / t["s_fwd"], "fb_ratio": t["t_fb"] / t["s_fb"]})
    return rows


def markdown(r: dict) -> str:
    m, s = r["machine"], r["settings"]
    out = [f"Machine: {m['cpu']}, {m['cores']} cores; BLAS {m['blas']}; Python {m['python']}, NumPy {m['numpy']}, "
           f"PyTorch {m['torch']}; {m['threads']} threads each (striate: its own pool, BLAS pinned to one thread; "
           f"PyTorch: channels_last, torch.set_num_threads). striate convolution algorithms: "
           f"{m.get('conv_algorithm', 'rule')}; numba kernels: {'on' if m.get('numba') else 'off'}"
           + (f"; OPENBLAS_CORETYPE={m['coretype']}" if m.get("coretype") else "") + ".",
           f"Batch {s['batch']}, medians of {s['repeats']} alternated runs after warm-up; ratio = striate speed / "
           f"PyTorch speed (≥ 1: striate at least as fast). GEMM peak: {r['gemm']['gflops']:.0f} GFLOP/s "
           f"({r['gemm']['n']}² float32 matmul).", "",
           "| net | MMACs/image | train striate img/s | train PyTorch img/s | train ratio | infer striate img/s "
           "| infer PyTorch img/s | infer ratio | striate train GFLOP/s (% of GEMM peak) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, n in r["nets"].items():
        label = f"{name} (width {n['width']})" if "width" in n else name
        out.append(f"| {label} | {n['macs_per_image'] / 1e6:.1f} | {n['train']['striate']:.1f} | "
                   f"{n['train']['torch']:.1f} | {n['train']['ratio']:.2f} | {n['infer']['striate']:.1f} | "
                   f"{n['infer']['torch']:.1f} | {n['infer']['ratio']:.2f} | {n['train_gflops']['striate']:.1f} "
                   f"({100 * n['train_peak_fraction']['striate']:.0f} %) |")
    ms, mt = (r["memory"][k]["growth_mib"] for k in ("striate", "torch"))
    imp = r["import"]
    out += ["", "| | striate | PyTorch | striate / PyTorch |", "|---|---:|---:|---:|",
            f"| peak RSS growth, reference net training, MiB | {ms:.0f} | {mt:.0f} | {ms / max(mt, 1e-9):.2f} |",
            f"| import time, s | {imp['striate']:.3f} | {imp['torch']:.3f} | {imp['striate'] / imp['torch']:.2f} |",
            "", "Memory: peak RSS (VmHWM) after 3 training steps at the batch minus the peak right after the "
            "imports, each framework in its own process (parameters, gradients, optimizer state, activations, "
            "workspace). Import: `import X` in a fresh interpreter, median of several. Training GFLOP/s counts "
            "3 × 2·MACs per image (forward + backward).", "",
            "| layer | fwd striate ms | fwd PyTorch ms | fwd ratio | f+b striate ms | f+b PyTorch ms | f+b ratio |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for row in r["layers"]:
        out.append(f"| {row['layer']} | {row['s_fwd']:.2f} | {row['t_fwd']:.2f} | {row['fwd_ratio']:.2f} | "
                   f"{row['s_fb']:.2f} | {row['t_fb']:.2f} | {row['fb_ratio']:.2f} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per framework (medians)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "results"))
    ap.add_argument("--googlenet-width", type=float, default=NETS["googlenet_cifar"][1]["width"])
    ap.add_argument("--gemm-size", type=int, default=4096)
    ap.add_argument("--import-repeats", type=int, default=5)
    ap.add_argument("--_memory", choices=["striate", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memory:
        print(json.dumps(memory_child(args._memory, args.batch)))
        return None
    torch = setup_torch()
    r = {"machine": machine(torch), "settings": {"batch": args.batch, "repeats": args.repeats}}
    steps = [("gemm", lambda: gemm_peak(args.gemm_size)), ("import", lambda: import_times(args.import_repeats)),
             ("memory", lambda: peak_memory(args.batch)),
             ("nets", lambda: nets(torch, args.batch, args.repeats, args.googlenet_width, r["gemm"]["gflops"])),
             ("layers", lambda: per_layer(torch, args.batch, args.repeats))]
    for key, fn in steps:
        print(f"{key} …", file=sys.stderr, flush=True)
        r[key] = fn()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(r, f, indent=2)
    md = markdown(r)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    print(md)
    return r


if __name__ == "__main__":
    main()
