"""Per-layer forward and forward+backward times of the reference CIFAR net's layers (and of the few-input-channel
5×5 convolutions of the small nets) at batch 128:
striate vs PyTorch (CPU, channels_last, same thread count), alternated in one process run; prints medians
and the striate/PyTorch time ratio per layer (striate time / PyTorch time: ≤ 1 means striate is at least
as fast; run.py reports the inverse, a speed ratio).

    python bench/layers.py [--batch 128] [--repeats 10] [--only conv]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import compute_threads, race, setup_torch  # noqa: E402


def layer_pairs(torch, batch: int):
    """(name, striate module, torch module, NHWC input shape) for each distinct layer of the reference net."""
    import striate as st
    from striate.nn.activation import GELU, ReLU, Tanh
    from striate.nn.dropout import Dropout
    from striate.nn.norm import BatchNorm
    from striate.nn.pool import MaxPool2d

    rng = np.random.default_rng(0)
    nn = torch.nn
    pairs = []
    for h, cin, cout in [(32, 3, 64), (32, 64, 64), (16, 64, 128), (16, 128, 128), (8, 128, 256), (8, 256, 256)]:
        pairs.append((f"conv3x3 {cin}->{cout} @{h}", st.nn.Conv2d(cin, cout, 3, padding=1, bias=False, rng=rng),
                      nn.Conv2d(cin, cout, 3, padding=1, bias=False), (batch, h, h, cin)))  # BN follows: no bias
    for h, c in [(32, 64), (16, 128), (8, 256)]:
        pairs.append((f"batchnorm {c} @{h}", BatchNorm(c), nn.BatchNorm2d(c), (batch, h, h, c)))
        pairs.append((f"relu {c} @{h}", ReLU(), nn.ReLU(), (batch, h, h, c)))
        pairs.append((f"maxpool2 {c} @{h}", MaxPool2d(2), nn.MaxPool2d(2), (batch, h, h, c)))
    pairs.append(("tanh 6 @28 (lenet5)", Tanh(), nn.Tanh(), (batch, 28, 28, 6)))
    pairs.append(("gelu 128 @16", GELU(), nn.GELU(), (batch, 16, 16, 128)))
    pairs.append(("linear 4096->256", st.nn.Linear(4096, 256, rng=rng), nn.Linear(4096, 256), (batch, 4096)))
    pairs.append(("dropout 256", Dropout(0.5, rng=rng), nn.Dropout(0.5), (batch, 256)))
    pairs.append(("linear 256->10", st.nn.Linear(256, 10, rng=rng), nn.Linear(256, 10), (batch, 256)))
    # the few-input-channel 5×5 convolutions of lenet5, three_layer and googlenet_cifar (width 0.25), with bias
    for h, cin, cout, pad in FEW_CHANNEL_CONVS:
        pairs.append((f"conv5x5 {cin}->{cout} @{h}" + (f" p{pad}" if pad else ""),
                      st.nn.Conv2d(cin, cout, 5, padding=pad, rng=rng), nn.Conv2d(cin, cout, 5, padding=pad),
                      (batch, h, h, cin)))
    return pairs


FEW_CHANNEL_CONVS = [(32, 1, 6, 0), (14, 6, 16, 0), (32, 3, 32, 2), (32, 4, 8, 2), (32, 8, 24, 2)]  # (H, C, F, pad)


def time_pair(torch, s_mod, t_mod, shape, repeats):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape, dtype=np.float32)
    y = s_mod(x)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    if len(shape) == 4:
        tx = torch.tensor(x).permute(0, 3, 1, 2)  # an NHWC buffer seen as NCHW: channels_last
        t_mod = t_mod.to(memory_format=torch.channels_last)
    else:
        tx = torch.tensor(x)
    tx.requires_grad_(True)
    ty = t_mod(tx)
    tdy = torch.tensor(dy).permute(0, 3, 1, 2) if len(shape) == 4 else torch.tensor(dy)

    def s_fwd():
        s_mod(x)

    def s_fb():
        s_mod(x)
        s_mod.backward(dy)

    def t_fwd():
        t_mod(tx)

    def t_fb():
        t_mod(tx).backward(tdy)

    assert ty.shape == tdy.shape
    return race({"s_fwd": s_fwd, "t_fwd": t_fwd, "s_fb": s_fb, "t_fb": t_fb}, repeats)


def measure(torch, batch: int, repeats: int, only: str = ""):
    """Yield (layer name, {"s_fwd", "t_fwd", "s_fb", "t_fb": median seconds}) for each layer whose name
    contains `only`, one layer at a time (as it is measured)."""
    for name, s_mod, t_mod, shape in layer_pairs(torch, batch):
        if only in name:
            yield name, time_pair(torch, s_mod, t_mod, shape, repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--only", default="", help="substring filter on layer names")
    args = ap.parse_args(argv)
    torch = setup_torch()
    print(f"batch {args.batch}, {compute_threads()} striate/torch threads, medians of {args.repeats} alternated runs")
    print(f"{'layer':<26}{'striate fwd':>12}{'torch fwd':>11}{'s/t':>7}{'striate f+b':>13}{'torch f+b':>11}"
          f"{'s/t':>7}   (s/t: striate time / PyTorch time)")
    rows = []
    for name, t in measure(torch, args.batch, args.repeats, args.only):
        rows.append((name, t))
        print(f"{name:<26}{t['s_fwd'] * 1e3:>10.2f}ms{t['t_fwd'] * 1e3:>9.2f}ms{t['s_fwd'] / t['t_fwd']:>7.2f}"
              f"{t['s_fb'] * 1e3:>11.2f}ms{t['t_fb'] * 1e3:>9.2f}ms{t['s_fb'] / t['t_fb']:>7.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
