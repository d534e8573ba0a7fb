"""The compiled direct forward convolution (`numba_conv.direct`) that replaces im2col + GEMM
for stride-1 float32 convolutions with few input channels: against the NumPy path (within float32 rounding: each
output's sum runs in another order), the float64 reference and PyTorch, on non-square kernels and images, with
the fused bias + activation epilogue, at 1 and 2 threads."""

import numpy as np
import pytest

from striate.kernels import jit
from striate.kernels.conv import _direct_kernel, conv2d_backward, conv2d_forward
from striate.kernels.epilogue import bias_activation
from striate.kernels.reference import conv2d_naive
from tests import battery

pytestmark = pytest.mark.skipif(jit.importlib.util.find_spec("numba") is None, reason="numba is not installed")

CASES = [  # (N, H, W, C, F, (KH, KW), pad): each takes the direct kernel with numba on
    (2, 20, 12, 3, 16, (3, 3), 1),   # KW·C = 9
    (2, 12, 20, 2, 24, (3, 5), 2),   # 3×5 kernel, pad past the smaller side
    (2, 20, 12, 4, 16, (5, 3), 0),   # 5×3 kernel
    (2, 12, 20, 1, 32, (5, 3), 1),   # one channel
    (16, 36, 28, 3, 16, (3, 3), 1),  # large enough to be split between threads
]
IDS = [f"n{n}-{h}x{w}-c{c}f{f}-k{k[0]}x{k[1]}-p{p}" for n, h, w, c, f, k, p in CASES]


def data(rng, case):
    n, h, w, c, f, k, _ = case
    return (rng.standard_normal((n, h, w, c)).astype(np.float32), rng.standard_normal((*k, c, f)).astype(np.float32),
            rng.standard_normal(f).astype(np.float32))


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_direct_matches_numpy_reference_and_torch(rng, torch, numba_path, threads, case, n_threads):
    threads(n_threads)
    x, w, b = data(rng, case)
    pad = case[-1]
    numba_path(True)
    assert _direct_kernel(x, w, 1) is not None
    y, cache = conv2d_forward(x, w, b, 1, pad)
    numba_path(False)
    y_np, _ = conv2d_forward(x, w, b, 1, pad)
    np.testing.assert_allclose(y, y_np, rtol=1e-5, atol=1e-5)
    ref = conv2d_naive(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, pad)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    tw = torch.tensor(battery.conv_weight_to_torch(w))
    ty = torch.nn.functional.conv2d(battery.nchw(x), tw, torch.tensor(b), padding=pad)
    np.testing.assert_allclose(y, battery.nhwc(ty), rtol=1e-4, atol=1e-4)
    dx, dw, db = conv2d_backward(np.ones_like(y), cache)  # the cache is the im2col path's: backward unchanged
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape


@pytest.mark.parametrize("act", [("relu", 0.0), ("leaky_relu", 0.1), ("tanh", 0.0)])
@pytest.mark.parametrize("case", CASES[1:3], ids=IDS[1:3])
def test_direct_applies_the_epilogue(rng, numba_path, case, act):
    x, w, b = data(rng, case)
    numba_path(True)
    fused, _ = conv2d_forward(x, w, b, 1, case[-1], act=act)
    plain, _ = conv2d_forward(x, w, None, 1, case[-1])
    bias_activation(plain, b, act)
    assert np.array_equal(fused, plain)


def test_direct_only_where_measured_faster(numba_path):
    numba_path(True)
    x3, x8 = np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 8, 8, 8), np.float32)
    assert _direct_kernel(x3, np.zeros((3, 3, 3, 32), np.float32), 1) is not None
    assert _direct_kernel(x3, np.zeros((3, 3, 3, 32), np.float32), 2) is None        # strided
    assert _direct_kernel(x3, np.zeros((3, 3, 3, 8), np.float32), 1) is None         # F = 8 stays scalar
    assert _direct_kernel(x3, np.zeros((5, 5, 3, 32), np.float32), 1) is None        # KW·C = 15
    assert _direct_kernel(x8, np.zeros((3, 3, 8, 64), np.float32), 1) is None        # KW·C = 24
    assert _direct_kernel(x3.astype(np.float64), np.zeros((3, 3, 3, 32)), 1) is None  # float32 only
    assert _direct_kernel(x3[..., :1], np.zeros((5, 5, 1, 6), np.float32), 1) is None  # F = 6
    assert _direct_kernel(x3[..., :1], np.zeros((1, 1, 1, 16), np.float32), 1) is None  # 1×1: a plain GEMM
    numba_path(False)
    assert _direct_kernel(x3, np.zeros((3, 3, 3, 32), np.float32), 1) is None
