"""The contract every layer in st.nn keeps at its edges: an empty batch passes (N = 0, like PyTorch), a
backward `dy` unlike the forward's output is refused with a LayerError naming the layer, and `output_shape` /
`macs` take the batch dimension, refusing a shape of the wrong rank (a per-sample shape named as such)."""

import re

import numpy as np
import pytest

import striate as st
from striate import nn
from tests import battery


def _sequential(r, d):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=r, dtype=d), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16, 5, rng=r, dtype=d))


# (id, build(rng, dtype), input shape (N = 2), BatchNorm inside: training refuses N = 0)
CASES = [
    ("conv3x3", lambda r, d: nn.Conv2d(3, 4, 3, padding=1, rng=r, dtype=d), (2, 5, 5, 3), False),
    ("conv1x1", lambda r, d: nn.Conv2d(3, 4, 1, rng=r, dtype=d), (2, 5, 5, 3), False),
    ("conv1x1_stride2", lambda r, d: nn.Conv2d(3, 4, 1, stride=2, rng=r, dtype=d), (2, 5, 5, 3), False),
    ("conv_strided", lambda r, d: nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False, rng=r, dtype=d),
     (2, 7, 7, 3), False),
    ("conv_stride2_pad0", lambda r, d: nn.Conv2d(3, 4, 2, stride=2, rng=r, dtype=d), (2, 6, 6, 3), False),
    ("patch_whitening", lambda r, d: nn.PatchWhitening(3, rng=r, dtype=d), (2, 5, 5, 3), False),
    ("scale", lambda r, d: nn.Scale(-0.5), (2, 4, 4, 3), False),
    ("linear", lambda r, d: nn.Linear(6, 4, rng=r, dtype=d), (2, 6), False),
    ("maxpool2", lambda r, d: nn.MaxPool2d(2), (2, 6, 6, 3), False),
    ("maxpool3s1", lambda r, d: nn.MaxPool2d(3, 1), (2, 6, 6, 3), False),
    ("maxpool3s2", lambda r, d: nn.MaxPool2d(3, 2), (2, 7, 7, 3), False),
    ("avgpool2", lambda r, d: nn.AvgPool2d(2), (2, 6, 6, 3), False),
    ("avgpool3s1", lambda r, d: nn.AvgPool2d(3, 1), (2, 6, 6, 3), False),
    ("global_avg", lambda r, d: nn.GlobalAvgPool2d(), (2, 4, 5, 3), False),
    ("fractional", lambda r, d: nn.FractionalMaxPool2d(0.7, rng=r), (2, 8, 8, 3), False),
    ("relu", lambda r, d: nn.ReLU(), (2, 4, 4, 3), False),
    ("leaky_relu", lambda r, d: nn.LeakyReLU(0.1), (2, 5), False),
    ("elu", lambda r, d: nn.ELU(), (2, 5), False),
    ("sigmoid", lambda r, d: nn.Sigmoid(), (2, 5), False),
    ("tanh", lambda r, d: nn.Tanh(), (2, 4, 4, 3), False),
    ("gelu", lambda r, d: nn.GELU(), (2, 4, 4, 3), False),
    ("gelu_tanh", lambda r, d: nn.GELU("tanh"), (2, 5), False),
    ("prelu_shared", lambda r, d: nn.PReLU(dtype=d), (2, 5), False),
    ("prelu_channels", lambda r, d: nn.PReLU(3, dtype=d), (2, 4, 4, 3), False),
    ("maxout", lambda r, d: nn.Maxout(6, 3, pieces=3, rng=r, dtype=d), (2, 6), False),
    ("batchnorm_features", lambda r, d: nn.BatchNorm(5, dtype=d), (2, 5), True),
    ("batchnorm_images", lambda r, d: nn.BatchNorm(3, dtype=d), (2, 4, 4, 3), True),
    ("dropout", lambda r, d: nn.Dropout(0.5, rng=r), (2, 5), False),
    ("dropout2d", lambda r, d: nn.Dropout2d(0.5, rng=r), (2, 4, 4, 3), False),
    ("dropconnect", lambda r, d: nn.DropConnect(6, 4, p=0.5, rng=r, dtype=d), (2, 6), False),
    ("lrn", lambda r, d: nn.LocalResponseNorm(3), (2, 4, 4, 5), False),
    ("grouped_conv", lambda r, d: nn.GroupedConv2d(4, 6, 3, padding=1, groups=2, rng=r, dtype=d), (2, 5, 5, 4),
     False),
    ("grouped_conv_strided", lambda r, d: nn.GroupedConv2d(6, 3, 3, stride=2, groups=3, rng=r, dtype=d),
     (2, 7, 7, 6), False),
    ("zero_pad", lambda r, d: nn.ZeroPad2d(2, 3, 0, 1), (2, 4, 5, 3), False),
    ("flatten", lambda r, d: nn.Flatten(), (2, 4, 4, 3), False),
    ("channel_affine", lambda r, d: nn.ChannelAffine((2.0, -1.0, 0.5), (0.1, 0.0, -3.0)), (2, 4, 4, 3), False),
    ("sequential", _sequential, (2, 4, 4, 3), False),
    ("sequential_bn", lambda r, d: nn.Sequential(nn.Linear(6, 4, rng=r, dtype=d), nn.BatchNorm(4, dtype=d),
                                                 nn.ReLU()), (2, 6), True),
    ("concat", lambda r, d: nn.Concat(nn.Conv2d(3, 2, 1, rng=r, dtype=d),
                                      nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=r, dtype=d), nn.ReLU()),
                                      nn.AvgPool2d(1)), (2, 5, 5, 3), False),
    ("residual_stochastic", lambda r, d: nn.Residual(nn.Conv2d(3, 3, 3, padding=1, rng=r, dtype=d), survival=0.5,
                                                     rng=r), (2, 5, 5, 3), False),
    ("residual_projection", lambda r, d: nn.Residual(nn.Conv2d(3, 4, 3, padding=1, rng=r, dtype=d),
                                                     shortcut=nn.Conv2d(3, 4, 1, rng=r, dtype=d)), (2, 5, 5, 3), False),
]
IDS = [c[0] for c in CASES]
# layers taking any rank from a minimum on: for them a per-sample shape is itself a valid, smaller batch
ANY_RANK = {"relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "gelu_tanh", "prelu_shared", "prelu_channels",
            "dropout", "batchnorm_images", "lrn", "flatten",
            "channel_affine", "scale"}


def test_cases_cover_every_layer():
    layers = {obj for name in nn.__all__ if isinstance(obj := getattr(nn, name), type)
              and issubclass(obj, nn.Module) and obj is not nn.Module}
    covered = {type(m) for _, build, _, _ in CASES for m in build(np.random.default_rng(0), np.float32).modules()}
    assert layers - covered == set()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_empty_batch(rng, case, dtype):
    _, build, shape, has_batchnorm = case
    battery.empty_batch_ok(build(rng, dtype), rng.standard_normal(shape).astype(dtype), train_raises=has_batchnorm)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_wrong_dy_rejected(rng, case):
    _, build, shape, _ = case
    battery.wrong_dy_rejected(build(rng, np.float32), rng.standard_normal(shape).astype(np.float32))


def test_wrong_dy_message_names_layer_and_shapes(rng):
    layer = nn.Conv2d(3, 16, 3, padding=1, rng=rng)
    layer(np.zeros((8, 32, 32, 3), np.float32))
    with pytest.raises(nn.LayerError) as info:
        layer.backward(np.zeros((8, 32, 32, 15), np.float32))
    assert str(info.value) == ("Conv2d(3→16, 3×3, pad=1): backward expected dy (8, 32, 32, 16) "
                               "(the output of the last forward), got (8, 32, 32, 15)")
    with pytest.raises(nn.LayerError) as info:
        layer.backward(np.zeros((8, 32, 32, 16), np.float64))
    assert str(info.value) == ("Conv2d(3→16, 3×3, pad=1): backward expected dy of dtype float32 "
                               "(the output of the last forward), got float64")


def test_wrong_dy_in_a_container_names_the_child(rng):
    net = _sequential(rng, np.float32)
    y = net(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(nn.LayerError, match=r"in layer 4 \(Linear\(16→5\)\) of Sequential: Linear\(16→5\): "
                                            r"backward expected dy \(2, 5\)"):
        net.backward(np.zeros((2, 4), np.float32))
    assert net.backward(np.ones_like(y)).shape == (2, 4, 4, 3)


def test_empty_batch_through_a_training_step(rng):
    """A network trained on an empty batch: loss-free zero gradient, the optimizer step changes nothing."""
    net = _sequential(rng, np.float32)
    before = net.state_dict()
    opt = st.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    y = net(np.zeros((0, 4, 4, 3), np.float32))
    assert y.shape == (0, 5)
    net.backward(np.zeros_like(y))
    opt.step()
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shapes_take_the_batch_dimension(rng, case):
    """output_shape agrees with forward, takes any sequence of ints, and output_shape and macs refuse a shape
    of the wrong rank with a LayerError naming the layer; a per-sample shape is named as the likely mistake."""
    name, build, shape, _ = case
    layer = build(rng, np.float32)
    y = layer(rng.standard_normal(shape).astype(np.float32))
    assert layer.output_shape(shape) == y.shape == layer.output_shape([np.int64(d) for d in shape])
    assert isinstance(layer.macs(shape), int) and layer.macs(shape) >= 0
    per_sample = shape[1:]
    for method in (layer.output_shape, layer.macs):
        for bad in [(), 7, (2.5,) + shape[1:]]:
            with pytest.raises(nn.LayerError, match=type(layer).__name__):
                method(bad)
        if name in ANY_RANK:
            method(per_sample)
            continue
        with pytest.raises(nn.LayerError) as info:
            method(per_sample)
        message = str(info.value)
        assert type(layer).__name__ in message and "output_shape and macs take the batch dimension" in message
        assert message.endswith(f"got {per_sample} — a per-sample shape? use {(1, *per_sample)}"), message


def test_per_sample_shape_message(rng):
    layer = nn.Conv2d(3, 16, 3, rng=rng)
    with pytest.raises(nn.LayerError) as info:
        layer.output_shape((32, 32, 3))
    assert str(info.value) == ("Conv2d(3→16, 3×3): output_shape and macs take the batch dimension, (N, H, W, 3); "
                               "got (32, 32, 3) — a per-sample shape? use (1, 32, 32, 3)")
    # a shape that is not one axis short, or whose channels do not fit, gets the plain expected-input error
    for bad in [(2, 32, 32, 3, 1), (32, 32, 1), (2, 32, 32, 1)]:
        with pytest.raises(nn.LayerError, match=rf"^Conv2d\(3→16, 3×3\): expected input \(N, H, W, 3\), "
                                                rf"got {re.escape(str(bad))}$"):
            layer.macs(bad)
    net = _sequential(rng, np.float32)
    with pytest.raises(nn.LayerError, match=r"^in layer 0 \(Conv2d\(3→4, 3×3, pad=1\)\) of Sequential: .* "
                                            r"a per-sample shape\? use \(1, 4, 4, 3\)$"):
        net.output_shape((4, 4, 3))
    with pytest.raises(nn.LayerError, match=r"take a shape, a tuple of ints with the batch dimension first"):
        nn.Linear(6, 4, rng=rng).output_shape((2, 6.0))
    assert net.output_shape((1, 4, 4, 3)) == (1, 5) and st.summary(net, (4, 4, 3)).output_shape == (1, 5)


def test_residual_output_shape_checks_the_shortcut(rng):
    """output_shape refuses what forward refuses: a body that changes the shape of an identity shortcut."""
    res = nn.Residual(nn.Conv2d(3, 4, 3, padding=1, rng=rng))
    with pytest.raises(nn.LayerError, match="add a projection shortcut"):
        res.output_shape((2, 5, 5, 3))
    with pytest.raises(nn.LayerError, match="add a projection shortcut"):
        res(np.zeros((2, 5, 5, 3), np.float32))
