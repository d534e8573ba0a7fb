import numpy as np
import pytest

import striate as st
from striate.kernels.norm import batchnorm_backward, batchnorm_train_forward
from striate.nn.norm import BatchNorm
from tests import battery

SHAPES = [(8, 5), (3, 4, 5, 6)]  # (N, D) features and (N, H, W, C) images


def make(rng, shape, dtype=np.float32, momentum=0.1):
    c = shape[-1]
    layer = BatchNorm(c, momentum=momentum, dtype=dtype)
    layer.gamma.data[:] = rng.uniform(0.5, 1.5, c)
    layer.beta.data[:] = rng.standard_normal(c)
    return layer


def data(rng, shape, dtype=np.float32):
    c = shape[-1]
    return (rng.standard_normal(shape) * rng.uniform(0.5, 3, c) + rng.uniform(-2, 2, c)).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_gradients(rng, shape, mode):
    layer = make(rng, shape, np.float64)
    layer.running_mean[:] = rng.standard_normal(shape[-1])
    layer.running_var[:] = rng.uniform(0.5, 2, shape[-1])
    layer.train(mode == "train")
    battery.gradients_ok(layer, data(rng, shape, np.float64))


def staged_reference(x, gamma, beta, eps, dout):
    """The notes' computational graph, node by node (float64 oracle for the compact kernel)."""
    c = x.shape[-1]
    x2, d2 = x.reshape(-1, c), dout.reshape(-1, c)
    m = x2.shape[0]
    mu = x2.sum(0) / m
    xc = x2 - mu
    var = (xc**2).sum(0) / m
    std = np.sqrt(var + eps)
    istd = 1 / std
    xhat = xc * istd
    out = gamma * xhat + beta
    dbeta = d2.sum(0)
    dgamma = (d2 * xhat).sum(0)
    dxhat = d2 * gamma
    dxc = dxhat * istd
    distd = (dxhat * xc).sum(0)
    dstd = -distd / std**2
    dvar = dstd / (2 * std)
    dxc += 2 * xc * dvar / m
    dmu = -dxc.sum(0)
    dx = dxc + dmu / m
    return out.reshape(x.shape), dx.reshape(x.shape), dgamma, dbeta


@pytest.mark.parametrize("shape", SHAPES)
def test_compact_backward_matches_staged_graph(rng, shape):
    x = data(rng, shape, np.float64)
    gamma, beta = rng.uniform(0.5, 1.5, shape[-1]), rng.standard_normal(shape[-1])
    dout = rng.standard_normal(shape)
    y, cache, _, _ = batchnorm_train_forward(x, gamma, beta, 1e-5)
    ref = staged_reference(x, gamma, beta, 1e-5, dout)
    np.testing.assert_allclose(y, ref[0], rtol=1e-12, atol=1e-12)
    for fast, slow in zip(batchnorm_backward(dout, cache), ref[1:], strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_blockwise_equals_single_block(rng, monkeypatch, mode):
    import striate.kernels.norm as norm

    shape = (4, 5, 6, 8)
    x, dy = data(rng, shape, np.float64), rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 1.5, 8), rng.standard_normal(8)
    mean, var = rng.standard_normal(8), rng.uniform(0.5, 2, 8)

    def run():
        if mode == "train":
            y, cache, *_ = norm.batchnorm_train_forward(x, gamma, beta, 1e-5)
        else:
            y, cache = norm.batchnorm_eval_forward(x, gamma, beta, mean, var, 1e-5)
        return (y, *norm.batchnorm_backward(dy, cache))

    whole = run()
    monkeypatch.setattr(norm, "BLOCK_BYTES", 3 * 8 * 8)  # 3 rows per block, the last one partial
    for a, b in zip(whole, run(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def torch_bn(torch, layer, shape):
    c = shape[-1]
    ref = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(c, eps=layer.eps, momentum=layer.momentum)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.gamma.data))
        ref.bias.copy_(torch.tensor(layer.beta.data))
    return ref


def to_torch(torch, x):
    return torch.tensor(x, requires_grad=True) if x.ndim == 2 else battery.nchw(x)


def from_torch(t):
    return t.detach().numpy() if t.ndim == 2 else battery.nhwc(t)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_matches_torch(rng, torch, shape, momentum):
    """Outputs, dx, dγ, dβ each step; running statistics after several steps; eval output and gradients."""
    layer = make(rng, shape, momentum=momentum)
    ref = torch_bn(torch, layer, shape)
    for _ in range(4):
        x = data(rng, shape)
        y = layer(x)
        dy = rng.standard_normal(shape).astype(np.float32)
        layer.zero_grad()
        ref.zero_grad()
        dx = layer.backward(dy)
        tx = to_torch(torch, x)
        ty = ref(tx)
        ty.backward(to_torch(torch, dy).detach())
        np.testing.assert_allclose(y, from_torch(ty), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, from_torch(tx.grad), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-6, atol=1e-6)
    assert int(layer.num_batches_tracked) == int(ref.num_batches_tracked) == 4
    # eval: running statistics, and backward through the affine map
    layer.eval()
    ref.eval()
    x = data(rng, shape)
    dy = rng.standard_normal(shape).astype(np.float32)
    layer.zero_grad()
    ref.zero_grad()
    y = layer(x)
    dx = layer.backward(dy)
    tx = to_torch(torch, x)
    ty = ref(tx)
    ty.backward(to_torch(torch, dy).detach())
    np.testing.assert_allclose(y, from_torch(ty), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, from_torch(tx.grad), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_running_update_formula(rng):
    """running_var uses the unbiased batch variance; the output uses the biased one."""
    layer = BatchNorm(3, momentum=0.25)
    x = data(rng, (2, 3, 4, 3))
    y = layer(x)
    x64 = x.astype(np.float64).reshape(-1, 3)
    np.testing.assert_allclose(layer.running_mean, 0.25 * x64.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.running_var, 0.75 + 0.25 * x64.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(y.reshape(-1, 3), (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5),
                               rtol=1e-4, atol=1e-5)


def test_float32_statistics_on_offset_data(rng):
    layer = BatchNorm(32)
    x = (rng.standard_normal((64, 16, 16, 32)) * 3 + 10).astype(np.float32)
    y32 = layer(x)
    assert y32.dtype == np.float32
    y = y32.reshape(-1, 32).astype(np.float64)
    assert np.abs(y.mean(0)).max() < 1e-4
    np.testing.assert_allclose(y.std(0), 1, rtol=1e-4)


def test_train_vs_eval(rng):
    layer = make(rng, (16, 4))
    x = data(rng, (16, 4))
    y_train = layer(x)
    layer.eval()
    y_eval = layer(x)
    assert not np.allclose(y_train, y_eval, atol=1e-2)  # running stats still far from the batch's
    np.testing.assert_allclose(y_eval, (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-5)
                               * layer.gamma.data + layer.beta.data, rtol=1e-5, atol=1e-5)
    before = layer.state_dict()
    layer(data(rng, (16, 4)))  # eval never updates the running statistics
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # many train steps on one batch bring the running statistics to its mean and UNBIASED variance
    layer.train()
    for _ in range(120):
        layer(x)
    layer.eval()
    x64 = x.astype(np.float64)
    expected = (x64 - x64.mean(0)) / np.sqrt(x64.var(0, ddof=1) + 1e-5) * layer.gamma.data + layer.beta.data
    np.testing.assert_allclose(layer(x), expected, rtol=1e-3, atol=1e-3)


def test_battery(rng):
    shape = (3, 4, 5, 6)
    layer = make(rng, shape)
    x = data(rng, shape)
    for _ in range(3):
        layer(data(rng, shape))  # non-trivial running statistics
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    layer.eval()
    battery.accumulates(layer, x)
    layer.train()

    def trained(r):
        m = BatchNorm(6)
        m(data(r, shape))
        return m

    battery.state_dict_round_trip(trained)
    assert set(layer.state_dict()) == {"gamma", "beta", "running_mean", "running_var", "num_batches_tracked"}
    assert [n for n, _ in layer.named_parameters()] == ["gamma", "beta"]
    battery.repr_ok(layer, "BatchNorm(6)")
    battery.repr_ok(BatchNorm(4, eps=1e-3, momentum=None), "BatchNorm(4, eps=0.001, momentum=None)")
    assert layer.macs(shape) == int(np.prod(shape))
    layer.to(np.float64)
    assert layer.running_mean.dtype == np.float64 and layer.num_batches_tracked.dtype == np.int64
    assert layer(x.astype(np.float64)).dtype == np.float64


def test_bad_inputs(rng):
    layer = BatchNorm(16)
    battery.bad_input_names_layer(layer, np.zeros((2, 4, 4, 8), np.float32), "expected input (N, H, W, 16)",
                                  "(2, 4, 4, 8)")
    battery.bad_input_names_layer(layer, np.zeros((5, 8), np.float32), "expected input (N, 16)", "(5, 8)")
    battery.bad_input_names_layer(layer, np.zeros(16, np.float32), "(N, 16)", "(16,)")
    battery.wrong_dtype_rejected(layer, np.zeros((4, 16), np.float32))
    battery.bad_input_names_layer(layer, np.zeros((4, 16)), "float64", "float32")
    battery.bad_input_names_layer(layer, np.zeros((1, 16), np.float32), "more than one value per channel")
    assert layer(np.ones((1, 2, 2, 16), np.float32)).shape == (1, 2, 2, 16)  # M = 4 values per channel
    layer.eval()
    assert layer(np.ones((1, 16), np.float32)).shape == (1, 16)  # fine in eval
    with pytest.raises(st.nn.LayerError, match="BatchNorm"):
        layer.output_shape((2, 4, 4, 8))
    net = st.nn.Sequential(st.nn.Conv2d(3, 8, 3, rng=rng), BatchNorm(16))
    battery.bad_input_names_layer(net, np.zeros((2, 6, 6, 3), np.float32), "layer 1", "BatchNorm(16)",
                                  "expected input (N, H, W, 16)", "(2, 4, 4, 8)")
    for bad in [dict(num_features=0), dict(num_features=4, eps=0), dict(num_features=4, momentum=1.5)]:
        with pytest.raises(ValueError):
            BatchNorm(**bad)


def test_no_grad_and_clear_state(rng):
    layer = make(rng, (4, 3))
    with st.no_grad():
        layer(data(rng, (4, 3)))
    assert layer._cache is None
    assert int(layer.num_batches_tracked) == 1  # running statistics still update in training mode
    with pytest.raises(RuntimeError, match="backward called without"):
        layer.backward(np.zeros((4, 3), np.float32))


def test_frozen_scale_trains_like_torch_and_stays_one(rng, torch):
    """scale=False: γ is kept (PyTorch's `weight`) but frozen at 1 through SGD steps, unfreeze() and folding;
    β, the outputs and the running statistics follow PyTorch's BatchNorm2d with a frozen weight."""
    shape = (4, 3, 3, 5)
    layer = BatchNorm(5, eps=1e-12, momentum=0.4, scale=False)
    assert repr(layer) == "BatchNorm(5, eps=1e-12, momentum=0.4, scale=False)" and "gamma" in layer.state_dict()
    ref = torch_bn(torch, layer, shape)
    ref.weight.requires_grad_(False)
    opt = st.optim.SGD(layer, lr=0.1, momentum=0.9, weight_decay=0.01)
    topt = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        x, dy = data(rng, shape), rng.standard_normal(shape).astype(np.float32)
        layer.zero_grad()
        topt.zero_grad()
        y = layer(x)
        layer.backward(dy)
        ty = ref(to_torch(torch, x))
        ty.backward(to_torch(torch, dy).detach())
        opt.step()
        topt.step()
        np.testing.assert_allclose(y, from_torch(ty), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(layer.gamma.data, np.ones(5, np.float32))
    np.testing.assert_allclose(layer.beta.data, ref.bias.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5, atol=1e-6)
    net = st.nn.Sequential(st.nn.Conv2d(2, 5, 1, rng=rng), layer, st.nn.ReLU()).unfreeze()
    assert not layer.gamma.requires_grad and layer.beta.requires_grad
    x = data(rng, (2, 3, 3, 2))
    net.eval()
    np.testing.assert_allclose(st.nn.fold(net)(x), net(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="BatchNorm: scale must be true or false"):
        BatchNorm(3, scale="no")
