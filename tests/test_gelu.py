"""GELU (`nn.GELU`, `kernels/gelu.py`): PyTorch's two forms, accurate against math.erfc on both paths, the
float64 gradient check, PyTorch in float64, and the layer-list keyword. The float32 comparison with PyTorch,
the battery and the layer contract are in test_activation.py / test_layer_contract.py with the others."""

import math

import numpy as np
import pytest

import striate as st
from striate.kernels import gelu as G
from striate.kernels import jit
from striate.models import layers as layer_lists
from tests import battery

SQRT_HALF = math.sqrt(0.5)


@pytest.fixture(params=[False, True], ids=["numpy", "compiled"])
def path(request):
    before = jit.numba_enabled()
    jit.set_numba(request.param)
    if request.param and not jit.numba_enabled():
        pytest.skip("numba is not installed (the optional extra)")
    yield request.param
    jit.set_numba(before)


def exact(x):
    """x·Φ(x) and Φ(x) + x·φ(x) in float64 from the C library's erfc, one value at a time (the reference)."""
    v = np.asarray(x, np.float64).reshape(-1)
    y = [a * 0.5 * math.erfc(-a * SQRT_HALF) for a in v]
    dy = [0.5 * math.erfc(-a * SQRT_HALF) + a * math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi) for a in v]
    return np.reshape(y, np.shape(x)), np.reshape(dy, np.shape(x))


def ulps(y, ref):
    """|y − ref| in float32 ulps of ref (the smallest subnormal at least)."""
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    return np.abs(y - ref) / np.maximum(ulp, np.finfo(np.float32).smallest_subnormal)


def test_accurate_in_both_tails(path, torch):
    """Within a few float32 ulps everywhere, the left tail included (where 1 + erf(x/√2) would cancel): the
    NumPy path rounds a float64 value (≤ 0.5 ulp), the compiled float32 kernel stays within 6 ulp and is
    never further from it than PyTorch's float32 GELU (the largest error on each stretch of x)."""
    x = np.concatenate([np.linspace(-14.5, 6, 8001), np.linspace(-2, 2, 4001),
                        [-0.0, 0.0, 1e-30, -1e-30]]).astype(np.float32)
    y, cache = G.gelu_forward(x)
    dx = G.gelu_backward(np.ones_like(x), cache)
    ref, dref = exact(x)
    assert ulps(y, ref).max() <= (6 if path else 0.5 + 1e-6)
    ty = torch.nn.functional.gelu(torch.tensor(x)).numpy()
    for lo in np.arange(-14.5, 6, 0.5):  # the largest error in each stretch of x (1 ulp at least)
        part = (x >= lo) & (x < lo + 0.5)
        assert ulps(y, ref)[part].max() <= max(ulps(ty, ref)[part].max(), 1)
    # Φ(x) + x·φ(x) cancels (to 0 near x = −0.75): errors in ulps of the larger term, Φ(x) or x·φ(x)
    pdf_term = x * np.exp(-0.5 * x.astype(np.float64) ** 2) / math.sqrt(2 * math.pi)
    scale = np.spacing(np.maximum(np.abs(dref - pdf_term), np.abs(pdf_term)).astype(np.float32)).astype(np.float64)
    normal = np.abs(dref) > 1e-37  # below (x < −13.1), a subnormal product in the kernel: absolute terms
    assert (np.abs(dx - dref) / scale)[normal].max() <= 6
    assert np.abs(dx - dref)[~normal].max() <= 16 * np.finfo(np.float32).smallest_subnormal
    assert y[-4] == 0 and y[-3] == 0


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_matches_torch_float64(rng, torch, path, approximate):
    x = rng.uniform(-5, 5, (3, 6, 5, 4))  # |x| ≤ 5: PyTorch's 1 + erf keeps 1e-16 absolute accuracy in float64
    layer = st.nn.GELU(approximate)
    y = layer(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    ty.backward(torch.tensor(dy))
    assert y.dtype == dx.dtype == np.float64
    tol = 1e-13
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gradients_float64(rng, path, approximate):
    battery.gradients_ok(st.nn.GELU(approximate), rng.standard_normal((3, 5, 4, 2)) * 2)


def test_non_contiguous_input(rng, path):
    x = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    view, copy = x.transpose(0, 2, 1, 3), np.ascontiguousarray(x.transpose(0, 2, 1, 3))
    dy = rng.standard_normal(view.shape).astype(np.float32)
    results = []
    for inp, grad in [(view, dy[:, ::-1][:, ::-1]), (copy, dy)]:  # a strided input and a strided gradient
        layer = st.nn.GELU()
        results.append((layer(inp), layer.backward(grad)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_repr_and_bad_approximation():
    assert repr(st.nn.GELU()) == "GELU()" and repr(st.nn.GELU("tanh")) == "GELU(approximate='tanh')"
    with pytest.raises(ValueError, match="approximate must be one of 'none', 'tanh', got 'erf'"):
        st.nn.GELU("erf")


def test_layer_list_keyword(rng):
    layers = [{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"layer": "GELU", "approximate": "tanh"},
              {"layer": "Flatten"}, {"layer": "Linear"}]
    layer_lists.check(layers)
    net = layer_lists.layer_list(10, 3, 6, rng=rng, layers=layers)
    assert isinstance(net[1], st.nn.GELU) and net[1].approximate == "tanh"
    assert net(rng.standard_normal((2, 6, 6, 3)).astype(np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"model.layers\[0\].approximate = 1: expected a string"):
        layer_lists.check([{"layer": "GELU", "approximate": 1}])


def test_numpy_path_in_blocks_equals_one_pass(rng):
    """The NumPy path works in cache-sized blocks: the same values as the whole array in one pass (to 1 ulp: a
    SIMD exp may round a lane differently from its scalar remainder), across block and thread boundaries."""
    before = jit.numba_enabled()
    jit.set_numba(False)
    try:
        x = (rng.standard_normal(3 * G._BLOCK + 777) * 4).astype(np.float32)
        y, cache = G.gelu_forward(x)
        dx = G.gelu_backward(np.full_like(x, 0.5), cache)
    finally:
        jit.set_numba(before)
    v = x.astype(np.float64)
    np.testing.assert_array_max_ulp(y, (v * G._cdf(v)).astype(np.float32), maxulp=1)
    d = 0.5 * (G._cdf(v) + v * np.exp(-0.5 * v * v) / math.sqrt(2 * math.pi))
    np.testing.assert_array_max_ulp(dx, d.astype(np.float32), maxulp=1)
