"""The CIFAR-10 94 % recipe's net (airbench-like: a frozen 2×2 conv 3→24 with bias, GELU, three blocks
conv3×3 → maxpool 2 (floor) → BN → GELU → conv3×3 → BN → GELU of widths 64, 256, 256, maxpool 3, a bias-free
Linear, ×1/9) built from striate's layers, and its training step (forward, summed cross-entropy, backward,
Nesterov SGD) timed side by side with its PyTorch twin (channels_last, same thread count), alternating, medians;
then each layer alone, forward and forward + backward, striate vs PyTorch, on the shapes it sees in the net.
The first conv's weight is frozen and nothing below it needs a gradient, as in the recipe. Scripts, not tests.

    python bench/recipe_step.py [--batch 1024] [--repeats 7] [--layers-only | --step-only]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import compute_threads, race, setup_torch  # noqa: E402
from models import nhwc_to_torch, to_torch  # noqa: E402
from train_step import batch_data  # noqa: E402

WIDTHS = (64, 256, 256)


def recipe_net(rng: np.random.Generator, widths=WIDTHS):
    """The recipe's net from existing layers (the whitening conv as a plain Conv2d with its weight frozen;
    BatchNorm with trainable γ; the final ×1/9 folded into the Linear's weights: the same work per step)."""
    import striate as st
    from striate.nn import GELU, BatchNorm, Conv2d, Flatten, Linear, MaxPool2d

    layers = [Conv2d(3, 24, 2, bias=True, rng=rng), GELU()]
    c = 24
    for w in widths:
        layers += [Conv2d(c, w, 3, padding=1, bias=False, rng=rng), MaxPool2d(2, rounding="floor"),
                   BatchNorm(w, eps=1e-12, momentum=0.4), GELU(),
                   Conv2d(w, w, 3, padding=1, bias=False, rng=rng), BatchNorm(w, eps=1e-12, momentum=0.4), GELU()]
        c = w
    layers += [MaxPool2d(3), Flatten(), Linear(c, 10, bias=False, rng=rng)]
    layers[-1].weight.data *= np.float32(1 / 9)
    net = st.nn.Sequential(*layers)
    net[0].weight.requires_grad = False
    net.requires_input_grad = False
    return net


def step_fns(torch, net, t_net, batch: int):
    """(striate step, torch step): cross-entropy, Nesterov SGD (momentum 0.85, weight decay)."""
    import striate as st
    from striate.optim import SGD

    x, y = batch_data((32, 32, 3), batch)
    net.train()
    crit = st.nn.SoftmaxCrossEntropy()  # the recipe sums; the same work
    opt = SGD([p for p in net.parameters() if p.requires_grad], lr=1e-4, momentum=0.85, nesterov=True,
              weight_decay=5e-4)
    t_net.train()
    t_net[0].weight.requires_grad_(False)
    t_opt = torch.optim.SGD([p for p in t_net.parameters() if p.requires_grad], lr=1e-4, momentum=0.85,
                            nesterov=True, weight_decay=5e-4)
    tx, ty = nhwc_to_torch(torch, x), torch.from_numpy(y)
    t_crit = torch.nn.CrossEntropyLoss()

    def s_step():
        opt.zero_grad()
        crit(net(x), y)
        net.backward(crit.backward())
        opt.step()

    def t_step():
        t_opt.zero_grad(set_to_none=False)
        t_crit(t_net(tx), ty).backward()
        t_opt.step()

    return s_step, t_step


def layer_times(torch, net, t_net, batch: int, repeats: int):
    """Yield (name, {"s_fwd", "t_fwd", "s_fb", "t_fb"}) for each layer of the net alone, on its input in the
    net (the first layer without input gradient, as in the step)."""
    x = batch_data((32, 32, 3), batch)[0]
    rng = np.random.default_rng(2)
    for i, (m, tm) in enumerate(zip(net, t_net, strict=True)):
        y = m(x)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        tx = (nhwc_to_torch(torch, x) if x.ndim == 4 else torch.from_numpy(x)).requires_grad_(i > 0)
        tdy = nhwc_to_torch(torch, dy) if dy.ndim == 4 else torch.from_numpy(dy)
        m.requires_input_grad = i > 0

        def s_fwd(m=m, x=x):
            m(x)

        def s_fb(m=m, x=x, dy=dy):
            m(x)
            m.backward(dy)

        def t_fwd(tm=tm, tx=tx):
            tm(tx)

        def t_fb(tm=tm, tx=tx, tdy=tdy):
            tm(tx).backward(tdy)

        t = race({"s_fwd": s_fwd, "t_fwd": t_fwd, "s_fb": s_fb, "t_fb": t_fb}, repeats, warmup=1)
        yield f"{i:2d} {m.describe()}", t, getattr(m, "algorithms", None)
        x = y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--layers-only", action="store_true")
    ap.add_argument("--step-only", action="store_true")
    args = ap.parse_args(argv)
    torch = setup_torch()
    net = recipe_net(np.random.default_rng(0))
    t_net = to_torch(net, torch)
    print(f"recipe net, batch {args.batch}, {compute_threads()} striate/torch threads, "
          f"medians of {args.repeats} alternated runs")
    if not args.layers_only:
        s_step, t_step = step_fns(torch, net, t_net, args.batch)
        t = race({"striate": s_step, "torch": t_step}, args.repeats)
        print(f"training step: striate {t['striate'] * 1e3:.0f} ms, torch {t['torch'] * 1e3:.0f} ms, "
              f"striate/torch {t['striate'] / t['torch']:.2f}", flush=True)
    if args.step_only:
        return
    print("| layer | striate fwd | torch fwd | s/t | striate f+b | torch f+b | s/t | algorithms |\n"
          "|---|---:|---:|---:|---:|---:|---:|---|")
    sums = np.zeros(4)
    for name, t, algos in layer_times(torch, net, t_net, args.batch, args.repeats):
        v = np.array([t["s_fwd"], t["t_fwd"], t["s_fb"], t["t_fb"]]) * 1e3
        sums += v
        al = ", ".join(f"{k} {a}" for k, a in (algos or {}).items())
        print(f"| {name} | {v[0]:.1f} | {v[1]:.1f} | {v[0] / v[1]:.2f} | {v[2]:.1f} | {v[3]:.1f} | "
              f"{v[2] / v[3]:.2f} | {al} |", flush=True)
    print(f"| sum | {sums[0]:.0f} | {sums[1]:.0f} | {sums[0] / sums[1]:.2f} | {sums[2]:.0f} | {sums[3]:.0f} | "
          f"{sums[2] / sums[3]:.2f} | |")


if __name__ == "__main__":
    main()
