"""BatchNorm directly followed by ReLU in a Sequential runs fused (one pass each way): the same results, bit
for bit, as the two layers run one after the other, in training and eval mode; taps switch the fusion off;
each layer still works on its own after a fused forward."""

import numpy as np
import pytest

import striate as st
from striate.diagnose.hooks import leaf_modules, tap
from striate.nn import BatchNorm, ReLU, Sequential


def _net(rng, c=6):
    net = Sequential(st.nn.Conv2d(3, c, 3, padding=1, rng=rng), BatchNorm(c), ReLU(), BatchNorm(c), ReLU())
    net.requires_input_grad = True
    return net


def _separately(net, x, dy):
    """Forward and backward through each child by hand (no fusion), input gradient and parameter grads."""
    layers = list(net)
    for m in layers:
        x = m.forward(x)
    for m in reversed(layers):
        dy = m.backward(dy)
    return x, dy, [p.grad.copy() for p in net.parameters()]


@pytest.mark.parametrize("training", [True, False])
def test_fused_pair_is_bit_identical_to_the_layers_one_by_one(rng, training):
    x = rng.standard_normal((4, 5, 5, 3)).astype(np.float32)
    dy = rng.standard_normal((4, 5, 5, 6)).astype(np.float32)
    a, b = _net(np.random.default_rng(1)), _net(np.random.default_rng(1))
    for net in (a, b):
        net.train(training)
        net[3].beta.data[:] = 0.3  # some negative pre-activations and some positive ones on both pairs
    y = a.forward(x)
    assert a[2].fused_with(a[1]) and a[4].fused_with(a[3])
    dx = a.backward(dy)
    y_ref, dx_ref, grads_ref = _separately(b, x, dy)
    assert np.array_equal(y, y_ref) and np.array_equal(dx, dx_ref)
    assert all(np.array_equal(p.grad, g) for p, g in zip(a.parameters(), grads_ref, strict=True))
    assert all(np.array_equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert list(a.state_dict()) == list(b.state_dict())  # names unchanged


def test_each_layer_works_alone_after_a_fused_forward(rng):
    net = _net(rng)
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    y = net(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    d_relu = net[4].backward(dy)  # the ReLU's mask, recomputed from the BatchNorm's cache
    np.testing.assert_array_equal(d_relu, dy * (y > 0))
    assert net[3].backward(d_relu).shape == y.shape


def test_a_tapped_layer_is_not_fused(rng):
    net = _net(rng)
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    seen = []
    with tap(leaf_modules(net), on_forward=lambda name, m, i, o: seen.append((name, o.copy()))):
        y = net(x)
        net.backward(np.ones_like(y))
    assert [name for name, _ in seen] == ["0", "1", "2", "3", "4"]
    assert not net[2].fused_with(net[1])
    assert np.array_equal(seen[-1][1], y)
    np.testing.assert_array_equal(seen[2][1], np.maximum(seen[1][1], 0))


def test_no_cache_under_no_grad(rng):
    net = _net(rng).eval()
    with st.no_grad():
        net(rng.standard_normal((2, 4, 4, 3)).astype(np.float32))
    assert all(m._cache is None for m in net)
