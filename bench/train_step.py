"""Full training step (forward, loss, backward, SGD-momentum update) of the reference CIFAR net at batch
128: striate vs PyTorch (CPU, channels_last, same thread count), alternated in one process run.

    python bench/train_step.py [--batch 128] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import blas_threads, race, reference_net_striate, reference_net_torch, setup_torch  # noqa: E402


def striate_step_fn(batch: int):
    import striate as st
    from striate.optim import SGD

    rng = np.random.default_rng(0)
    net = reference_net_striate(rng)
    net.requires_input_grad = False
    crit = st.nn.SoftmaxCrossEntropy()
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = rng.standard_normal((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch)

    def step():
        opt.zero_grad()
        crit(net(x), y)
        net.backward(crit.backward())
        opt.step()

    return step


def torch_step_fn(torch, batch: int):
    torch.manual_seed(0)
    net = reference_net_torch(torch)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    crit = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        crit(net(x), y).backward()
        opt.step()

    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    torch = setup_torch()
    t = race({"striate": striate_step_fn(args.batch), "torch": torch_step_fn(torch, args.batch)}, args.repeats)
    ips = {k: args.batch / v for k, v in t.items()}
    print(f"reference CIFAR net, batch {args.batch}, {blas_threads()} BLAS/torch threads, "
          f"median of {args.repeats} alternated steps")
    print(f"  striate  {t['striate'] * 1e3:8.1f} ms/step  {ips['striate']:7.1f} images/s")
    print(f"  pytorch  {t['torch'] * 1e3:8.1f} ms/step  {ips['torch']:7.1f} images/s")
    print(f"  striate/PyTorch time ratio {t['striate'] / t['torch']:.2f}  "
          f"(throughput ratio {ips['striate'] / ips['torch']:.2f})")
    return t


if __name__ == "__main__":
    main()
