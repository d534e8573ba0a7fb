import math

import numpy as np
import pytest

import striate as st
from striate.kernels.activation import elu_forward, maxout_backward, maxout_forward, sigmoid_forward
from striate.nn.activation import ELU, GELU, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Tanh
from tests import battery

# name → (factory, torch reference on a tensor)
ELEMENTWISE = {
    "ReLU": (ReLU, lambda t, F: F.relu(t)),
    "LeakyReLU": (lambda: LeakyReLU(0.2), lambda t, F: F.leaky_relu(t, 0.2)),
    "LeakyReLU-default": (LeakyReLU, lambda t, F: F.leaky_relu(t)),
    "ELU": (lambda: ELU(0.7), lambda t, F: F.elu(t, 0.7)),
    "Sigmoid": (Sigmoid, lambda t, F: t.sigmoid()),
    "Tanh": (Tanh, lambda t, F: t.tanh()),
    "PReLU": (lambda: PReLU(), lambda t, F: F.prelu(t, F.torch.full((1,), 0.25))),
    "GELU": (GELU, lambda t, F: F.gelu(t)),
    "GELU-tanh": (lambda: GELU("tanh"), lambda t, F: F.gelu(t, approximate="tanh")),
}


def images(rng, shape=(2, 5, 4, 3), dtype=np.float32):
    return (rng.standard_normal(shape) * 2).astype(dtype)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", [(3, 7), (2, 4, 3, 5)])
def test_gradients(rng, name, shape):
    layer = ELEMENTWISE[name][0]()
    battery.gradients_ok(layer, images(rng, shape, np.float64))


def test_prelu_per_channel_gradients(rng):
    layer = PReLU(5, dtype=np.float64)
    layer.alpha.data[:] = rng.uniform(-0.5, 0.5, 5)
    report = battery.gradients_ok(layer, images(rng, (2, 3, 4, 5), np.float64))
    assert "alpha" in report.errors


def test_maxout_gradients(rng):
    layer = Maxout(6, 4, pieces=3, rng=rng, dtype=np.float64)
    layer.bias.data[:] = rng.standard_normal(12)
    battery.gradients_ok(layer, rng.standard_normal((5, 6)))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_matches_torch(rng, torch, name):
    make, ref = ELEMENTWISE[name]
    layer = make()
    x = images(rng)
    x[0, 0, 0, :] = 0  # the kink: both take the x ≤ 0 branch
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    F = torch.nn.functional
    F.torch = torch
    ty = ref(tx, F)
    ty.backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == np.float32
    # PyTorch's float32 GELU forms 1 + erf(x/√2), which cancels in the left tail (absolute error up to 4e-7
    # at x ≈ −6); striate's Φ = erfc(−x/√2)/2 does not (tests/test_gelu.py checks it against math.erfc)
    atol = 5e-7 if name.startswith("GELU") else 1e-7
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=atol)
    # 1 − y² near saturation amplifies a one-ulp difference in y, hence the looser gradient tolerance
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_sigmoid_tails_match_torch(torch):
    x = np.array([-200, -88, -30, -5, 0, 5, 30, 88, 200], np.float32)
    y, _ = sigmoid_forward(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, torch.tensor(x).sigmoid().numpy(), rtol=1e-6, atol=0)
    assert y[2] > 0  # e^-30 ≈ 9e-14 is representable; the small tail keeps its value


def test_elementwise_match_scalar_formulas(rng):
    x = rng.standard_normal(40) * 3
    y, _ = elu_forward(x, 1.3)
    np.testing.assert_allclose(y, [v if v > 0 else 1.3 * (math.exp(v) - 1) for v in x], rtol=1e-14, atol=1e-15)
    y, _ = sigmoid_forward(x)
    np.testing.assert_allclose(y, [1 / (1 + math.exp(-v)) for v in x], rtol=1e-14)


def test_relu_kink_and_mask(rng):
    layer = ReLU()
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(layer(x), [[0, 0, 2]])
    assert layer._cache.dtype == np.bool_  # the cache is a byte mask, not a float copy
    np.testing.assert_array_equal(layer.backward(np.full_like(x, 3)), [[0, 0, 3]])


@pytest.mark.parametrize("layout", ["features", "nhwc"])
def test_prelu_per_channel_matches_torch(rng, torch, layout):
    c = 4
    layer = PReLU(c)
    layer.alpha.data[:] = rng.uniform(-0.3, 0.6, c).astype(np.float32)
    x = images(rng, (6, c) if layout == "features" else (3, 5, 4, c))
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    ref = torch.nn.PReLU(c)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.alpha.data))
    if layout == "features":
        tx = torch.tensor(x, requires_grad=True)
        ty = ref(tx)
        ty.backward(torch.tensor(dy))
        ty, tdx = ty.detach().numpy(), tx.grad.numpy()
    else:  # PyTorch's channel is axis 1 of NCHW
        tx = battery.nchw(x)
        ty = ref(tx)
        ty.backward(battery.nchw(dy).detach())
        ty, tdx = battery.nhwc(ty), battery.nhwc(tx.grad)
    np.testing.assert_allclose(y, ty, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, tdx, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(layer.alpha.grad, ref.weight.grad.numpy(), rtol=1e-5, atol=1e-5)


def maxout_naive(x, w, b, pieces):
    """Loop over the pieces: the max of `pieces` separate linear maps."""
    n, d = x.shape
    w3, b2 = w.reshape(d, -1, pieces), b.reshape(-1, pieces)
    out = x @ w3[:, :, 0] + b2[:, 0]
    for j in range(1, pieces):
        out = np.maximum(out, x @ w3[:, :, j] + b2[:, j])
    return out


def test_maxout_matches_naive_and_torch(rng, torch):
    layer = Maxout(7, 3, pieces=4, rng=rng)
    layer.bias.data[:] = rng.standard_normal(12).astype(np.float32)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    y = layer(x)
    np.testing.assert_allclose(y, maxout_naive(x, layer.weight.data, layer.bias.data, 4), rtol=1e-6, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    tw = torch.tensor(layer.weight.data, requires_grad=True)
    tb = torch.tensor(layer.bias.data, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ty = (tx @ tw + tb).view(6, 3, 4).max(dim=2).values
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_maxout_routes_to_winning_piece(rng):
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((3, 8))
    y, cache = maxout_forward(x, w, None, 2)
    _, dw, db = maxout_backward(np.ones_like(y), cache)
    assert db is None
    z = (x @ w).reshape(5, 4, 2)
    winners = (z == z.max(axis=2, keepdims=True)).reshape(5, 8)
    np.testing.assert_allclose(dw, x.T @ winners.astype(float))  # losing pieces get nothing


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_battery_elementwise(rng, name):
    make = ELEMENTWISE[name][0]
    layer = make()
    x = images(rng)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.wrong_dtype_rejected(layer, x)
    battery.bad_input_names_layer(layer, [1.0, 2.0], "NumPy array")
    assert layer.macs(x.shape) == 0
    # no train/eval difference for a deterministic activation
    y_train = layer(x)
    layer.eval()
    np.testing.assert_array_equal(layer(x), y_train)
    with st.no_grad():
        layer(x)
    assert layer._cache is None


def test_battery_prelu(rng):
    layer = PReLU(3)
    layer.alpha.data[:] = [0.1, -0.2, 0.3]
    x = images(rng)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: PReLU(3, init=float(r.random())))
    battery.repr_ok(layer, "PReLU(num_parameters=3)")
    assert [n for n, _ in layer.named_parameters()] == ["alpha"] and layer.num_parameters() == 3
    battery.bad_input_names_layer(layer, x[..., :2], "expected input (N, ..., 3)", "(2, 5, 4, 2)")
    battery.bad_input_names_layer(layer, x.astype(np.float64), "float64", "float32")
    with pytest.raises(st.nn.LayerError, match="PReLU"):
        layer.output_shape((2, 5, 4, 2))
    with pytest.raises(ValueError):
        PReLU(0)


def test_battery_maxout(rng):
    layer = Maxout(6, 4, pieces=3, rng=rng)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: Maxout(6, 4, pieces=3, rng=r))
    battery.repr_ok(layer, "Maxout(6→4, pieces=3)")
    assert layer.weight.shape == (6, 12) and layer.bias.shape == (12,)
    assert layer.macs((5, 6)) == 5 * 6 * 12
    battery.bad_input_names_layer(layer, x[:, :5], "expected input (N, 6)", "(5, 5)")
    battery.bad_input_names_layer(layer, x.reshape(5, 2, 3), "expected input (N, 6)")
    battery.wrong_dtype_rejected(layer, x)
    with pytest.raises(st.nn.LayerError, match="Maxout"):
        layer.output_shape((5, 7))
    no_bias = Maxout(6, 2, bias=False, rng=rng)
    assert no_bias.bias is None and no_bias(x).shape == (5, 2)
    battery.gradients_ok(no_bias.to(np.float64), x.astype(np.float64))


def test_backward_without_forward():
    with pytest.raises(RuntimeError, match="backward called without"):
        ReLU().backward(np.zeros((2, 3), np.float32))


def test_scale(rng, torch):
    """Scale(factor): y = factor·x on any shape, no parameters; gradients, dtype, torch's x * factor."""
    layer = st.nn.Scale(1 / 9)
    x = rng.standard_normal((3, 4, 2, 5)).astype(np.float32)
    battery.gradients_ok(layer, x.astype(np.float64))
    battery.float32_in_out(layer, x)
    assert layer(x).dtype == np.float32 and layer.num_parameters() == 0 and layer.state_dict() == {}
    np.testing.assert_array_equal(layer(x), (torch.from_numpy(x) * (1 / 9)).numpy())
    assert repr(layer) == "Scale(0.111111)" and layer.macs((2, 3)) == 6 and layer.output_shape((2, 3)) == (2, 3)
    for bad in ["2", float("inf"), True]:
        with pytest.raises(ValueError, match="Scale: factor must be a finite number"):
            st.nn.Scale(bad)
    with pytest.raises(st.nn.LayerError, match=r"Scale\(0.111111\): expected a float32 or float64 array"):
        layer(np.ones(3, np.int64))
