"""The model zoo: every architecture builds, runs forward and backward at its native input size, reports the
published parameter counts, records its construction config; CIFAR variants at 32×32×3."""

import numpy as np
import pytest

import striate as st
from striate.models import alexnet, fast, googlenet, lenet, vgg
from striate.nn import GroupedConv2d, ZeroPad2d
from striate.nn.errors import LayerError
from tests import battery

# (constructor, input shape, parameters, MACs) at the default number of classes
IMAGENET = {
    "lenet5": (lenet.lenet5, (32, 32, 1), 61_706, 416_520),
    "alexnet": (alexnet.alexnet, (227, 227, 3), 60_965_224, 724_406_816),
    "alexnet_torchvision": (lambda **kw: alexnet.alexnet(variant="torchvision", **kw), (227, 227, 3),
                            61_100_840, 714_188_480),
    "vgg11": (vgg.vgg11, (224, 224, 3), 132_863_336, 7_609_090_048),
    "vgg13": (vgg.vgg13, (224, 224, 3), 133_047_848, 11_308_466_176),
    "vgg16": (vgg.vgg16, (224, 224, 3), 138_357_544, 15_470_264_320),
    "vgg19": (vgg.vgg19, (224, 224, 3), 143_667_240, 19_632_062_464),
    "googlenet": (googlenet.googlenet, (224, 224, 3), 6_998_552, 1_582_671_872),
}
CIFAR = {
    "lenet5_cifar": (lenet.lenet5_cifar, {}, 62_006),
    "alexnet_cifar": (alexnet.alexnet_cifar, {}, 4_816_714),
    "vgg11_cifar": (vgg.vgg11_cifar, {}, 9_493_770),
    "vgg16_cifar": (vgg.vgg16_cifar, {}, 14_990_922),
    "googlenet_cifar": (googlenet.googlenet_cifar, {"width": 0.25}, 370_790),
    "fast_cifar": (fast.fast_cifar, {}, 1_166_496),
}


def forward_backward(model, x):
    """One training-mode forward and backward; checks dtype, shapes and that gradients reached layer 0."""
    model.train()
    y = model(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    dx = model.backward(np.ones_like(y) / y.size)
    assert dx.shape == x.shape and dx.dtype == np.float32
    first = next(p for p in model.parameters())
    assert np.abs(first.grad).sum() > 0
    model.zero_grad()
    model.clear_state()
    return y


@pytest.mark.parametrize("name", list(IMAGENET))
def test_imagenet_models(name):
    build, shape, params, macs = IMAGENET[name]
    model = build(rng=np.random.default_rng(0))
    assert model.num_parameters() == params
    assert model.macs((1, *shape)) == macs
    classes = 10 if name == "lenet5" else 1000
    assert model.output_shape((2, *shape)) == (2, classes)
    x = np.random.default_rng(1).standard_normal((1, *shape)).astype(np.float32)
    y = forward_backward(model, x)
    assert y.shape == (1, classes)
    cfg = model.build_config
    assert cfg["num_classes"] == classes and cfg["in_channels"] == shape[2]


def test_published_figures():
    """The issue's published totals, within the documented differences (AlexNet grouped, GoogLeNet without
    auxiliary heads)."""
    def close(value, published, tol):
        return abs(value / published - 1) < tol

    assert close(IMAGENET["alexnet"][2], 61e6, 0.01) and close(IMAGENET["alexnet"][3], 0.7e9, 0.05)
    assert close(IMAGENET["alexnet_torchvision"][2], 61e6, 0.01)
    assert close(IMAGENET["vgg16"][2], 138e6, 0.01) and close(IMAGENET["vgg16"][3], 15.5e9, 0.01)
    assert close(IMAGENET["googlenet"][2], 7e6, 0.01) and close(IMAGENET["googlenet"][3], 1.5e9, 0.06)


@pytest.mark.parametrize("name", list(CIFAR))
def test_cifar_variants(name):
    build, kw, params = CIFAR[name]
    model = build(rng=np.random.default_rng(0), **kw)
    assert model.num_parameters() == params
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    assert forward_backward(model, x).shape == (2, 10)
    cfg = model.build_config
    assert cfg["name"] == name and cfg["num_classes"] == 10 and cfg["in_channels"] == 3
    rebuilt = build(cfg["num_classes"], cfg["in_channels"], rng=np.random.default_rng(2),
                    **{k: v for k, v in cfg.items() if k not in ("name", "num_classes", "in_channels")})
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]
    from striate.models import from_config, get

    again = from_config(cfg, rng=np.random.default_rng(3))  # through the registry
    assert again.build_config == cfg and again.num_parameters() == params
    assert get(name, 10, 3, rng=np.random.default_rng(4), **kw).num_parameters() == params


def test_width_classes_channels():
    rng = np.random.default_rng(0)
    half = alexnet.alexnet_cifar(rng=rng, width=0.5)
    assert half[0].out_channels == 32 and half.num_parameters() < CIFAR["alexnet_cifar"][2] / 2
    gray = vgg.vgg11_cifar(num_classes=7, in_channels=1, rng=rng, width=0.25)
    assert gray.output_shape((3, 32, 32, 1)) == (3, 7) and gray[0].out_channels == 16
    small = alexnet.alexnet(num_classes=5, rng=rng, width=0.25)
    assert isinstance(small[4], GroupedConv2d) and small.output_shape((1, 227, 227, 3)) == (1, 5)
    # BN variants add γ and β per convolution channel
    plain, bn = vgg.vgg16(rng=rng, width=0.125, num_classes=10), vgg.vgg16_bn(rng=rng, width=0.125, num_classes=10)
    channels = sum(v // 8 for v in vgg.CONFIGS[16] if v != "M")
    assert bn.num_parameters() - plain.num_parameters() == 2 * channels
    assert bn.build_config["name"] == "vgg16_bn"


def test_fast_cifar_pools_before_normalising():
    rng = np.random.default_rng(0)
    net = fast.fast_cifar(rng=rng)
    kinds = [type(m).__name__ for m in net]
    assert kinds[3:10] == ["Conv2d", "MaxPool2d", "BatchNorm", "ReLU", "Conv2d", "BatchNorm", "ReLU"]
    assert [m.out_channels for m in net if type(m).__name__ == "Conv2d"] == [32, 64, 64, 128, 128, 256, 256]
    assert st.summary(net, (32, 32, 3)).total_macs == 85_912_064
    assert all(m.bias is None for m in net if type(m).__name__ in ("Conv2d", "Linear"))
    small = fast.fast_cifar(num_classes=5, in_channels=1, image_size=16, rng=rng, width=0.25)
    assert small.output_shape((2, 16, 16, 1)) == (2, 5) and small[0].out_channels == 8
    with pytest.raises(ValueError, match="divisible by 8"):
        fast.fast_cifar(rng=rng, image_size=28)


def test_paper_lenet_and_alexnet_choices():
    rng = np.random.default_rng(0)
    net = lenet.lenet5(rng=rng)
    kinds = [type(m).__name__ for m in net]
    assert kinds[:3] == ["Conv2d", "Tanh", "AvgPool2d"] and kinds.count("Linear") == 3
    a = alexnet.alexnet(rng=rng, width=0.125, num_classes=10)
    assert sum(type(m).__name__ == "LocalResponseNorm" for m in a) == 2
    assert [type(m).__name__ for m in a].count("GroupedConv2d") == 3
    with pytest.raises(ValueError, match="variant"):
        alexnet.alexnet(rng=rng, variant="caffe")
    with pytest.raises(ValueError, match="depth"):
        vgg.vgg(12, rng=rng)


def test_sizes_that_do_not_tile_are_named():
    rng = np.random.default_rng(0)
    with pytest.raises(LayerError, match="not an integer"):
        alexnet.alexnet(rng=rng, image_size=224, width=0.125)
    with pytest.raises(LayerError):
        googlenet.googlenet(rng=rng, image_size=200, width=0.125)


def test_googlenet_structure():
    net = googlenet.googlenet(rng=np.random.default_rng(0), width=0.125, num_classes=10)
    concats = [m for m in net if isinstance(m, st.nn.Concat)]
    assert len(concats) == 9 and all(len(c) == 4 for c in concats)
    # the spatial path of the paper: 224 → 112 → 56 → 28 → 14 → 7
    shape, sizes = (1, 224, 224, 3), []
    for m in net:
        shape = m.output_shape(shape)
        if len(shape) == 4 and shape[1] not in sizes:
            sizes.append(shape[1])
    assert sizes == [229, 112, 113, 56, 57, 28, 29, 14, 15, 7]
    assert googlenet.inception_out(googlenet.INCEPTION["5b"]) == 1024


def test_ceil_pool_equivalence(rng, torch):
    """Zero pad + exact max-pool = torch's ceil_mode pooling on non-negative (post-ReLU) input."""
    x = np.abs(rng.standard_normal((1, 112, 112, 2))).astype(np.float32)
    ours = st.nn.Sequential(ZeroPad2d(0, 1, 0, 1), st.nn.MaxPool2d(3, 2))(x)
    ref = torch.nn.functional.max_pool2d(battery.nchw(x), 3, 2, ceil_mode=True)
    np.testing.assert_array_equal(ours, battery.nhwc(ref))
