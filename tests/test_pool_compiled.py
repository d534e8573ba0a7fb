"""The compiled pooling kernels (`kernels/numba_pool.py`) against the NumPy path, the naive reference and
PyTorch: max and average pooling, forward and gradients, on non-square windows, strides and images, at the
default thread count (with the batch split even for these small arrays) and at 1 thread.

Max pooling: outputs and switches are bit-identical; gradients are bit-identical to the NumPy path's offsets
backward, and within float32 rounding of its separable one (3×3 stride 1: three or more window gradients
on one element summed in another order). Average pooling: bit-identical both ways."""

import numpy as np
import pytest

from striate.kernels import jit, parallel
from striate.kernels.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_switches,
)
from striate.kernels.reference import (
    avg_pool2d_backward_naive,
    avg_pool2d_naive,
    max_pool2d_backward_naive,
    max_pool2d_naive,
)
from striate.nn.pool import AvgPool2d, MaxPool2d
from tests import battery

pytestmark = pytest.mark.skipif(jit.importlib.util.find_spec("numba") is None, reason="numba is not installed")

CASES = [  # (N, H, W, C), kernel, stride
    ((3, 8, 8, 5), (2, 2), (2, 2)),  # the zoo's pooling
    ((2, 6, 8, 40), (2, 2), (2, 2)),  # channel runs the vectorized loop covers, with a remainder
    ((2, 21, 12, 3), (3, 5), (2, 1)),  # non-square window and stride; stride 1 along the width: one run per row
    ((2, 12, 21, 7), (5, 3), (1, 2)),  # the transpose: a kh/kw or sh/sw swap changes the result
    ((2, 20, 12, 3), (2, 1), (2, 1)),
    ((2, 9, 9, 4), (3, 3), (1, 1)),  # GoogLeNet's pool projection (after its 1-pixel pad): separable in NumPy
    ((2, 6, 6, 70), (3, 3), (1, 1)),
    ((2, 9, 11, 3), (3, 3), (2, 2)),  # AlexNet's overlapping windows
    ((2, 8, 8, 2), (2, 2), (3, 3)),  # gaps between windows
    ((2, 12, 8, 3), (4, 4), (4, 4)),
    ((2, 5, 7, 2), (1, 1), (1, 1)),
]
F64 = [(*CASES[i], np.float64) for i in (2, 5)]  # float64 compiles every kernel again: two cases


@pytest.fixture(params=["default threads", "1 thread"])
def threads(request, monkeypatch):
    """The default thread count with every array split (MIN_BYTES 0), or one thread."""
    before = parallel.num_threads()
    if request.param == "1 thread":
        parallel.set_num_threads(1)
    else:
        monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    yield
    if parallel.num_threads() != before:
        parallel.set_num_threads(before)


@pytest.fixture
def paths():
    """run(fn) → (fn() on the NumPy path, fn() on the compiled path); the setting is restored after."""
    before = jit.numba_enabled()

    def run(fn):
        out = []
        for on in (False, True):
            jit.set_numba(on)
            out.append(fn())
        return out

    yield run
    jit.set_numba(before)


def _bits_equal(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


def _relu_input(rng, shape, dtype):
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)  # ReLU outputs: many tied zeros
    x[0, :2, :2] = 0.5  # and a tie of positive values
    return x


@pytest.mark.parametrize(("shape", "kernel", "stride", "dtype"), [(*case, np.float32) for case in CASES] + F64)
def test_max_compiled_equals_numpy_path(rng, paths, threads, shape, kernel, stride, dtype):
    x = _relu_input(rng, shape, dtype)
    (y0, c0), (y1, c1) = paths(lambda: max_pool2d_forward(x, kernel, stride))
    _bits_equal(y0, y1)
    np.testing.assert_array_equal(max_pool2d_switches(c0), max_pool2d_switches(c1))
    assert c1[0] == "offsets" and c1[1][0].dtype == np.uint8
    dy = rng.standard_normal(y0.shape).astype(dtype)
    d0, d1 = paths(lambda: max_pool2d_backward(dy, c1))  # the same switches: the same sums, term for term
    _bits_equal(d0, d1)
    numpy_own, _ = paths(lambda: max_pool2d_backward(dy, c0))
    if c0[0] == "offsets":
        _bits_equal(numpy_own, d1)
    else:  # the separable stages sum overlapping windows' gradients in another order
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(numpy_own, d1, rtol=tol, atol=tol)
    kh, kw, sh, sw = *kernel, *stride
    ref, arg = max_pool2d_naive(x, kh, kw, sh, sw)
    np.testing.assert_array_equal(y1, ref)
    np.testing.assert_array_equal(max_pool2d_switches(c1), arg)
    np.testing.assert_allclose(d1, max_pool2d_backward_naive(dy, x, kh, kw, sh, sw), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("shape", "kernel", "stride", "dtype"), [(*case, np.float32) for case in CASES] + F64)
def test_avg_compiled_equals_numpy_path(rng, paths, threads, shape, kernel, stride, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    (y0, c0), (y1, c1) = paths(lambda: avg_pool2d_forward(x, kernel, stride))
    _bits_equal(y0, y1)
    dy = rng.standard_normal(y0.shape).astype(dtype)
    dy[0, 0, 0] = -0.0  # a −0.0 gradient keeps its sign where each element has one window (NumPy's broadcast)
    d0, d1 = paths(lambda: avg_pool2d_backward(dy, c1))
    _bits_equal(d0, d1)
    kh, kw, sh, sw = *kernel, *stride
    np.testing.assert_allclose(y1, avg_pool2d_naive(x, kh, kw, sh, sw), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d1, avg_pool2d_backward_naive(dy, x.shape, kh, kw, sh, sw), rtol=1e-6, atol=1e-6)


def test_max_nan_and_negative_zero(paths):
    x = np.arange(2 * 6 * 9 * 3, dtype=np.float32).reshape(2, 6, 9, 3) - 100
    x[1, 0, 0, 0] = x[0, 4, 5, 2] = np.nan
    for kernel, stride in [((2, 3), (2, 3)), ((3, 3), (1, 2)), ((3, 2), (1, 1))]:
        (y0, c0), (y1, c1) = paths(lambda: max_pool2d_forward(x, kernel, stride))  # noqa: B023
        _bits_equal(y0, y1)
        assert np.isnan(y1[1, 0, 0, 0]) and np.isnan(y1).sum() == np.isnan(y0).sum() > 1
        dy = np.full(y1.shape, -2.0, np.float32)  # the unchosen elements of a tiling window get −0.0 on both paths
        d0, d1 = paths(lambda: max_pool2d_backward(dy, c1))  # noqa: B023
        _bits_equal(d0, d1)


CASES_TORCH = [  # layer arguments and an input shape: non-square, with floor/ceil rounding
    ((3, 5), (2, 1), "floor", (2, 20, 12, 3)),
    ((5, 3), (1, 2), "ceil", (2, 12, 20, 4)),
    ((2, 1), None, "strict", (2, 20, 12, 3)),
    ((3, 3), (2, 2), "ceil", (2, 13, 10, 2)),
    ((3, 3), (1, 1), "strict", (2, 10, 12, 5)),
    (2, None, "strict", (3, 8, 12, 6)),
]


@pytest.mark.parametrize("path", ["numpy", "numba"])
@pytest.mark.parametrize(("kernel", "stride", "rounding", "shape"), CASES_TORCH)
def test_layers_match_torch(rng, torch, paths, threads, path, kernel, stride, rounding, shape):
    jit.set_numba(path == "numba")
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (kh, kw) if stride is None else stride
    ceil = rounding == "ceil"
    x = rng.integers(0, 4, size=shape).astype(np.float32)  # ties everywhere: the first maximum wins in both
    for layer, fn in [(MaxPool2d(kernel, stride, rounding=rounding), torch.nn.functional.max_pool2d),
                      (AvgPool2d(kernel, stride, rounding=rounding), torch.nn.functional.avg_pool2d)]:
        y = layer(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        tx = battery.nchw(x)
        ty = fn(tx, (kh, kw), (sh, sw), ceil_mode=ceil)
        ty.backward(battery.nchw(dy).detach())
        np.testing.assert_allclose(y, battery.nhwc(ty), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [MaxPool2d((3, 2), (1, 2)), AvgPool2d((2, 3), (2, 1))])
def test_compiled_gradients(rng, paths, layer):
    x = rng.standard_normal((2, 8, 10, 3))
    jit.set_numba(True)
    battery.gradients_ok(layer, x)


def test_empty_batch_and_strided_inputs(rng, paths):
    jit.set_numba(True)
    y, cache = max_pool2d_forward(np.zeros((0, 4, 6, 3), np.float32), (2, 3), (2, 3))
    assert y.shape == (0, 2, 2, 3) and max_pool2d_backward(y, cache).shape == (0, 4, 6, 3)
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)[..., ::2]  # strided views are copied first
    (y0, c0), (y1, c1) = paths(lambda: max_pool2d_forward(x, (2, 3), (2, 3)))
    _bits_equal(y0, y1)
    dy = rng.standard_normal((2, 4, 2, 6)).astype(np.float32)[..., ::2]
    _bits_equal(*paths(lambda: max_pool2d_backward(dy, c1)))
    (a0, a_cache), (a1, _) = paths(lambda: avg_pool2d_forward(x, (3, 2), (1, 2)))
    _bits_equal(a0, a1)
    _bits_equal(*paths(lambda: avg_pool2d_backward(np.ones((2, 6, 3, 6), np.float32)[..., ::2], a_cache)))


def test_no_grad_forward_stores_no_switches(rng, paths):
    x = _relu_input(rng, (2, 9, 11, 3), np.float32)
    (y0, c0), (y1, c1) = paths(lambda: max_pool2d_forward(x, (3, 3), (2, 2), switches=False))
    assert c0 is None and c1 is None
    _bits_equal(y0, y1)
    _bits_equal(y1, max_pool2d_forward(x, (3, 3), (2, 2))[0])


@pytest.mark.parametrize(("shape", "kernel", "stride"), [((2, 21, 13, 5), (2, 3), (2, 1)), ((2, 31, 31, 9), 2, 2),
                                                          ((2, 13, 21, 3), (3, 2), (1, 2))])
def test_max_floor_in_place_equals_numpy_path(rng, paths, threads, shape, kernel, stride):
    """Floor rounding: the compiled kernels read the input in place, leaving out what no window reaches, and
    write dx of the input's shape (zeros there), bit-identical to the NumPy path's cut copies; ±0 keep their sign."""
    x = _relu_input(rng, shape, np.float32)
    layer = MaxPool2d(kernel, stride, rounding="floor")
    dy = rng.standard_normal(layer.output_shape(shape)).astype(np.float32)
    dy[:, ::2] = -0.0

    def run():
        y = layer(x)
        return y, layer.backward(dy)

    (y0, dx0), (y1, dx1) = paths(run)
    _bits_equal(y0, y1)
    _bits_equal(dx0, dx1)
    assert dx1.shape == x.shape and not dx1[:, -1].any()  # the last row: reached by no window
