"""The inference graph (nn.folding): BatchNorm folded into the preceding Conv2d/Linear and bias + activation
fused into its output pass, used by Sequential in eval mode inside no_grad() and by st.nn.fold(net).
Folded results are compared with the unfolded model run in float64 (within float32 rounding)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import striate as st
from striate.kernels.conv import conv2d_forward
from striate.kernels.epilogue import bias_activation, check_activation
from striate.kernels.winograd import winograd_forward
from striate.models import registry
from striate.nn import folding

# zoo nets built small: the ImageNet-sized ones at 1/8 width on 32×32 images (AlexNet: two 227×227 images)
SMALL = {"alexnet": {"width": 0.125}, "googlenet": {"width": 0.125, "image_size": 32},
         "googlenet_cifar": {"width": 0.25},
         **{f"vgg{d}{bn}": {"width": 0.125, "image_size": 32} for d in (11, 13, 16, 19) for bn in ("", "_bn")},
         **{f"vgg{d}_cifar": {"width": 0.25} for d in (11, 13, 16, 19)}, "alexnet_cifar": {"width": 0.25},
         **{name: {"width": 0.125, "image_size": 32} for name in ("resnet18", "resnet34", "resnet50",
                                                                   "googlenet_torchvision")}}
LAYERS = [{"layer": "Conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1}, {"layer": "BatchNorm"},
          {"layer": "LeakyReLU", "negative_slope": 0.1}, {"layer": "MaxPool2d", "kernel_size": 2},
          {"layer": "Conv2d", "out_channels": 8, "kernel_size": 3}, {"layer": "Tanh"},
          {"layer": "Flatten"}, {"layer": "Linear", "out_features": 12}, {"layer": "BatchNorm"}, {"layer": "ReLU"},
          {"layer": "Linear"}]


def randomise(net, rng, negative: bool = False):
    """Non-trivial BatchNorm parameters and running statistics (γ of both signs with `negative`)."""
    for m in net.modules():
        if isinstance(m, st.nn.BatchNorm):
            c = m.num_features
            m.gamma.data[...] = rng.uniform(0.5, 1.5, c) * (np.where(rng.random(c) < 0.3, -1, 1) if negative else 1)
            m.beta.data[...] = rng.normal(0, 0.3, c)
            m.running_mean[...] = rng.normal(0, 0.3, c)
            m.running_var[...] = rng.uniform(0.3, 3.0, c)
    return net


def build(name, rng):
    kw = {"layers": LAYERS} if name == "layers" else SMALL.get(name, {})
    h, w, c = registry.native_input(name)
    h = w = kw.get("image_size", h)
    net = st.models.get(name, 10, c, rng=rng, **kw)
    return randomise(net, rng).eval(), (2 if h > 64 else 4, h, w, c)


def float64_twin(net):
    return copy.deepcopy(net).to(np.float64)


@pytest.fixture
def spy(monkeypatch):
    """Counts the fused blocks run."""
    calls = []
    run = folding.Block.__call__

    def counted(self, x):
        calls.append(self)
        return run(self, x)

    monkeypatch.setattr(folding.Block, "__call__", counted)
    return calls


def close(got, want64, unfolded):
    """|got − y64| within a few times the unfolded float32 model's own error (both: float32 rounding)."""
    scale = float(np.abs(want64).max())
    own = float(np.abs(unfolded - want64).max())
    err = float(np.abs(got - want64).max())
    assert got.dtype == np.float32
    assert err <= 8 * own + 1e-6 * scale, (err, own, scale)


@pytest.mark.parametrize("name", st.models.names())
def test_every_zoo_net_folds(name, spy):
    rng = np.random.default_rng(1)
    net, shape = build(name, rng)
    x = rng.standard_normal(shape).astype(np.float32)
    unfolded = net.forward(x)  # grad enabled: layer by layer
    assert not spy
    want = float64_twin(net).forward(x.astype(np.float64))
    with st.no_grad():
        auto = net.forward(x)
        again = net.forward(x)
    assert spy, "the eval-mode forward under no_grad ran no fused block"
    assert all(m._cache is None for m in net.modules())  # the earlier forward's caches are gone, as without folding
    close(auto, want, unfolded)
    np.testing.assert_array_equal(again, auto)
    folded = st.nn.fold(net)
    assert not any(isinstance(m, st.nn.BatchNorm) for m in folded.modules())
    close(folded.forward(x), want, unfolded)
    with st.no_grad():
        close(folded.forward(x), want, unfolded)
    np.testing.assert_array_equal(net.forward(x), unfolded)  # the net itself is unchanged


def test_negative_scale_before_a_pool_is_not_folded(spy):
    """fast_cifar's conv → pool → BN: a negative γ does not commute with the max, so that block stays apart."""
    rng = np.random.default_rng(2)
    net = randomise(st.models.get("fast_cifar", 10, 3, rng=rng, width=0.25), rng, negative=True).eval()
    x = rng.standard_normal((3, 32, 32, 3)).astype(np.float32)
    unfolded, want = net.forward(x), float64_twin(net).forward(x.astype(np.float64))
    with st.no_grad():
        close(net.forward(x), want, unfolded)
    assert spy and all(b.pool is None for b in spy)
    folded = st.nn.fold(net)
    assert sum(isinstance(m, st.nn.BatchNorm) for m in folded.modules()) == 3  # the three after a pool
    close(folded.forward(x), want, unfolded)


def test_training_is_unchanged(spy):
    rng = np.random.default_rng(3)
    net = randomise(st.models.get("reference", 10, 3, rng=rng, width=0.25, dropout=0.0), rng)
    twin = copy.deepcopy(net)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    with st.no_grad():
        net.eval().forward(x)  # a folded eval pass first: it must leave nothing behind
    assert spy
    spy.clear()
    net.train()
    with st.no_grad():  # train mode under no_grad: batch statistics, layer by layer
        np.testing.assert_array_equal(net.forward(x), twin.forward(x))
    y, y2 = net.forward(x), twin.forward(x)
    np.testing.assert_array_equal(y, y2)
    net.backward(np.ones_like(y))
    twin.backward(np.ones_like(y2))
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad)
    for (_, a), (_, b) in zip(net.named_buffers(), twin.named_buffers(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not spy


def eval_pair(net, x):
    """(no_grad eval forward, layer-by-layer eval forward)."""
    net.eval()
    with st.no_grad():
        fast = net.forward(x)
    return fast, net.forward(x)


def test_refolds_after_an_optimizer_step_and_a_load(spy):
    rng = np.random.default_rng(4)
    net = randomise(st.models.get("reference", 10, 3, rng=rng, width=0.25), rng)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    before, _ = eval_pair(net, x)
    opt = st.optim.SGD(net, lr=0.1, momentum=0.9)
    for p in net.parameters():  # gradients without a forward: the weights change in place, nothing else
        p.grad[...] = rng.standard_normal(p.grad.shape).astype(np.float32)
    opt.step()
    with st.no_grad():
        after = net.forward(x)
    unfolded = net.forward(x)
    want = float64_twin(net).forward(x.astype(np.float64))
    close(after, want, unfolded)
    assert np.abs(after - before).max() > 1e-3
    other = randomise(st.models.get("reference", 10, 3, rng=rng, width=0.25), rng)
    net.load_state_dict(other.state_dict())
    for m in net.modules():  # running statistics changed in place too
        if isinstance(m, st.nn.BatchNorm):
            m.running_var *= np.float32(1.5)
    with st.no_grad():
        loaded = net.forward(x)
    close(loaded, float64_twin(net).forward(x.astype(np.float64)), net.forward(x))


@pytest.mark.parametrize("kind", ["Conv2d", "BatchNorm", "ReLU"])
def test_hooks_are_called_and_unfold_their_block(kind, spy):
    rng = np.random.default_rng(5)
    net = randomise(st.models.get("reference", 10, 3, rng=rng, width=0.25), rng).eval()
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    unfolded = net.forward(x)
    layer = next(m for m in net.modules() if type(m).__name__ == kind)
    seen = []
    with layer.register_forward_hook(lambda m, a, y: seen.append(y.shape)), st.no_grad():
        y = net.forward(x)
    assert seen and all(b.layer is not layer and b.bn is not layer for b in spy)
    close(y, float64_twin(net).forward(x.astype(np.float64)), unfolded)


@pytest.mark.parametrize("algo", ["im2col", "winograd"])
def test_non_square_shapes(algo, spy):
    """3×5 and 3×3 kernels, stride 2, floor rounding, 20×12 images: folded equals the unfolded net."""
    rng = np.random.default_rng(6)
    net = randomise(st.nn.Sequential(
        st.nn.Conv2d(3, 8, (3, 5), stride=2, padding=1, rounding="floor", rng=rng), st.nn.BatchNorm(8),
        st.nn.ReLU(), st.nn.Conv2d(8, 16, 3, padding=1, bias=False, rng=rng), st.nn.BatchNorm(16),
        st.nn.LeakyReLU(0.2), st.nn.Conv2d(16, 16, 3, rng=rng), st.nn.MaxPool2d(2, rounding="floor"),
        st.nn.BatchNorm(16), st.nn.Tanh()), rng).eval()
    x = rng.standard_normal((3, 20, 12, 3)).astype(np.float32)
    previous = st.get_conv_algorithm()
    st.set_conv_algorithm(algo)
    try:
        unfolded = net.forward(x)
        with st.no_grad():
            y = net.forward(x)
        folded = st.nn.fold(net)
        with st.no_grad():
            z = folded.forward(x)
    finally:
        st.set_conv_algorithm(previous)
    assert len(spy) == 6 and [b.pool is not None for b in spy[:3]] == [False, False, True]
    want = float64_twin(net).forward(x.astype(np.float64))
    assert y.shape == want.shape == (3, 4, 1, 16)
    close(y, want, unfolded)
    close(z, want, unfolded)


@pytest.mark.parametrize("act", [None, ("relu", 0), ("leaky_relu", 0.1), ("tanh", 0)])
def test_conv_epilogue_equals_separate_passes(act):
    """The fused output pass is bit-identical to bias + activation applied after the convolution."""
    rng = np.random.default_rng(7)
    act = check_activation(act)
    for hw, w_shape, fn in (((21, 13), (3, 5, 4, 6), lambda x, w, b, a: conv2d_forward(x, w, b, 2, 1, a)[0]),
                            ((20, 12), (1, 1, 4, 6), lambda x, w, b, a: conv2d_forward(x, w, b, 1, 0, a)[0]),
                            ((20, 12), (3, 3, 4, 6), lambda x, w, b, a: winograd_forward(x, w, b, 1, 2, None, a)[0])):
        x = rng.standard_normal((2, *hw, 4)).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        want = fn(x, w, b, None)
        bias_activation(want, None, act)
        np.testing.assert_array_equal(fn(x, w, b, act), want)


def test_epilogue_matches_the_activation_layers():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 7)).astype(np.float32)
    for layer, act in ((st.nn.ReLU(), ("relu", 0)), (st.nn.LeakyReLU(0.3), ("leaky_relu", 0.3)),
                       (st.nn.Tanh(), ("tanh", 0))):
        y = x.copy()
        bias_activation(y, None, check_activation(act))
        np.testing.assert_array_equal(y, layer.forward(x))
    with pytest.raises(ValueError, match="slope"):
        check_activation(("leaky_relu", 2.0))
    with pytest.raises(ValueError, match="elu"):
        check_activation(("elu", 1.0))


def test_inference_paths_run_folded(spy):
    """predict/eval (train.inference, TTA flip) and dense prediction go through the folded blocks."""
    from striate.train import inference

    rng = np.random.default_rng(9)
    net = randomise(st.models.get("reference", 10, 3, rng=rng, width=0.25), rng).train()
    x = rng.standard_normal((3, 32, 32, 3)).astype(np.float32)
    inference.scores(net, x)
    assert spy and net.training
    spy.clear()
    inference.evaluate(net, st.nn.SoftmaxCrossEntropy(), (x, np.array([0, 1, 2])), tta="flip")
    assert spy
    spy.clear()
    plain = randomise(st.models.get("three_layer", 10, 3, rng=rng), rng)
    st.models.dense_predict(plain, rng.standard_normal((1, 40, 40, 3)).astype(np.float32), (32, 32, 3))
    assert spy


def test_error_names_the_layer():
    net = st.nn.Sequential(st.nn.Conv2d(3, 4, 3), st.nn.BatchNorm(4), st.nn.ReLU()).eval()
    with st.no_grad(), pytest.raises(st.nn.LayerError, match="in layer 0"):
        net.forward(np.zeros((1, 8, 8, 2), np.float32))
