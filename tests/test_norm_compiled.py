"""The compiled BatchNorm kernels (`kernels/numba_norm.py`) against the NumPy path and PyTorch: training and
evaluation, forward and backward, fused with ReLU, the synchronised hooks; (N, D) features and non-square NHWC
images; striate's default thread count, one thread and an uneven three-way split (MIN_BYTES lowered so that
small test arrays are split as large ones are)."""

import numpy as np
import pytest

import striate as st
from striate.kernels import jit, parallel
from striate.kernels.norm import (
    batchnorm_backward,
    batchnorm_eval_forward,
    batchnorm_train_forward,
    combine_statistics,
)
from striate.nn.norm import BatchNorm

HAS_NUMBA = jit.importlib.util.find_spec("numba") is not None
pytestmark = pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the optional extra)")

SHAPES = [(64, 7), (5, 20, 12, 6)]  # (N, D) features, NHWC images 20×12


@pytest.fixture(params=["default", 1, 3])
def threads(request, monkeypatch):
    """Every pass split as a large one would be (uneven parts with 3 threads), then the setting restored."""
    before = parallel.num_threads()
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    if request.param != "default":
        parallel.set_num_threads(request.param)
    yield request.param
    if parallel.num_threads() != before:
        parallel.set_num_threads(before)


def data(rng, shape, offset=2.0, dtype=np.float32):
    c = shape[-1]
    return (rng.standard_normal(shape) * rng.uniform(0.5, 3, c) + rng.uniform(-offset, offset, c)).astype(dtype)


def params(rng, c, dtype=np.float32):
    return rng.uniform(0.5, 1.5, c).astype(dtype), rng.standard_normal(c).astype(dtype)


def both_paths(numba_path, fn):
    """fn() on the NumPy path, then on the compiled path."""
    results = []
    for on in (False, True):
        numba_path(on)
        results.append(fn())
    return results


def close(a, b, scale=1.0):
    """Equal within float32 rounding of sums in another order (relative to the data's scale)."""
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * scale)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_matches_numpy_path(rng, numba_path, threads, shape):
    x, dy = data(rng, shape, offset=50), rng.standard_normal(shape).astype(np.float32)
    gamma, beta = params(rng, shape[-1])

    def run():
        y, cache, mean, var = batchnorm_train_forward(x, gamma, beta, 1e-5)
        return (y, mean, var, *batchnorm_backward(dy, cache))

    ref, got = both_paths(numba_path, run)
    for a, b in zip(ref, got, strict=True):
        assert b.dtype == np.float32 and b.shape == a.shape
        close(b, a, np.abs(a).max())
    for a, b in zip(got, run(), strict=True):  # reproducible for a given thread count
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_evaluation_matches_numpy_path(rng, numba_path, threads, shape, relu):
    """The same running statistics: the output and dx are the same operations (bit-identical), dγ, dβ sums."""
    c = shape[-1]
    x, dy = data(rng, shape), rng.standard_normal(shape).astype(np.float32)
    gamma, beta = params(rng, c)
    mean, var = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)

    def run():
        y, cache = batchnorm_eval_forward(x, gamma, beta, mean, var, 1e-5, relu)
        return (y, *batchnorm_backward(dy, cache, relu))

    (y0, dx0, dg0, db0), (y1, dx1, dg1, db1) = both_paths(numba_path, run)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(dx1, dx0)
    close(dg1, dg0, np.abs(dg0).max())
    close(db1, db0, np.abs(db0).max())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("train", [True, False])
def test_fused_relu_equals_batchnorm_then_relu(rng, numba_path, threads, shape, train):
    """Sequential fuses BatchNorm + ReLU; on the compiled path too the pair equals the two layers bit for bit."""
    numba_path(True)
    x, dy = data(rng, shape), rng.standard_normal(shape).astype(np.float32)
    gamma, beta = params(rng, shape[-1])
    results = []
    for fused in (True, False):
        bn, relu = BatchNorm(shape[-1]), st.nn.ReLU()
        bn.gamma.data[:], bn.beta.data[:] = gamma, beta
        net = st.nn.Sequential(bn, relu).train(train)
        y = net(x) if fused else relu(bn(x))
        dx = net.backward(dy) if fused else bn.backward(relu.backward(dy))
        results.append((y, dx, bn.gamma.grad, bn.beta.grad, bn.running_mean, bn.running_var))
    assert (results[0][0] == 0).any() and (results[0][0] > 0).any()
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_offset_data_keep_float32_statistics(rng, numba_path, threads):
    """Data far from zero (mean 1e4, spread 1): one pass, yet the variance of a two-pass float64 computation."""
    numba_path(True)
    x = (1e4 + rng.standard_normal((4096, 3)) * rng.uniform(0.5, 2, 3)).astype(np.float32)
    x[:, 1] = np.sort(x[:, 1])  # blocks far from the overall mean
    x[::37, 2] += 30  # outliers, some at a block's first row
    _, _, mean, var = batchnorm_train_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), 1e-5)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-7)
    np.testing.assert_allclose(var, x64.var(0), rtol=1e-6)


def test_synchronised_hooks(rng, numba_path, threads):
    """`combine` and `reduce` of a synchronised BatchNorm: two halves that exchange their statistics and sums
    give the whole batch's output and dx (the compiled passes compute the parts, the hooks combine them)."""
    numba_path(True)
    shape = (8, 5, 3, 4)
    x, dy = data(rng, shape, offset=20), rng.standard_normal(shape).astype(np.float32)
    gamma, beta = params(rng, 4)
    y, cache, mean, var = batchnorm_train_forward(x, gamma, beta, 1e-5)
    dx, *_ = batchnorm_backward(dy, cache)
    halves, stats, sums, caches = (slice(0, 3), slice(3, 8)), [], [], []
    for h in halves:  # each half's own (count, mean, M2), as its rank would send them
        batchnorm_train_forward(x[h], gamma, beta, 1e-5, combine=lambda *s: stats.append(s) or s)
    assert [s[0] for s in stats] == [3 * 15, 5 * 15]
    for h in halves:
        y_h, c, m, v = batchnorm_train_forward(x[h], gamma, beta, 1e-5, combine=lambda *s: combine_statistics(stats))
        close(y_h, y[h], 5)
        close(m, mean, 20)
        close(v, var, 10)
        caches.append(c)
        batchnorm_backward(dy[h], c, reduce=lambda *s: sums.append(s) or (*s, x.size // 4))
    total = [sum(s[k].astype(np.float64) for s in sums) for k in (0, 1)]
    for h, c in zip(halves, caches, strict=True):
        dx_h, *_ = batchnorm_backward(dy[h], c, reduce=lambda *s: (*total, x.size // 4))
        close(dx_h, dx[h], np.abs(dx).max())


@pytest.mark.parametrize("shape", [(5, 20, 12, 6), (9, 12, 20, 3), (40, 5)])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_compiled_matches_torch(rng, torch, numba_path, threads, shape, momentum):
    """Output, dx, dγ, dβ per step, running statistics (PyTorch's momentum and unbiased variance), eval too."""
    numba_path(True)
    c = shape[-1]
    layer = BatchNorm(c, momentum=momentum)
    layer.gamma.data[:], layer.beta.data[:] = params(rng, c)
    ref = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(c, momentum=momentum)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.gamma.data))
        ref.bias.copy_(torch.tensor(layer.beta.data))
    nchw = (0, 3, 1, 2) if len(shape) == 4 else (0, 1)
    nhwc = (0, 2, 3, 1) if len(shape) == 4 else (0, 1)
    for step in range(4):
        if step == 3:
            layer.eval()
            ref.eval()
        x, dy = data(rng, shape, offset=5), rng.standard_normal(shape).astype(np.float32)
        layer.zero_grad()
        ref.zero_grad()
        y = layer(x)
        dx = layer.backward(dy)
        tx = torch.tensor(x).permute(*nchw).contiguous().requires_grad_(True)
        ty = ref(tx)
        ty.backward(torch.tensor(dy).permute(*nchw))
        np.testing.assert_allclose(y, ty.detach().permute(*nhwc).numpy(), rtol=1e-5, atol=2e-5)
        np.testing.assert_allclose(dx, tx.grad.permute(*nhwc).numpy(), rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(layer.gamma.grad, ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(layer.beta.grad, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-6, atol=1e-6)


def test_float64_and_strided_inputs(rng, numba_path):
    """float64 (gradient checks) runs compiled in float64; a strided view or mixed dtypes take the NumPy path."""
    numba_path(True)
    x = data(rng, (6, 5, 3, 4), dtype=np.float64)
    gamma, beta = params(rng, 4, np.float64)
    y, _, mean, var = batchnorm_train_forward(x, gamma, beta, 1e-5)
    assert y.dtype == np.float64
    x2 = x.reshape(-1, 4)
    np.testing.assert_allclose(mean, x2.mean(0), rtol=1e-13)
    np.testing.assert_allclose(var, x2.var(0), rtol=1e-12)
    np.testing.assert_allclose(y.reshape(-1, 4), (x2 - x2.mean(0)) / np.sqrt(x2.var(0) + 1e-5) * gamma + beta,
                               rtol=1e-12, atol=1e-12)
    wide = data(rng, (6, 5, 3, 8))
    strided = wide[..., ::2]
    g32, b32 = gamma.astype(np.float32), beta.astype(np.float32)
    for xs, g in [(strided, g32), (strided.copy(), g32), (strided.copy(), gamma)]:
        ys, *_ = batchnorm_train_forward(xs, g, b32, 1e-5)
        numba_path(False)
        yn, *_ = batchnorm_train_forward(xs, g, b32, 1e-5)
        numba_path(True)
        close(ys, yn, 3)
