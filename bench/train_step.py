"""Full training step (forward, loss, backward, SGD-momentum update) of the reference CIFAR net at batch
128: striate vs PyTorch (CPU, channels_last, same thread count), alternated in one process run. The step
and inference functions here are what run.py races for every net.

    python bench/train_step.py [--batch 128] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import compute_threads, race, setup_torch  # noqa: E402
from models import nhwc_to_torch, striate_net, to_torch  # noqa: E402


def batch_data(shape, batch: int, num_classes: int = 10):
    """A random float32 NHWC batch (batch, *shape) and integer labels, the same for both frameworks."""
    rng = np.random.default_rng(1)
    return rng.standard_normal((batch, *shape), dtype=np.float32), rng.integers(0, num_classes, batch)


def striate_step_fn(net, shape, batch: int):
    """A training step of striate `net` on a fixed batch (the net is put in training mode)."""
    import striate as st
    from striate.optim import SGD

    net.train()
    net.requires_input_grad = False
    crit = st.nn.SoftmaxCrossEntropy()
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = batch_data(shape, batch)

    def step():
        opt.zero_grad()
        crit(net(x), y)
        net.backward(crit.backward())
        opt.step()

    return step


def torch_step_fn(torch, net, shape, batch: int):
    """A training step of PyTorch `net` on the same batch, input channels_last."""
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = batch_data(shape, batch)
    tx, ty = nhwc_to_torch(torch, x), torch.from_numpy(y)
    crit = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        crit(net(tx), ty).backward()
        opt.step()

    return step


def striate_infer_fn(net, shape, batch: int):
    """Eval-mode forward of striate `net` inside st.no_grad() (the net is put in eval mode)."""
    import striate as st

    net.eval()
    x, _ = batch_data(shape, batch)

    def infer():
        with st.no_grad():
            net(x)

    return infer


def torch_infer_fn(torch, net, shape, batch: int):
    net.eval()
    tx = nhwc_to_torch(torch, batch_data(shape, batch)[0])

    def infer():
        with torch.no_grad():
            net(tx)

    return infer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    torch = setup_torch()
    torch.manual_seed(0)
    s_net, shape = striate_net("reference", np.random.default_rng(0))
    t_net = to_torch(s_net, torch)
    t = race({"striate": striate_step_fn(s_net, shape, args.batch),
              "torch": torch_step_fn(torch, t_net, shape, args.batch)}, args.repeats)
    ips = {k: args.batch / v for k, v in t.items()}
    print(f"reference CIFAR net, batch {args.batch}, {compute_threads()} striate/torch threads, "
          f"median of {args.repeats} alternated steps")
    print(f"  striate  {t['striate'] * 1e3:8.1f} ms/step  {ips['striate']:7.1f} images/s")
    print(f"  pytorch  {t['torch'] * 1e3:8.1f} ms/step  {ips['torch']:7.1f} images/s")
    print(f"  striate/PyTorch time ratio {t['striate'] / t['torch']:.2f}  "
          f"(throughput ratio {ips['striate'] / ips['torch']:.2f})")
    return t


if __name__ == "__main__":
    main()
