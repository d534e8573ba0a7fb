import numpy as np

import striate as st
from tests import battery


def make(rng, dtype=np.float32):
    layer = st.nn.Linear(6, 4, rng=rng, dtype=dtype)
    layer.bias.data[:] = rng.standard_normal(4).astype(dtype)
    return layer, rng.standard_normal((5, 6)).astype(dtype)


def test_gradients(rng):
    battery.gradients_ok(*make(rng, np.float64))


def test_matches_torch(rng, torch):
    layer, x = make(rng)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    ref = torch.nn.Linear(6, 4)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data.T))
        ref.bias.copy_(torch.tensor(layer.bias.data))
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy().T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_battery(rng):
    layer, x = make(rng)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: st.nn.Linear(6, 4, rng=r))
    battery.repr_ok(layer, "Linear(6→4)")
    battery.bad_input_names_layer(layer, x[:, :5], "expected input (N, 6)", "(5, 5)")
    battery.bad_input_names_layer(layer, x.reshape(5, 2, 3), "expected input (N, 6)")
    battery.wrong_dtype_rejected(layer, x)
    assert layer.macs((5, 6)) == 5 * 6 * 4


def test_flatten(rng):
    f = st.nn.Flatten()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y = f(x)
    assert y.shape == (2, 60) and f.output_shape(x.shape) == (2, 60)
    np.testing.assert_array_equal(y[1], x[1].reshape(-1))
    assert f.backward(y).shape == x.shape
    battery.gradients_ok(f, x.astype(np.float64))
    battery.bad_input_names_layer(f, np.zeros(3, np.float32), "rank")
