"""ZeroPad2d (st.nn): the layer battery, and equality with PyTorch's ZeroPad2d."""

import numpy as np
import pytest

from striate.nn import ZeroPad2d
from tests import battery

PADS = [(2, 3, 0, 1), (1, 1, 1, 1), (0, 1, 0, 1), (0, 0, 0, 0)]


@pytest.mark.parametrize("pad", PADS)
def test_gradients(rng, pad):
    battery.gradients_ok(ZeroPad2d(*pad), rng.standard_normal((2, 4, 5, 3)))


@pytest.mark.parametrize("pad", PADS)
def test_matches_torch(rng, torch, pad):
    layer, x = ZeroPad2d(*pad), rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    top, bottom, left, right = pad
    tx = battery.nchw(x)
    ty = torch.nn.ZeroPad2d((left, right, top, bottom))(tx)  # torch orders (left, right, top, bottom)
    ty.backward(battery.nchw(dy).detach())
    np.testing.assert_array_equal(y, battery.nhwc(ty))
    np.testing.assert_array_equal(dx, battery.nhwc(tx.grad))


def test_shapes_and_defaults(rng):
    layer = ZeroPad2d(2, 3, 0, 1)
    x = rng.standard_normal((2, 4, 5, 3))
    y = layer(x)
    assert y.shape == layer.output_shape(x.shape) == (2, 9, 6, 3)
    np.testing.assert_array_equal(y[:, 2:6, 0:5], x)
    assert y.sum() == pytest.approx(x.sum())
    assert ZeroPad2d(1).padding == (1, 1, 1, 1) and ZeroPad2d(1, 2).padding == (1, 2, 1, 1)
    assert ZeroPad2d(1, 2, 3).padding == (1, 2, 3, 3)


def test_battery(rng):
    layer, x = ZeroPad2d(2, 3, 0, 1), rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.state_dict_round_trip(lambda r: ZeroPad2d(1))
    battery.repr_ok(layer, "ZeroPad2d(top=2, bottom=3, left=0, right=1)")
    assert layer.macs(x.shape) == 0 and layer.num_parameters() == 0


def test_bad_inputs(rng):
    layer, x = ZeroPad2d(2, 3, 0, 1), rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    battery.bad_input_names_layer(layer, x[0], "expected input (N, H, W, C)")
    battery.bad_input_names_layer(layer, x.tolist(), "NumPy array")
    battery.wrong_dtype_rejected(layer, x)
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be ≥ 0"):
        ZeroPad2d(1, -1)
