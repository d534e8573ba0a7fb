"""Inference only, side by side: striate with the folded inference graph (`nn.folding`: BatchNorm folded into
the convolution, bias + activation fused), striate layer by layer (folding switched off by a no-op forward
hook on each Conv2d/Linear: hooked layers never fold), and PyTorch. Scripts, not tests.

    python bench/inference.py [--nets reference fast_cifar] [--batch 128] [--repeats 10]

Prints images/s and the ratios folded / PyTorch, unfolded / PyTorch, folded / unfolded per net.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import race, setup_torch  # noqa: E402
from models import NETS, striate_net, to_torch  # noqa: E402
from train_step import striate_infer_fn, torch_infer_fn  # noqa: E402


def unfolded(net):
    """A deep copy of striate `net` whose Conv2d and Linear layers carry a no-op forward hook (no folding)."""
    import copy

    import striate as st

    twin = copy.deepcopy(net)
    for m in twin.modules():
        if type(m) in (st.nn.Conv2d, st.nn.Linear):
            m.register_forward_hook(lambda *_: None)
    return twin


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["reference", "fast_cifar"], choices=sorted(NETS))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    torch = setup_torch()
    for name in args.nets:
        torch.manual_seed(0)
        net, shape = striate_net(name, np.random.default_rng(0))
        t = race({"folded": striate_infer_fn(net, shape, args.batch),
                  "unfolded": striate_infer_fn(unfolded(net), shape, args.batch),
                  "torch": torch_infer_fn(torch, to_torch(net, torch), shape, args.batch)}, args.repeats)
        ips = {k: args.batch / v for k, v in t.items()}
        print(f"{name}: img/s folded {ips['folded']:.0f}, unfolded {ips['unfolded']:.0f}, torch {ips['torch']:.0f}; "
              f"ratio folded {ips['folded'] / ips['torch']:.2f}, unfolded {ips['unfolded'] / ips['torch']:.2f}, "
              f"folded/unfolded {ips['folded'] / ips['unfolded']:.2f}", flush=True)


if __name__ == "__main__":
    main()
