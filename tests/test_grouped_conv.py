"""GroupedConv2d (st.nn): the layer battery, and equality with PyTorch's grouped convolution."""

import numpy as np
import pytest

import striate as st
from striate.nn import GroupedConv2d
from tests import battery


def make(rng, dtype=np.float32, stride=1, padding=1):
    layer = GroupedConv2d(4, 6, 3, stride=stride, padding=padding, groups=2, rng=rng, dtype=dtype)
    for conv in layer._convs():
        conv.bias.data[:] = rng.standard_normal(conv.bias.shape).astype(dtype)
    return layer, rng.standard_normal((2, 5, 5, 4)).astype(dtype)


def test_is_independent_convs(rng):
    layer, x = make(rng)
    y = layer(x)
    a, b = layer._convs()
    with st.no_grad():
        np.testing.assert_allclose(y[..., :3], a(np.ascontiguousarray(x[..., :2])), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(y[..., 3:], b(np.ascontiguousarray(x[..., 2:])), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_gradients(rng, stride, padding):
    layer, x = make(rng, np.float64, stride, padding)
    battery.gradients_ok(layer, x)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1)])
def test_matches_torch(rng, torch, stride, padding):
    layer, x = make(rng, np.float32, stride, padding)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    tw = torch.tensor(np.concatenate([battery.conv_weight_to_torch(c.weight.data) for c in layer._convs()]),
                      requires_grad=True)
    tb = torch.tensor(np.concatenate([c.bias.data for c in layer._convs()]), requires_grad=True)
    tx = battery.nchw(x)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, groups=2)
    ty.backward(battery.nchw(dy).detach())
    np.testing.assert_allclose(y, battery.nhwc(ty), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=1e-5, atol=1e-5)
    dw = np.concatenate([battery.conv_weight_to_torch(c.weight.grad) for c in layer._convs()])
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.concatenate([c.bias.grad for c in layer._convs()]), tb.grad.numpy(),
                               rtol=1e-4, atol=1e-4)


def test_battery(rng):
    layer, x = make(rng)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: GroupedConv2d(4, 6, 3, groups=2, rng=r))
    battery.repr_ok(layer, "GroupedConv2d(4→6, 3×3, groups=2, pad=1)")
    clone = battery.deepcopy_independent(layer)
    assert not np.array_equal(clone._convs()[0].weight.data, layer._convs()[0].weight.data)
    assert layer.macs((2, 5, 5, 4)) == 2 * 25 * 6 * 9 * 2  # half the MACs of the ungrouped 4→6 convolution
    assert layer.num_parameters() == 2 * (3 * 3 * 2 * 3 + 3)


def test_bad_inputs(rng):
    layer, x = make(rng)
    battery.bad_input_names_layer(layer, x[..., :3], "expected input (N, H, W, 4)")
    battery.bad_input_names_layer(layer, x[0], "expected input (N, H, W, 4)")
    battery.wrong_dtype_rejected(layer, x)
    battery.bad_input_names_layer(layer, x.astype(np.float64), "does not match parameter dtype")
    with pytest.raises(ValueError, match="groups"):
        GroupedConv2d(3, 6, 3, groups=2)
    strided = GroupedConv2d(4, 6, 2, stride=2, groups=2)
    for call in (lambda: strided.output_shape((1, 5, 5, 4)), lambda: strided(x)):
        with pytest.raises(st.nn.LayerError, match=r"^GroupedConv2d\(4→6, 2×2, groups=2, stride=2\): input "
                                                   r"\((1|2), 5, 5, 4\), per group: Conv2d.*not an integer"):
            call()
