"""`rounding` for windows that do not tile the input: strict by default (the notes' rule, with an error that
names the way out), "floor" for Conv2d and pooling (PyTorch's default), "ceil" for pooling (PyTorch's
ceil_mode) — each equal to PyTorch forward and backward, and gradient-checked."""

import numpy as np
import pytest
import torch

import striate as st
from striate import nn
from striate.kernels.window import output_size
from striate.models.layers import layer_list
from striate.nn.errors import LayerError
from tests import battery


def _torch_nhwc(x):
    return torch.tensor(np.transpose(x, (0, 3, 1, 2)), requires_grad=True)


def test_output_size_rules():
    assert output_size(32, 3, 2, 0, "floor") == 15 and output_size(32, 3, 2, 0, "ceil") == 16
    assert output_size(7, 3, 2) == 3 == output_size(7, 3, 2, 0, "ceil")  # exact tiling: all three agree
    assert output_size(5, 2, 3, 0, "ceil") == 2  # ⌈3/3⌉ + 1 = 2: the second window starts inside
    assert output_size(4, 1, 3, 0, "ceil") == 2 and output_size(4, 2, 3, 0, "ceil") == 2
    assert output_size(6, 2, 5, 0, "ceil") == 2 and output_size(5, 1, 4, 0, "ceil") == 2
    for size, k, s in [(32, 3, 2), (9, 2, 3), (10, 3, 4), (6, 4, 3)]:  # PyTorch's own sizes
        for ceil in (False, True):
            y = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, size), k, s, ceil_mode=ceil)
            assert y.shape[-1] == output_size(size, k, s, 0, "ceil" if ceil else "floor"), (size, k, s, ceil)
    with pytest.raises(ValueError, match=r"do not tile the input \(rounding='floor' leaves the last rows out"):
        output_size(32, 3, 2)


def test_strict_default_names_the_layer_and_the_option():
    with pytest.raises(LayerError, match=r"MaxPool2d.*\(2, 32, 32, 4\).*rounding='floor'"):
        nn.MaxPool2d(3, 2)(np.zeros((2, 32, 32, 4), np.float32))
    with pytest.raises(LayerError, match=r"Conv2d.*rounding='floor'"):
        nn.Conv2d(4, 8, 3, stride=2)(np.zeros((2, 32, 32, 4), np.float32))
    with pytest.raises(ValueError, match="Conv2d: rounding must be one of strict, floor; got 'ceil'"):
        nn.Conv2d(4, 8, 3, rounding="ceil")
    with pytest.raises(ValueError, match="AvgPool2d: rounding must be one of strict, floor, ceil"):
        nn.AvgPool2d(2, rounding="up")


@pytest.mark.parametrize(("shape", "kernel", "stride", "pad"), [
    ((2, 8, 8, 3), 3, 2, 1),  # the padded input's last row unreached: a padding row
    ((2, 8, 9, 3), 3, 2, 0),  # a real row and column left out
    ((2, 9, 11, 2), 5, 3, 2),  # two rows of real input and padding
    ((1, 6, 6, 4), 3, 1, 1),  # tiles: floor changes nothing
])
def test_conv_floor_equals_pytorch(rng, shape, kernel, stride, pad):
    x = rng.standard_normal(shape).astype(np.float32)
    conv = nn.Conv2d(shape[-1], 5, kernel, stride=stride, padding=pad, rounding="floor", rng=rng)
    y = conv(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = conv.backward(dy)
    ref = torch.nn.Conv2d(shape[-1], 5, kernel, stride=stride, padding=pad)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(np.transpose(conv.weight.data, (3, 2, 0, 1))))
        ref.bias.copy_(torch.tensor(conv.bias.data))
    xt = _torch_nhwc(x)
    yt = ref(xt)
    yt.backward(torch.tensor(np.transpose(dy, (0, 3, 1, 2))))
    np.testing.assert_allclose(y, yt.detach().permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(conv.weight.grad, ref.weight.grad.permute(2, 3, 1, 0).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv.bias.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-4)
    assert conv.output_shape(shape) == y.shape and "rounding=floor" in repr(conv)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rounding", ["floor", "ceil"])
@pytest.mark.parametrize(("shape", "kernel", "stride"), [
    ((2, 32, 32, 3), 3, 2),  # the case: overlapping 3×3 stride-2 pooling on 32×32
    ((2, 7, 9, 2), 2, 2),
    ((1, 10, 8, 2), (3, 2), (4, 3)),  # gaps between windows
])
def test_pooling_rounding_equals_pytorch(rng, kind, rounding, shape, kernel, stride):
    x = rng.standard_normal(shape).astype(np.float32)
    layer = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(kernel, stride, rounding=rounding)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    xt = _torch_nhwc(x)
    f = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    yt = f(xt, kernel, stride, ceil_mode=rounding == "ceil")
    yt.backward(torch.tensor(np.transpose(dy, (0, 3, 1, 2))))
    np.testing.assert_allclose(y, yt.detach().permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)
    assert layer.output_shape(shape) == y.shape and dx.shape == x.shape


@pytest.mark.parametrize("make", [
    lambda r: nn.Conv2d(2, 3, 3, stride=2, padding=1, rounding="floor", rng=r, dtype=np.float64),
    lambda r: nn.MaxPool2d(3, 2, rounding="ceil"),
    lambda r: nn.AvgPool2d(3, 2, rounding="ceil"),
    lambda r: nn.AvgPool2d(3, 2, rounding="floor"),
])
def test_rounding_gradients(rng, make):
    layer = make(rng)
    x = rng.standard_normal((2, 6, 7, 2))
    assert battery.gradients_ok(layer, x)


def test_rounding_in_a_layer_list_and_no_grad(rng):
    net = layer_list(10, 3, 32, rng=rng, layers=[
        {"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "rounding": "floor"},
        {"layer": "MaxPool2d", "kernel_size": 3, "stride": 2, "rounding": "ceil"},
        {"layer": "Flatten"}, {"layer": "Linear"}])
    assert net[0].output_shape((1, 32, 32, 3)) == (1, 15, 15, 4) and net[1].output_shape((1, 15, 15, 4)) == (1, 7, 7, 4)
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    with st.no_grad():
        assert net(x).shape == (2, 10)
