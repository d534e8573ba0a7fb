"""kernels.gemm: the products Linear runs, split over striate's threads by the larger operand."""

import numpy as np
import pytest

import striate as st
from striate.kernels import parallel
from striate.kernels.gemm import matmul, matmul_tn

# (M, K, N): a larger (rows split), b larger (columns split: Linear's weights), odd sizes
SHAPES = [(300, 64, 8), (16, 512, 300), (37, 301, 91)]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = parallel.num_threads()
    parallel.set_num_threads(request.param)
    yield request.param
    parallel.set_num_threads(before)


@pytest.fixture
def split_everything(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)  # small test arrays still take the threaded path


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matmul_matches_numpy_and_repeats(threads, split_everything, shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    bias = rng.standard_normal(n, dtype=np.float32)
    y = matmul(a, b)
    np.testing.assert_allclose(y, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)
    if threads == 1:
        np.testing.assert_array_equal(y, a @ b)
    expected = y.copy()
    expected += bias  # the bias pass is the same addition, per part
    np.testing.assert_array_equal(matmul(a, b, bias), expected)
    np.testing.assert_array_equal(matmul(a, b), y)  # the split depends only on shapes and threads


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matmul_tn_into_adds_the_same_product(threads, split_everything, shape):
    r, m, n = shape
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((r, m), dtype=np.float32), rng.standard_normal((r, n), dtype=np.float32)
    start = rng.standard_normal((m, n), dtype=np.float32)
    expected = start.copy()
    expected += matmul_tn(a, b)
    into = start.copy()
    assert matmul_tn(a, b, into=into) is into
    np.testing.assert_array_equal(into, expected)
    np.testing.assert_allclose(matmul_tn(a, b), a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_linear_gradients_accumulate_and_frozen_weights_stay_zero(threads, split_everything):
    rng = np.random.default_rng(2)
    lin = st.nn.Linear(300, 40, rng=rng)
    x, dy = rng.standard_normal((16, 300), dtype=np.float32), rng.standard_normal((16, 40), dtype=np.float32)
    lin(x)
    lin.backward(dy)
    once = lin.weight.grad.copy()
    np.testing.assert_allclose(once, x.T.astype(np.float64) @ dy, rtol=1e-4, atol=1e-3)
    lin(x)
    lin.backward(dy)
    expected = once.copy()
    expected += matmul_tn(x, dy)
    np.testing.assert_array_equal(lin.weight.grad, expected)
    lin.zero_grad()
    lin.weight.requires_grad = False
    lin(x)
    dx = lin.backward(dy)
    assert not lin.weight.grad.any() and lin.bias.grad.any()
    np.testing.assert_allclose(dx, dy.astype(np.float64) @ lin.weight.data.T, rtol=1e-4, atol=1e-3)
