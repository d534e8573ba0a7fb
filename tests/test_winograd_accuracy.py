"""The accuracy gates of `winograd.choose` on real activations: a small net trained on the digits for a few
dozen steps, then each 3×3 layer's input, weights and output gradient on one batch. For every pass, each
Winograd variant the rule may use there (F(2×2) anywhere, F(4×4) where its gate allows) has an error
max|y − y64| / max|y64| within 10× of im2col's, y64 a float64 direct convolution of the same float32 data."""

import numpy as np
import pytest

import striate as st
from striate.data import load
from striate.diagnose.hooks import tap
from striate.kernels.conv import conv2d_forward, conv2d_input_grad, conv2d_weight_grad, pad_nhwc
from striate.kernels.reference import conv2d_backward_naive, conv2d_naive
from striate.kernels.winograd import choose, winograd_forward, winograd_input_grad, winograd_weight_grad
from striate.nn import BatchNorm, Conv2d, Flatten, GlobalAvgPool2d, Linear, ReLU, Sequential

WIDTHS = (16, 32, 64, 128, 256, 32)


@pytest.fixture(scope="module")
def trained_layers():
    ds = load("digits", "train")
    x = (ds.images.astype(np.float32) / 16 - 0.3)[:, :, :, :1]
    y = ds.labels
    rng = np.random.default_rng(0)
    layers, c = [], 1
    for f in WIDTHS:
        layers += [Conv2d(c, f, 3, padding=1, bias=False, rng=rng), BatchNorm(f), ReLU()]
        c = f
    net = Sequential(*layers, GlobalAvgPool2d(), Flatten(), Linear(c, 10, rng=rng))
    crit, opt = st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(30):
        idx = rng.integers(0, len(x), 32)
        opt.zero_grad()
        crit(net(x[idx]), y[idx])
        net.backward(crit.backward())
        opt.step()
    convs = [(str(i), m) for i, m in enumerate(net) if isinstance(m, Conv2d)]
    seen = {}
    with tap(convs, on_forward=lambda name, m, a, b: seen.setdefault(name, {}).update(x=a.copy()),
             on_backward=lambda name, m, dy, dx: seen[name].update(dy=dy.copy())):
        idx = rng.integers(0, len(x), 8)
        crit(net(x[idx]), y[idx])
        net.requires_input_grad = True
        net.backward(crit.backward())
    return [(m, seen[name]["x"], m.weight.data.copy(), seen[name]["dy"]) for name, m in convs]


def _passes(algo, x, w, dy, pad):
    if algo == "im2col":
        return {"fwd": conv2d_forward(x, w, None, 1, pad)[0], "dx": conv2d_input_grad(dy, w, 1, pad, x.shape),
                "dw": conv2d_weight_grad(pad_nhwc(x, pad), dy, 3, 3, 1)}
    m = int(algo[-1])
    return {"fwd": winograd_forward(x, w, None, pad, m)[0], "dx": winograd_input_grad(dy, w, pad, m),
            "dw": winograd_weight_grad(x, dy, pad, m)}


def test_every_winograd_variant_the_rule_may_use_stays_within_10x_of_im2col(trained_layers):
    checked = []
    for conv, x, w, dy in trained_layers:
        x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
        dx64, dw64, _ = conv2d_backward_naive(dy64, x64, w64, 1, 1)
        ref = {"fwd": conv2d_naive(x64, w64, None, 1, 1), "dx": dx64, "dw": dw64}
        n, h, wd, c = x.shape
        f = w.shape[3]
        allowed = {p: {"winograd2", choose(n, h, wd, c, f, which=p, force=True)} for p in ref}
        results = {a: _passes(a, x, w, dy, 1) for a in ("im2col", "winograd2", "winograd4")}

        def err(a, p, results=results, ref=ref):
            return np.abs(results[a][p] - ref[p]).max() / np.abs(ref[p]).max()

        for p in ref:
            base = err("im2col", p)
            assert 0 < base < 1e-5, (conv, p, base)
            for algo in allowed[p]:
                checked.append((c, f, p, algo))
                assert err(algo, p) <= 10 * base, f"{conv.describe()} {p} by {algo}: {err(algo, p) / base:.1f}× im2col"
    # F(4×4) was allowed, and so checked, for each pass somewhere; not for forward over 256 channels
    assert {p for *_, p, a in checked if a == "winograd4"} == {"fwd", "dx", "dw"}
    assert (256, 32, "fwd", "winograd4") not in checked and (256, 32, "dw", "winograd4") in checked


def test_gradients_through_winograd_layers_pass_the_gradient_check(rng):
    st.set_conv_algorithm("winograd")
    try:
        net = Sequential(Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64), ReLU(),
                         Conv2d(3, 2, 3, padding=0, rng=rng, dtype=np.float64))
        x = rng.standard_normal((2, 6, 5, 2))
        report = st.gradcheck(net, x)
        assert report.ok, report.errors
        net.requires_input_grad = True
        net.backward(np.ones_like(net(x)))
        assert {net[0].algorithms[p][:8] for p in ("fwd", "dx", "dw")} == {"winograd"}
        assert {net[2].algorithms[p][:8] for p in ("fwd", "dx", "dw")} == {"winograd"}
    finally:
        st.set_conv_algorithm("rule")
