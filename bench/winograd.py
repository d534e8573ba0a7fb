"""3×3 stride-1 convolution per layer shape of the zoo: striate's im2col vs Winograd F(2×2, 3×3) and F(4×4, 3×3)
vs PyTorch (CPU, channels_last), per pass — forward, input gradient (dx), weight gradient (dw) — at each thread
count (striate's pool with BLAS pinned to one thread, or one thread in all; torch.set_num_threads equal).
Times are medians of interleaved runs in one process (common.race). Then the float32 accuracy of each
algorithm per pass: max|y − y64| / max|y64| against float64, on ReLU activations with He-scaled weights.

    python bench/winograd.py [--batch 128] [--repeats 7] [--threads 1,2] [--only 64->64] [--json FILE]
                             [--shapes C,F,H;C,F,H…]  (default: the zoo's layers, SHAPES)

The rule `striate.kernels.winograd.choose` is read off these tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import race  # noqa: E402

SHAPES = [(3, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16), (128, 256, 8), (256, 256, 8), (256, 512, 4)]
ALGOS = ("im2col", "winograd2", "winograd4")
PASSES = ("fwd", "dx", "dw")


def striate_passes(algo: str, x, w, dy) -> dict:
    """{pass: function} for one algorithm. dx is computed as the backward passes compute it: the forward
    convolution of dout padded by 1 with the rotated, channel-swapped kernel."""
    from striate.kernels.conv import conv2d_backward, conv2d_forward, pad_nhwc
    from striate.kernels.winograd import winograd_backward, winograd_forward

    w_rot = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    if algo == "im2col":
        _, cache = conv2d_forward(x, w, None, 1, 1)
        return {"fwd": lambda: conv2d_forward(x, w, None, 1, 1),
                "dx": lambda: conv2d_forward(pad_nhwc(dy, 1), w_rot, None, 1, 0),
                "dw": lambda: conv2d_backward(dy, cache, need_dx=False)}
    m = int(algo[-1])
    _, cache = winograd_forward(x, w, None, 1, m)
    return {"fwd": lambda: winograd_forward(x, w, None, 1, m),
            "dx": lambda: winograd_forward(dy, w_rot, None, 1, m),
            "dw": lambda: winograd_backward(dy, cache, need_dx=False)}


def torch_passes(torch, x, w, dy) -> dict:
    """{pass: function} for torch.nn.functional.conv2d and its two gradients (aten.convolution_backward)."""
    tx = torch.from_numpy(x).permute(0, 3, 1, 2)  # NHWC buffers seen as NCHW: channels_last
    tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 0, 1, 2))).permute(0, 3, 1, 2)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2)

    def grad(mask):
        return lambda: torch.ops.aten.convolution_backward(tdy, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0],
                                                           1, mask)

    return {"fwd": lambda: torch.nn.functional.conv2d(tx, tw, padding=1),
            "dx": grad([True, False, False]), "dw": grad([False, True, False])}


def layer_data(rng, n: int, h: int, c: int, f: int, dtype=np.float32):
    """ReLU activations, He-scaled weights, and an output gradient masked like one that came through a ReLU."""
    x = np.maximum(rng.standard_normal((n, h, h, c)), 0)
    w = rng.standard_normal((3, 3, c, f)) * np.sqrt(2 / (9 * c))
    dy = rng.standard_normal((n, h, h, f)) * (rng.random((n, h, h, f)) < 0.5)
    return x.astype(dtype), w.astype(dtype), dy.astype(dtype)


def accuracy(c: int, f: int, h: int, batch: int) -> dict:
    """{algo: {pass: max|y − y64| / max|y64|}} on float32 data, y64 from the same data in float64."""
    from threadpoolctl import threadpool_limits

    x, w, dy = layer_data(np.random.default_rng(1), batch, h, c, f, np.float64)
    with threadpool_limits(1):
        reference = {k: fn() for k, fn in striate_passes("im2col", x, w, dy).items()}
        out = {}
        for algo in ALGOS:
            got = {k: fn() for k, fn in striate_passes(algo, *(a.astype(np.float32) for a in (x, w, dy))).items()}
            out[algo] = {}
            for k in PASSES:
                y, y64 = _main(got[k]), _main(reference[k])
                out[algo][k] = float(np.abs(y - y64).max() / np.abs(y64).max())
    return out


def _main(result):
    """The array a pass computes: forward/dx return (out, cache), dw returns (None, dw, db)."""
    return result[1] if result[0] is None else result[0]


def timings(torch, c: int, f: int, h: int, batch: int, repeats: int) -> dict:
    """{pass: {algo or "torch": median seconds}} at the current thread settings."""
    x, w, dy = layer_data(np.random.default_rng(0), batch, h, c, f)
    fns = {algo: striate_passes(algo, x, w, dy) for algo in ALGOS}
    fns["torch"] = torch_passes(torch, x, w, dy)
    return {p: race({k: v[p] for k, v in fns.items()}, repeats) for p in PASSES}


def set_threads(torch, n: int):
    """striate's pool at n threads (BLAS pinned to one inside it), BLAS at one thread when n = 1, torch at n."""
    from threadpoolctl import threadpool_limits

    import striate as st

    st.set_num_threads(n)
    torch.set_num_threads(n)
    return threadpool_limits(1) if n == 1 else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--accuracy-batch", type=int, default=8)
    ap.add_argument("--only", default="", help="substring filter on layer names, e.g. 64->64")
    ap.add_argument("--json", default="", help="also write every number to this file")
    ap.add_argument("--shapes", default="", help="layers as C,F,H separated by ';' (default: the zoo's)")
    args = ap.parse_args(argv)
    import torch

    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")] if args.shapes else SHAPES
    shapes = [s for s in shapes if args.only in f"{s[0]}->{s[1]}@{s[2]}"]
    results = {"batch": args.batch, "repeats": args.repeats, "times": {}, "accuracy": {}}
    print(f"batch {args.batch}, medians of {args.repeats} interleaved runs; speed-up = im2col time / time; "
          "torch/x = PyTorch time / time (≥ 1: striate at least as fast)")
    for n in (int(t) for t in args.threads.split(",")):
        limit = set_threads(torch, n)
        print(f"\n{n} thread(s)\n| layer | pass | im2col ms | F(2×2) ms (speed-up) | F(4×4) ms (speed-up) | PyTorch ms "
              "| best striate / PyTorch |\n|---|---|---:|---:|---:|---:|---:|")
        for c, f, h in shapes:
            name = f"{c}->{f}@{h}"
            t = timings(torch, c, f, h, args.batch, args.repeats)
            t["train"] = {k: sum(t[p][k] for p in PASSES) for k in (*ALGOS, "torch")}
            results["times"][f"{name} threads={n}"] = t
            for p in (*PASSES, "train"):
                r = t[p]
                best = min(r[a] for a in ALGOS)
                print(f"| {name} | {p} | {r['im2col'] * 1e3:.1f} | {r['winograd2'] * 1e3:.1f} "
                      f"({r['im2col'] / r['winograd2']:.2f}×) | {r['winograd4'] * 1e3:.1f} "
                      f"({r['im2col'] / r['winograd4']:.2f}×) | {r['torch'] * 1e3:.1f} | {r['torch'] / best:.2f} |",
                      flush=True)
        if limit is not None:
            limit.unregister()
    print(f"\naccuracy at batch {args.accuracy_batch} (ratio to im2col's error)\n| layer | pass | im2col | F(2×2) "
          "| F(4×4) |\n|---|---|---:|---:|---:|")
    for c, f, h in shapes:
        name = f"{c}->{f}@{h}"
        acc = accuracy(c, f, h, args.accuracy_batch)
        results["accuracy"][name] = acc
        for p in PASSES:
            e = {a: acc[a][p] for a in ALGOS}
            print(f"| {name} | {p} | {e['im2col']:.1e} | {e['winograd2']:.1e} ({e['winograd2'] / e['im2col']:.1f}×) "
                  f"| {e['winograd4']:.1e} ({e['winograd4'] / e['im2col']:.1f}×) |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
