"""One-command benchmark: striate vs PyTorch (CPU, channels_last, equal thread counts) side by side in one
process run, alternating after warm-up (common.race, medians). Writes results.json and results.md into
--out and prints the Markdown.

    python bench/run.py [--batch 128] [--repeats 10] [--large-repeats 4] [--nets reference,fast_cifar,…]
                        [--skip gemm,import,memory,layers] [--out bench/results] [--googlenet-width 0.25]

Sections: training step and inference images/s per net with the striate/PyTorch ratio (and for inference
onnxruntime on the PyTorch twin exported to ONNX, with the striate/onnxruntime ratio, when onnxruntime and
onnx are installed: pip install -e ".[bench]"); achieved GFLOP/s of
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
from models import (  # noqa: E402
    NETS,
    macs_per_image,
    max_output_difference,
    onnxruntime_run,
    onnxruntime_session,
    striate_net,
    to_torch,
)
from train_step import batch_data, striate_infer_fn, striate_step_fn, torch_infer_fn, torch_step_fn  # noqa: E402

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

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None  # optional: pip install -e ".[bench]"
    return {"cpu": cpu, "cores": os.cpu_count(), "blas": "; ".join(blas) or "unknown", "threads": compute_threads(),
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "onnxruntime": ort,
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


LARGE_MACS = 200e6  # MACs per image from which a net is timed with --large-repeats (AlexNet, VGG-13/16/19)


def race_net(torch, name: str, batch: int, repeats: tuple[int, int], peak_gflops: float, **kw) -> dict:
    """One net's row: training-step and inference images/s, striate and PyTorch raced (onnxruntime too for
    inference, when installed); GFLOP/s of the training step counted as 3 × forward (2·MACs per image
    forward, backward ≈ twice the forward). repeats: (timed runs, timed runs from LARGE_MACS per image)."""
    torch.manual_seed(0)
    s_net, shape = striate_net(name, np.random.default_rng(0), **kw)
    t_net = to_torch(s_net, torch)
    row = {"macs_per_image": macs_per_image(s_net, shape), "params": s_net.num_parameters(),
           "max_logit_difference": max_output_difference(torch, s_net, t_net, shape), **kw}
    repeats = row["repeats"] = repeats[row["macs_per_image"] >= LARGE_MACS]
    # exported before the training race changes the weights (each side's own dropout masks)
    session = onnxruntime_session(torch, t_net, shape, batch, compute_threads())
    if session is not None:
        x = batch_data(shape, batch)[0]
        row["max_logit_difference_onnxruntime"] = _onnx_difference(s_net, session, x)
    t = race({"striate": striate_step_fn(s_net, shape, batch),
              "torch": torch_step_fn(torch, t_net, shape, batch)}, repeats)
    row["train"] = {k: batch / v for k, v in t.items()}
    infer = {"striate": striate_infer_fn(s_net, shape, batch), "torch": torch_infer_fn(torch, t_net, shape, batch)}
    if session is not None:
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # the exported model's layout, converted once
        infer["onnxruntime"] = lambda: session.run(None, {"x": x_nchw})
    t = race(infer, repeats)
    row["infer"] = {k: batch / v for k, v in t.items()}
    for mode in ("train", "infer"):
        row[mode]["ratio"] = row[mode]["striate"] / row[mode]["torch"]
    if session is not None:
        row["infer"]["ratio_onnxruntime"] = row["infer"]["striate"] / row["infer"]["onnxruntime"]
    flops = 6 * row["macs_per_image"]
    row["train_gflops"] = {k: flops * row["train"][k] / 1e9 for k in ("striate", "torch")}
    row["train_peak_fraction"] = {k: v / peak_gflops for k, v in row["train_gflops"].items()}
    return row


def _onnx_difference(s_net, session, x) -> float:
    """Largest |striate − onnxruntime| over the logits of batch x (striate in eval mode)."""
    import striate as st

    s_net.eval()
    with st.no_grad():
        diff = float(np.abs(s_net(x) - onnxruntime_run(session, x)).max())
    s_net.train()
    return diff


def nets(torch, names: list[str], batch: int, repeats: tuple[int, int], googlenet_width: float,
         peak_gflops: float) -> dict:
    """race_net for each of `names`."""
    res = {}
    for name in names:
        kw = {"width": googlenet_width} if name == "googlenet_cifar" else {}
        row = res[name] = race_net(torch, name, batch, repeats, peak_gflops, **kw)
        ort = f", vs onnxruntime {row['infer']['ratio_onnxruntime']:.2f}" if "onnxruntime" in row["infer"] else ""
        print(f"  {name}: train ratio {row['train']['ratio']:.2f}, inference ratio {row['infer']['ratio']:.2f}"
              + ort, file=sys.stderr, flush=True)
    return res


def per_layer(torch, batch: int, repeats: int) -> list[dict]:
    """layers.py's per-layer races, as speed ratios (PyTorch time / striate time)."""
    rows = []
    for name, t in layers.measure(torch, batch, repeats):
        rows.append({"layer": name, **{k: v * 1e3 for k, v in t.items()},
                     "fwd_ratio": t["t_fwd"] / t["s_fwd"], "fb_ratio": t["t_fb"] / t["s_fb"]})
    return rows


def markdown(r: dict) -> str:
    """results.md: the machine, then a table per section that ran."""
    m, s = r["machine"], r["settings"]
    ort = m.get("onnxruntime")
    out = [f"Machine: {m['cpu']}, {m['cores']} cores; BLAS {m['blas']}; Python {m['python']}, NumPy {m['numpy']}, "
           f"PyTorch {m['torch']}" + (f", onnxruntime {ort}" if ort else "") + f"; {m['threads']} threads each "
           f"(striate: its own pool, BLAS pinned to one thread; PyTorch: channels_last, torch.set_num_threads"
           + ("; onnxruntime: intra_op_num_threads, sequential execution, the PyTorch twin exported to ONNX"
              if ort else "") + f"). striate convolution algorithms: {m.get('conv_algorithm', 'rule')}; numba "
           f"kernels: {'on' if m.get('numba') else 'off'}"
           + (f"; OPENBLAS_CORETYPE={m['coretype']}" if m.get("coretype") else "") + ".",
           f"Batch {s['batch']}, medians of {s['repeats']} alternated runs after warm-up"
           + (f" ({s['large_repeats']} for nets from {LARGE_MACS / 1e6:.0f} M MACs per image)"
              if s.get("large_repeats", s["repeats"]) != s["repeats"] else "")
           + "; ratio = striate speed / PyTorch speed (≥ 1: striate at least as fast)"
           + ("" if "gemm" not in r else f". GEMM peak: {r['gemm']['gflops']:.0f} GFLOP/s "
              f"({r['gemm']['n']}² float32 matmul)") + "."]
    for keys, table in ((("nets",), _nets_table), (("memory", "import"), _memory_table), (("layers",), _layers_table)):
        if any(k in r for k in keys):
            out += [""] + table(r)
    return "\n".join(out) + "\n"


def _nets_table(r: dict) -> list[str]:
    ort = any("onnxruntime" in n["infer"] for n in r["nets"].values())
    out = ["| net | MMACs/image | train striate img/s | train PyTorch img/s | train ratio | infer striate img/s "
           "| infer PyTorch img/s | infer ratio |"
           + (" infer onnxruntime img/s | striate / onnxruntime |" if ort else "")
           + (" striate train GFLOP/s (% of GEMM peak) |" if "gemm" in r else ""),
           "|---|" + "---:|" * (7 + 2 * ort + ("gemm" in r))]
    for name, n in r["nets"].items():
        label = f"{name} (width {n['width']})" if "width" in n else name
        i = n["infer"]
        row = (f"| {label} | {n['macs_per_image'] / 1e6:.1f} | {n['train']['striate']:.1f} | {n['train']['torch']:.1f} "
               f"| {n['train']['ratio']:.2f} | {i['striate']:.1f} | {i['torch']:.1f} | {i['ratio']:.2f} |")
        if ort:
            row += f" {i['onnxruntime']:.1f} | {i['ratio_onnxruntime']:.2f} |" if "onnxruntime" in i else " – | – |"
        if "gemm" in r:
            row += f" {n['train_gflops']['striate']:.1f} ({100 * n['train_peak_fraction']['striate']:.0f} %) |"
        out.append(row)
    if "gemm" in r:
        out += ["", "Training GFLOP/s counts 3 × 2·MACs per image (forward + backward)."]
    return out


def _memory_table(r: dict) -> list[str]:
    out = ["| | striate | PyTorch | striate / PyTorch |", "|---|---:|---:|---:|"]
    if "memory" in r:
        ms, mt = (r["memory"][k]["growth_mib"] for k in ("striate", "torch"))
        out.append(f"| peak RSS growth, reference net training, MiB | {ms:.0f} | {mt:.0f} | {ms / max(mt, 1e-9):.2f} |")
    if "import" in r:
        imp = r["import"]
        out.append(f"| import time, s | {imp['striate']:.3f} | {imp['torch']:.3f} | "
                   f"{imp['striate'] / imp['torch']:.2f} |")
    return out + ["", "Memory: peak RSS (VmHWM) after 3 training steps at the batch minus the peak right after the "
                  "imports, each framework in its own process (parameters, gradients, optimizer state, "
                  "activations, workspace). Import: `import X` in a fresh interpreter, median of several."]


def _layers_table(r: dict) -> list[str]:
    out = ["| layer | fwd striate ms | fwd PyTorch ms | fwd ratio | f+b striate ms | f+b PyTorch ms | f+b ratio |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for row in r["layers"]:
        out.append(f"| {row['layer']} | {row['s_fwd']:.2f} | {row['t_fwd']:.2f} | {row['fwd_ratio']:.2f} | "
                   f"{row['s_fb']:.2f} | {row['t_fb']:.2f} | {row['fb_ratio']:.2f} |")
    return out


SECTIONS = ("gemm", "import", "memory", "nets", "layers")


def _names(arg: str, known, what: str) -> list[str]:
    """A comma-separated list from the command line, each checked against `known`."""
    names = [n.strip() for n in arg.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        raise SystemExit(f"run.py: unknown {what} {', '.join(bad)}; known: {', '.join(known)}")
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per framework (medians)")
    ap.add_argument("--large-repeats", type=int, default=4,
                    help=f"timed runs per framework for nets from {LARGE_MACS / 1e6:.0f} M MACs per image")
    ap.add_argument("--nets", default=",".join(NETS), help="comma-separated nets to race (default: all)")
    ap.add_argument("--skip", default="", help=f"comma-separated sections to leave out, of {', '.join(SECTIONS)}")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "results"))
    ap.add_argument("--googlenet-width", type=float, default=NETS["googlenet_cifar"][1]["width"])
    ap.add_argument("--gemm-size", type=int, default=4096)
    ap.add_argument("--import-repeats", type=int, default=5)
    ap.add_argument("--_memory", choices=["striate", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memory:
        print(json.dumps(memory_child(args._memory, args.batch)))
        return None
    names, skip = _names(args.nets, list(NETS), "net"), _names(args.skip, SECTIONS, "section")
    torch = setup_torch()
    repeats = (args.repeats, min(args.repeats, args.large_repeats))
    r = {"machine": machine(torch), "settings": {"batch": args.batch, "repeats": repeats[0],
                                                 "large_repeats": repeats[1]}}
    steps = {"gemm": lambda: gemm_peak(args.gemm_size), "import": lambda: import_times(args.import_repeats),
             "memory": lambda: peak_memory(args.batch),
             "nets": lambda: nets(torch, names, args.batch, repeats, args.googlenet_width,
                                  r["gemm"]["gflops"] if "gemm" in r else float("nan")),
             "layers": lambda: per_layer(torch, args.batch, args.repeats)}
    for key in SECTIONS:
        if key not in skip:
            print(f"{key} …", file=sys.stderr, flush=True)
            r[key] = steps[key]()
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
