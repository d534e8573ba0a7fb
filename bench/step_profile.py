"""Where a striate training step (or an inference pass) spends its time: forward and backward of every leaf
layer, medians over steps, with the convolution algorithm each pass used. Scripts, not tests.

    python bench/step_profile.py [--net reference] [--batch 128] [--steps 7] [--infer] [--json FILE]

Timing works by patching the leaf layers' classes (not the instances, which would switch the fused
BatchNorm + ReLU pass off), so a fused pair shows up as one row, the BatchNorm's, labelled "+relu"; with --infer
a folded block (nn.folding: conv + BatchNorm + activation) is the convolution's row, labelled "+folded".
What is not inside a leaf layer (the loss, the optimizer step, the containers' own work) is the "other" row
(the median over steps of each step's time outside the layers; the layer rows are medians of their own).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from models import NETS, striate_net  # noqa: E402
from train_step import striate_infer_fn, striate_step_fn  # noqa: E402

METHODS = ("forward", "backward", "forward_fused_relu", "backward_fused_relu", "fused_forward")


def _patch(classes, names, record):
    """Wrap METHODS of each class (defined on the class itself or inherited) with a timer; returns an undo list."""
    undo = []
    for cls in classes:
        for meth in METHODS:
            original = getattr(cls, meth, None)
            if original is None:
                continue

            def timed(self, *args, _original=original, _meth=meth):
                t = time.perf_counter()
                y = _original(self, *args)
                record[names[id(self)]][_meth].append(time.perf_counter() - t)
                return y

            had = meth in cls.__dict__
            undo.append((cls, meth, cls.__dict__.get(meth) if had else None, had))
            setattr(cls, meth, timed)
    return undo


def _unpatch(undo):
    for cls, meth, original, had in reversed(undo):
        if had:
            setattr(cls, meth, original)
        else:
            delattr(cls, meth)


def profile(net_name: str, batch: int, steps: int, infer: bool = False) -> dict:
    """{"total_ms", "layers": [{"name", "layer", "algorithms", "fwd_ms", "bwd_ms"}], "other_ms"} (medians)."""
    net, shape = striate_net(net_name, np.random.default_rng(0))
    fn = (striate_infer_fn if infer else striate_step_fn)(net, shape, batch)
    leaves = [(name, m) for name, m in net.named_modules() if not m._modules]
    names = {id(m): name for name, m in leaves}
    for _ in range(2):
        fn()
    record: dict = defaultdict(lambda: defaultdict(list))
    undo = _patch({type(m) for _, m in leaves}, names, record)
    totals, others = [], []

    def timed_in_layers():
        return sum(sum(v) for r in record.values() for v in r.values())

    try:
        for _ in range(steps):
            before = timed_in_layers()
            t = time.perf_counter()
            fn()
            totals.append(time.perf_counter() - t)
            others.append(totals[-1] - (timed_in_layers() - before))
    finally:
        _unpatch(undo)
    rows = []
    for name, m in leaves:
        r = record.get(name, {})
        fwd = sum(float(np.median(r[k])) for k in ("forward", "forward_fused_relu", "fused_forward") if r.get(k))
        bwd = sum(float(np.median(r[k])) for k in ("backward", "backward_fused_relu") if r.get(k))
        if not r:
            continue
        label = m.describe() + (" +relu" if r.get("forward_fused_relu") else "") + (
            " +folded" if r.get("fused_forward") else "")
        algos = getattr(m, "algorithms", None)
        rows.append({"name": name, "layer": label, "algorithms": dict(algos) if algos else None,
                     "fwd_ms": 1e3 * fwd, "bwd_ms": 1e3 * bwd})
    total = 1e3 * float(np.median(totals))
    return {"net": net_name, "batch": batch, "infer": infer, "total_ms": total, "layers": rows,
            "other_ms": 1e3 * float(np.median(others))}


def markdown(p: dict) -> str:
    out = [f"{p['net']}, batch {p['batch']}, {'inference' if p['infer'] else 'training step'}: "
           f"{p['total_ms']:.1f} ms (median)", "", "| layer | algorithms | fwd ms | bwd ms |", "|---|---|---:|---:|"]
    for r in p["layers"]:
        algos = ", ".join(f"{k} {v}" for k, v in (r["algorithms"] or {}).items())
        out.append(f"| {r['name']} {r['layer']} | {algos} | {r['fwd_ms']:.2f} | {r['bwd_ms']:.2f} |")
    out.append(f"| other (loss, optimizer, containers) | | {p['other_ms']:.2f} | |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="reference", choices=list(NETS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--infer", action="store_true", help="profile eval-mode inference instead of a training step")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    p = profile(args.net, args.batch, args.steps, args.infer)
    print(markdown(p))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(p, f, indent=1)
    return p


if __name__ == "__main__":
    main()
