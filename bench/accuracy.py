"""Float32 accuracy of each convolution algorithm on real activations: a zoo net is trained briefly on real
CIFAR-10 images, then every 3×3 stride-1 layer's input, weights and output gradient on one batch are taken
(taps) and each pass — forward, dx, dw — is computed by im2col, F(2×2) and F(4×4). Error = max|y − y64| /
max|y64| against a float64 convolution of the same float32 data. Scripts, not tests; `winograd.choose`'s
accuracy gates are read off this table (tests/test_winograd_accuracy.py checks them on a small trained net).

    python bench/accuracy.py [--net reference] [--steps 150] [--batch 64] [--eval-batch 32] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

ALGOS = ("im2col", "winograd2", "winograd4")


def conv_passes(algo: str, x, w, dy, pad: int) -> dict:
    """{pass: array} for one algorithm: forward output, input gradient, weight gradient."""
    from striate.kernels.conv import conv2d_forward, conv2d_input_grad, conv2d_weight_grad, pad_nhwc
    from striate.kernels.winograd import winograd_forward, winograd_input_grad, winograd_weight_grad

    if algo == "im2col":
        return {"fwd": conv2d_forward(x, w, None, 1, pad)[0], "dx": conv2d_input_grad(dy, w, 1, pad, x.shape),
                "dw": conv2d_weight_grad(pad_nhwc(x, pad), dy, 3, 3, 1)}
    m = int(algo[-1])
    return {"fwd": winograd_forward(x, w, None, pad, m)[0], "dx": winograd_input_grad(dy, w, pad, m),
            "dw": winograd_weight_grad(x, dy, pad, m)}


def errors(x, w, dy, pad: int) -> dict:
    """{algo: {pass: max|y − y64| / max|y64|}} for float32 x, w, dy."""
    ref = conv_passes("im2col", *(a.astype(np.float64) for a in (x, w, dy)), pad)
    out = {}
    for algo in ALGOS:
        got = conv_passes(algo, x, w, dy, pad)
        out[algo] = {k: float(np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()) for k in ref}
    return out


def trained_layer_data(net, images, labels, steps: int, batch: int, eval_batch: int, seed: int = 0):
    """Train `net` for `steps` SGD steps on (images, labels), then return [(name, conv, x, w, dy)] for its 3×3
    stride-1 convolutions on one training batch of `eval_batch` images."""
    import striate as st
    from striate.diagnose.hooks import leaf_modules, tap
    from striate.optim import SGD

    rng = np.random.default_rng(seed)
    crit = st.nn.SoftmaxCrossEntropy()
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    net.train()
    for _ in range(steps):
        idx = rng.integers(0, len(images), batch)
        opt.zero_grad()
        crit(net(images[idx]), labels[idx])
        net.backward(crit.backward())
        opt.step()
    convs = [(name, m) for name, m in leaf_modules(net) if isinstance(m, st.nn.Conv2d) and m.kernel_size == (3, 3)
             and m.stride == 1]
    seen: dict = {}
    with tap(convs, on_forward=lambda name, m, x, y: seen.setdefault(name, {}).update(x=x.copy()),
             on_backward=lambda name, m, dy, dx: seen[name].update(dy=dy.copy())):
        idx = rng.integers(0, len(images), eval_batch)
        crit(net(images[idx]), labels[idx])
        net.requires_input_grad = True
        net.backward(crit.backward())
    return [(name, m, seen[name]["x"], m.weight.data.copy(), seen[name]["dy"]) for name, m in convs]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="reference")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--images", type=int, default=5000, help="CIFAR-10 test images to train on")
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    import striate as st

    ds = st.data.load("cifar10", "test")
    x = ds.images[:args.images].astype(np.float32) / 255
    x = (x - x.mean((0, 1, 2))) / x.std((0, 1, 2))
    net = st.models.get(args.net, 10, 3, rng=np.random.default_rng(0))
    layers = trained_layer_data(net, x, ds.labels[:args.images], args.steps, args.batch, args.eval_batch)
    print(f"{args.net} after {args.steps} steps of batch {args.batch} on CIFAR-10; errors on a batch of "
          f"{args.eval_batch}, ratio to im2col's")
    print("| layer | pass | im2col | F(2×2) | F(4×4) |\n|---|---|---:|---:|---:|")
    results = {}
    for name, m, xs, w, dy in layers:
        label = f"{name} {m.in_channels}->{m.out_channels}@{xs.shape[1]}"
        e = errors(xs, w, dy, m.padding)
        results[label] = e
        for p in ("fwd", "dx", "dw"):
            base = e["im2col"][p]
            print(f"| {label} | {p} | {base:.1e} | {e['winograd2'][p]:.1e} ({e['winograd2'][p] / base:.1f}×) | "
                  f"{e['winograd4'][p]:.1e} ({e['winograd4'][p] / base:.1f}×) |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
