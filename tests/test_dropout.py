import numpy as np
import pytest

import striate as st
from striate.kernels.dropout import dropout_mask
from striate.nn.dropout import DropConnect, Dropout, Dropout2d
from striate.nn.linear import Linear
from tests import battery


def gen(seed=0):
    return np.random.default_rng(seed)


# ----- gradients in training mode (gradcheck replays the module generators) ---------------------
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_dropout_gradients(rng, p):
    battery.gradients_ok(Dropout(p, rng=gen()), rng.standard_normal((4, 3, 3, 5)))


def test_dropout2d_gradients(rng):
    battery.gradients_ok(Dropout2d(0.5, rng=gen()), rng.standard_normal((3, 4, 4, 6)))


def test_dropconnect_gradients(rng):
    layer = DropConnect(6, 5, p=0.4, rng=gen(), dtype=np.float64)
    layer.bias.data[:] = rng.standard_normal(5)
    battery.gradients_ok(layer, rng.standard_normal((4, 6)))


# ----- statistics --------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(torch, p):
    x = np.ones((1000, 1000), np.float32)
    y = Dropout(p, rng=gen(1))(x)
    dropped = float((y == 0).mean())
    sd = np.sqrt(p * (1 - p) / x.size)
    assert abs(dropped - p) < 5 * sd
    kept = y[y != 0]
    np.testing.assert_allclose(kept, np.float32(1 / (1 - p)), rtol=1e-6)  # inverted scaling, exactly
    assert abs(float(y.mean(dtype=np.float64)) - 1) < 5 * np.sqrt(p / (1 - p) / x.size)  # mean preserved
    # PyTorch: same statistics (masks differ, so compare distributions, not values)
    ty = torch.nn.functional.dropout(torch.tensor(x), p, training=True).numpy()
    assert abs(float((ty == 0).mean()) - dropped) < 10 * sd
    np.testing.assert_allclose(np.unique(ty[ty != 0]), np.unique(kept), rtol=1e-6)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout2d_drops_whole_channels(torch, p):
    n, h, w, c = 64, 6, 5, 32
    x = np.ones((n, h, w, c), np.float32)
    y = Dropout2d(p, rng=gen(2))(x)
    maps = y.transpose(0, 3, 1, 2).reshape(n * c, h * w)
    zero_maps = (maps == 0).all(axis=1)
    full_maps = (maps == np.float32(1 / (1 - p))).all(axis=1)
    assert (zero_maps | full_maps).all()  # every (sample, channel) map is dropped or kept entire
    sd = np.sqrt(p * (1 - p) / (n * c))
    assert abs(zero_maps.mean() - p) < 5 * sd
    assert abs(float(y.mean(dtype=np.float64)) - 1) < 5 * np.sqrt(p / (1 - p) / (n * c))
    # PyTorch Dropout2d on NCHW has the same structure
    ty = torch.nn.functional.dropout2d(battery.nchw(x).detach(), p, training=True).numpy()
    tmaps = ty.reshape(n * c, h * w)
    t_zero = (tmaps == 0).all(axis=1)
    assert (t_zero | (tmaps == np.float32(1 / (1 - p))).all(axis=1)).all()
    assert abs(t_zero.mean() - zero_maps.mean()) < 10 * sd


def test_dropconnect_statistics(rng):
    layer = DropConnect(40, 30, p=0.5, rng=gen(3))
    x = rng.standard_normal((8, 40)).astype(np.float32)
    ys = np.stack([layer(x) for _ in range(800)])
    mask = layer._mask
    assert mask.shape == (40, 30) and abs(float((mask == 0).mean()) - 0.5) < 0.06
    layer.eval()
    plain = layer(x)
    # the masked layer is unbiased: the mean over masks approaches the eval (plain-weight) output
    spread = ys.std(axis=0) / np.sqrt(len(ys))
    assert (np.abs(ys.mean(axis=0) - plain) < 5 * spread + 1e-4).all()


# ----- exact behaviour ---------------------------------------------------------------------------
def test_backward_uses_forward_mask(rng):
    layer = Dropout(0.5, rng=gen(4))
    x = rng.uniform(1, 2, (50, 7)).astype(np.float32)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-6)
    assert ((dx == 0) == (y == 0)).all()


def test_masks_reproducible_from_seed(rng):
    x = rng.standard_normal((20, 8)).astype(np.float32)
    a, b = Dropout(0.5, rng=gen(7)), Dropout(0.5, rng=gen(7))
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(a(x), b(x)[::-1])  # a fresh draw each forward
    c = DropConnect(8, 4, rng=gen(7))
    d = DropConnect(8, 4, rng=gen(7))
    np.testing.assert_array_equal(c(x), d(x))


def test_dropconnect_masks_weights(rng):
    layer = DropConnect(6, 4, p=0.5, rng=gen(5))
    assert isinstance(layer, Linear)
    layer.bias.data[:] = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    y = layer(x)
    mask = layer._mask
    np.testing.assert_allclose(y, x @ (layer.weight.data * mask) + layer.bias.data, rtol=1e-5, atol=1e-6)
    assert set(np.unique(mask)) <= {0.0, 2.0}
    dy = rng.standard_normal(y.shape).astype(np.float32)
    layer.zero_grad()
    dx = layer.backward(dy)
    assert not layer.weight.grad[mask == 0].any()  # only kept weights learn
    np.testing.assert_allclose(layer.weight.grad, (x.T @ dy) * mask, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(0), rtol=1e-5, atol=1e-6)  # bias is never masked
    np.testing.assert_allclose(dx, dy @ (layer.weight.data * mask).T, rtol=1e-5, atol=1e-6)
    # eval is the plain Linear
    layer.eval()
    np.testing.assert_allclose(layer(x), x @ layer.weight.data + layer.bias.data, rtol=1e-6, atol=1e-6)
    assert layer._mask is None
    assert set(layer.state_dict()) == {"weight", "bias"}


def test_train_vs_eval_and_edge_probabilities(rng):
    x = rng.standard_normal((6, 4, 4, 3)).astype(np.float32)
    for layer in [Dropout(0.5, rng=gen()), Dropout2d(0.5, rng=gen())]:
        assert not np.array_equal(layer(x), x)
        layer.eval()
        y = layer(x)
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(layer.backward(2 * x), 2 * x)
    for layer in [Dropout(0.0, rng=gen()), Dropout2d(0.0, rng=gen())]:  # p = 0: identity in training too
        np.testing.assert_array_equal(layer(x), x)
        np.testing.assert_array_equal(layer.backward(x), x)
    for layer in [Dropout(1.0, rng=gen()), Dropout2d(1.0, rng=gen())]:  # p = 1: everything dropped, no NaN
        y = layer(x)
        assert y.dtype == np.float32 and not y.any() and np.isfinite(y).all()
        assert not layer.backward(x).any()
    dc = DropConnect(3, 2, p=1.0, rng=gen())
    assert not dc(x[:, 0, 0, :]).any()  # bias starts at zero
    for bad in [-0.1, 1.5, float("nan")]:
        for cls in (Dropout, Dropout2d):
            with pytest.raises(ValueError, match="p must be in"):
                cls(bad)
        with pytest.raises(ValueError, match="DropConnect"):
            DropConnect(3, 2, p=bad)


def test_mask_kernel_dtype():
    for dtype in (np.float32, np.float64):
        m = dropout_mask((100,), 0.25, gen(), dtype)
        assert m.dtype == dtype and set(np.unique(m)) <= {dtype(0), dtype(1 / 0.75)}


# ----- battery -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Dropout, Dropout2d])
def test_battery(rng, cls):
    layer = cls(0.3, rng=gen())
    x = rng.standard_normal((4, 5, 5, 3)).astype(np.float32)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: cls(0.3, rng=r))
    battery.repr_ok(layer, f"{cls.__name__}(p=0.3, drops 30%)")
    battery.wrong_dtype_rejected(layer, x)
    battery.bad_input_names_layer(layer, x.tolist(), "NumPy array")
    assert layer.macs(x.shape) == 0
    with st.no_grad():
        layer(x)
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="backward called without"):
        layer.backward(x)


def test_dropout2d_bad_shape(rng):
    layer = Dropout2d(0.5)
    battery.bad_input_names_layer(layer, np.zeros((4, 8), np.float32), "expected input (N, H, W, C)", "(4, 8)")
    with pytest.raises(st.nn.LayerError, match="Dropout2d"):
        layer.output_shape((4, 8))
    assert Dropout(0.5)(np.zeros((4, 8), np.float32)).shape == (4, 8)  # plain Dropout takes any shape


def test_battery_dropconnect(rng):
    layer = DropConnect(6, 4, p=0.5, rng=gen())
    x = rng.standard_normal((5, 6)).astype(np.float32)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    layer.eval()
    battery.accumulates(layer, x)  # a fresh mask per forward in training, so check accumulation in eval
    layer.train()
    battery.state_dict_round_trip(lambda r: DropConnect(6, 4, rng=r))
    battery.repr_ok(layer, "DropConnect(6→4, p=0.5, drops 50%)")
    battery.bad_input_names_layer(layer, x[:, :5], "expected input (N, 6)", "(5, 5)")
    battery.wrong_dtype_rejected(layer, x)
    assert layer.macs((5, 6)) == 5 * 6 * 4
