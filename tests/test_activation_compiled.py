"""The compiled elementwise passes (`kernels/numba_act.py`) against their NumPy paths, at the default thread count
and at one thread: activations and dropout bit-identical (signed zeros, NaN and infinities included), sigmoid's
forward and GELU within float32 rounding. Arrays are large enough (> parallel.MIN_BYTES) for the passes to split
over the threads."""

import numpy as np
import pytest

from striate.kernels import activation as K
from striate.kernels import gelu as G
from striate.kernels import jit, parallel
from striate.kernels.dropout import dropout_backward, dropout_forward

HAS_NUMBA = jit.importlib.util.find_spec("numba") is not None
pytestmark = [pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the optional extra)"),
              pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning",
                                         "ignore:overflow:RuntimeWarning")]  # NaN and inf on purpose
SPECIAL = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-40, -1e-40, 100.0, -100.0]


@pytest.fixture(params=["default", "1"])
def threads(request):
    before = parallel.num_threads()
    if request.param == "1":
        parallel.set_num_threads(1)
    yield
    parallel.set_num_threads(before)


@pytest.fixture
def both_paths():
    """paths(fn) -> (fn's result on the NumPy path, on the compiled path)."""
    before = jit.numba_enabled()

    def run(fn):
        results = []
        for on in (False, True):
            jit.set_numba(on)
            results.append(fn())
        return results

    yield run
    jit.set_numba(before)


def data(dtype, special=True, seed=3, shape=(8, 40, 20, 24)):
    """Normal values (std 3), with the special values at the start; ~600 KB in float32."""
    x = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(dtype)
    if special:
        x.reshape(-1)[:len(SPECIAL)] = SPECIAL
    return x


def grads(dtype, special=True):
    """Output gradients: other values, with the special values (or none) where data's are not."""
    d = data(dtype, special, seed=4)
    return np.roll(d, 1000) if special else d


def identical(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True), f"{np.sum(a != b)} values differ"
    assert np.array_equal(np.signbit(a), np.signbit(b)), "signed zeros differ"


CASES = {  # name → (forward(x) -> (out, cache), backward(dout, cache) -> dx)
    "relu": (K.relu_forward, K.relu_backward),
    "relu_nomask": (lambda x: K.relu_forward(x, mask=False), None),
    "leaky_relu": (lambda x: K.leaky_relu_forward(x, 0.1), K.leaky_relu_backward),
    "elu": (lambda x: K.elu_forward(x, 0.7), K.elu_backward),
    "tanh": (K.tanh_forward, K.tanh_backward),
    "gelu_tanh": (lambda x: G.gelu_forward(x, "tanh"), G.gelu_backward),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical(threads, both_paths, name, dtype):
    forward, backward = CASES[name]
    x, dout = data(dtype), grads(dtype)

    def run():
        out, cache = forward(x)
        return out, cache, (None if backward is None else backward(dout, cache))

    (y0, c0, d0), (y1, c1, d1) = both_paths(run)
    identical(y0, y1)
    if d0 is not None:
        identical(d0, d1)
    if isinstance(c0, np.ndarray) and c0.dtype == bool:
        identical(c0, c1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_within_rounding(threads, both_paths, dtype):
    """The compiled forward calls the C library's exp where NumPy has its own; backward is bit-identical given
    the same output."""
    x, dout = data(dtype), grads(dtype)
    (y0, _), (y1, c1) = both_paths(lambda: K.sigmoid_forward(x))
    np.testing.assert_allclose(y1, y0, rtol=2.5e-7 if dtype == np.float32 else 5e-16, atol=0)
    assert np.array_equal(np.isnan(y0), np.isnan(y1))
    identical(*both_paths(lambda: K.sigmoid_backward(dout, c1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_within_rounding(threads, both_paths, dtype):
    x = data(dtype, special=False)  # finite: the relative comparison below needs them
    dout = grads(dtype, special=False)

    def run():
        out, cache = G.gelu_forward(x)
        return out, G.gelu_backward(dout, cache)

    (y0, d0), (y1, d1) = both_paths(run)
    assert y1.dtype == d1.dtype == dtype
    # float32: the compiled kernel is within 6 ulp of exact, the NumPy path within 0.5 (test_gelu.py); float64:
    # the two erfc agree to ~1e-15
    tol = 6.5 * 2.0 ** -23 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y1, y0, rtol=tol, atol=0)
    # the derivative crosses 0 near x = −0.75, where only absolute differences mean anything
    np.testing.assert_allclose(d1, d0, rtol=tol, atol=(4e-7 if dtype == np.float32 else 1e-15) * np.abs(dout).max())


def test_special_values_follow_numpy(both_paths):
    """The compiled kernels keep NumPy's answers on ±0, NaN and ±inf (np.maximum's NaN, expm1's −1)."""
    x = np.array(SPECIAL, np.float32)
    for name in ("relu", "leaky_relu", "elu"):
        identical(*both_paths(lambda f=CASES[name][0]: f(x)[0]))
    y0, y1 = both_paths(lambda: G.gelu_forward(x)[0])
    np.testing.assert_array_equal(np.isnan(y0), np.isnan(y1))
    assert y0[4] == y1[4] == np.inf and np.isnan(y1[5])  # GELU(−inf) = −inf·Φ(−inf) = −inf·0, as in PyTorch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_dropout_bit_identical(threads, both_paths, dtype, p):
    x, dout = data(dtype), grads(dtype)

    def run():
        rng = np.random.default_rng(7)
        y, mask = dropout_forward(x, p, rng)
        return y, mask, dropout_backward(dout, mask), rng.random()  # the generator's stream moved alike

    (y0, m0, d0, r0), (y1, m1, d1, r1) = both_paths(run)
    identical(y0, y1)
    identical(m0, m1)
    identical(d0, d1)
    assert r0 == r1
