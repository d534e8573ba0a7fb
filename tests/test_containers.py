import numpy as np
import pytest

import striate as st
from tests import battery


def conv(rng, cin, cout, k=3, pad=1, dtype=np.float64):
    return st.nn.Conv2d(cin, cout, k, padding=pad, rng=rng, dtype=dtype)


class Square(st.nn.Module):
    """A smooth parameter-free nonlinearity so container checks see real curvature."""

    def forward(self, x):
        self._save(x)
        return x * x

    def backward(self, dy):
        return 2 * self._saved() * dy


def test_sequential_gradients(rng):
    net = st.nn.Sequential(conv(rng, 3, 4), Square(), conv(rng, 4, 2, k=3, pad=0), st.nn.Flatten(),
                           st.nn.Linear(2 * 3 * 3, 3, rng=rng, dtype=np.float64))
    battery.gradients_ok(net, rng.standard_normal((2, 5, 5, 3)))
    assert len(net) == 5 and isinstance(net[1], Square) and len(net[1:3]) == 2
    assert [type(m).__name__ for m in net] == ["Conv2d", "Square", "Conv2d", "Flatten", "Linear"]
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]


def test_concat_gradients_and_shapes(rng):
    block = st.nn.Concat(conv(rng, 3, 2, k=1, pad=0), st.nn.Sequential(conv(rng, 3, 3), Square()),
                         conv(rng, 3, 4, k=5, pad=2))
    x = rng.standard_normal((2, 6, 6, 3))
    y = block(x)
    assert y.shape == (2, 6, 6, 9) == block.output_shape(x.shape)
    np.testing.assert_allclose(y[..., :2], block[0](x))
    np.testing.assert_allclose(y[..., 5:], block[2](x))
    battery.gradients_ok(block, x)
    assert block.macs(x.shape) == sum(m.macs(x.shape) for m in block)


def test_concat_mismatch_is_clear(rng):
    block = st.nn.Concat(conv(rng, 3, 2, k=1, pad=0), conv(rng, 3, 2, k=3, pad=0))
    with pytest.raises(st.nn.LayerError, match="all axes but the last must agree"):
        block(rng.standard_normal((1, 5, 5, 3)))


def test_residual_identity_and_projection(rng):
    res = st.nn.Residual(st.nn.Sequential(conv(rng, 3, 3), Square(), conv(rng, 3, 3)))
    x = rng.standard_normal((2, 5, 5, 3))
    np.testing.assert_allclose(res(x), res.body(x) + x)
    battery.gradients_ok(res, x)
    proj = st.nn.Residual(conv(rng, 3, 5), shortcut=conv(rng, 3, 5, k=1, pad=0))
    battery.gradients_ok(proj, x)
    bad = st.nn.Residual(conv(rng, 3, 5))
    with pytest.raises(st.nn.LayerError, match="projection shortcut"):
        bad(x)


def test_stochastic_depth(rng):
    body = st.nn.Sequential(conv(rng, 3, 3, dtype=np.float32))
    res = st.nn.Residual(body, survival=0.5, rng=np.random.default_rng(3))
    x = rng.standard_normal((4000, 2, 2, 3)).astype(np.float32)
    y = res(x)
    branch = body(x)
    kept = np.isclose(y - x, 2 * branch, atol=1e-5).all(axis=(1, 2, 3))
    dropped = np.isclose(y, x, atol=1e-6).all(axis=(1, 2, 3))
    assert np.all(kept | dropped)
    assert abs(kept.mean() - 0.5) < 0.03
    res.eval()
    np.testing.assert_allclose(res(x), x + branch, rtol=1e-5, atol=1e-5)  # inverted scaling: eval is the plain sum
    res.train()
    res64 = st.nn.Residual(st.nn.Sequential(conv(rng, 3, 3), Square()), survival=0.7, rng=np.random.default_rng(1))
    battery.gradients_ok(res64, rng.standard_normal((6, 4, 4, 3)))  # masks repeat inside the check
    with pytest.raises(ValueError):
        st.nn.Residual(body, survival=0.0)


def test_error_names_child_and_position(rng):
    net = st.nn.Sequential(conv(rng, 3, 8, dtype=np.float32), Square(), conv(rng, 16, 4, dtype=np.float32))
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    with pytest.raises(st.nn.LayerError) as info:
        net(x)
    msg = str(info.value)
    assert "in layer 2 (Conv2d(16→4, 3×3, pad=1)) of Sequential" in msg
    assert "expected input (N, H, W, 16), got (2, 6, 6, 8)" in msg
    outer = st.nn.Sequential(st.nn.Residual(net))
    with pytest.raises(st.nn.LayerError, match="in layer 0 .* in body .* in layer 2"):
        outer(x)
    with pytest.raises(st.nn.LayerError, match="in layer 2"):
        net.output_shape((2, 6, 6, 3))


def test_train_eval_recursive_and_repr(rng):
    net = st.nn.Sequential(conv(rng, 3, 4), st.nn.Concat(conv(rng, 4, 2), conv(rng, 4, 2)))
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    text = repr(net)
    assert "(0): Conv2d(3→4, 3×3, pad=1)" in text and "(1): Concat(" in text and "  (1): Conv2d(4→2" in text


def test_state_dict_and_to(rng):
    def make(r):
        return st.nn.Sequential(conv(r, 3, 4, dtype=np.float32), st.nn.Residual(conv(r, 4, 4, dtype=np.float32)))

    battery.state_dict_round_trip(make)
    net = make(rng)
    assert set(net.state_dict()) == {"0.weight", "0.bias", "1.body.weight", "1.body.bias"}
    net.to(np.float64)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    with pytest.raises(ValueError, match="shape"):
        net.load_state_dict({**net.state_dict(), "0.bias": np.zeros(5)})


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="item 0"):
        st.nn.Sequential(lambda x: x)


def test_input_grad_skipped_when_not_wanted(rng):
    def make():
        r = np.random.default_rng(4)
        return st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(12, 6, rng=r), Square(), st.nn.Linear(6, 2, rng=r))

    full, lean = make(), make()
    lean.requires_input_grad = False
    x = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    g = rng.standard_normal((3, 2)).astype(np.float32)
    full(x)
    assert full.backward(g).shape == x.shape
    lean(x)
    assert lean.backward(g) is None
    for (n, a), (_, b) in zip(full.named_parameters(), lean.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.grad, b.grad, err_msg=n)


def test_conv_without_input_grad_same_weight_grads(rng):
    from striate.kernels.conv import conv2d_backward, conv2d_forward

    for stride, pad, k in [(1, 1, 3), (2, 1, 4), (1, 0, 1)]:
        x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
        w = rng.standard_normal((k, k, 3, 4)).astype(np.float32)
        y, cache = conv2d_forward(x, w, None, stride, pad)
        dx, dw, _ = conv2d_backward(np.ones_like(y), cache)
        none, dw2, _ = conv2d_backward(np.ones_like(y), cache, need_dx=False)
        assert none is None
        np.testing.assert_allclose(dw, dw2, rtol=1e-6)


def test_reassigned_buffer_stays_registered():
    class Counter(st.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", np.zeros(2, np.float32))

    m = Counter()
    m.count = m.count + 1  # a new array under the same name
    assert "count" in m.state_dict() and m.state_dict()["count"].tolist() == [1.0, 1.0]
    m.to(np.float64)
    assert m.count.dtype == np.float64
