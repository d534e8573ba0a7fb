"""Convolutions whose kernel, image or output is not square (a mutation that swapped a kernel's height and width
went unnoticed before): every algorithm that can compute the shape — im2col with the NumPy and the compiled
col2im, Winograd on non-square images — forward and both gradients, against `kernels/reference.py`,
PyTorch and a float64 gradient check.

Conv2d takes one int stride and one int padding (square), so the non-square cases are kernels (3×5, 5×3,
1×3), images (20×12, 12×20) and the outputs they give; strides 1 and 2."""

import numpy as np
import pytest

import striate as st
from striate.kernels import jit
from striate.kernels.conv import (
    _input_grad_col2im,
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv2d_input_grad,
    im2col,
    pad_nhwc,
)
from striate.kernels.reference import conv2d_backward_naive, conv2d_naive
from tests import battery

HAS_NUMBA = jit.importlib.util.find_spec("numba") is not None
NUMBA = [False, True] if HAS_NUMBA else [False]

CASES = [  # (H, W, C, F, (KH, KW), stride, pad)
    (20, 12, 2, 7, (3, 5), 1, 1),   # 2·C < F ≤ 4·C: dx by GEMM + col2im with numba, by the full correlation without
    (12, 20, 1, 6, (5, 3), 1, 2),   # few channels, F > 2·C: dx by GEMM + col2im
    (21, 13, 3, 4, (3, 5), 2, 1),   # strided: dx and dw share the column matrices
    (20, 12, 2, 5, (2, 4), 2, 1),
    (20, 12, 2, 5, (3, 5), 1, 3),   # padding past the smaller kernel side: conv2d_backward
    (9, 14, 3, 2, (1, 3), 1, 0),
    (20, 12, 3, 4, (3, 3), 1, 1),   # Winograd applies
    (12, 20, 2, 3, (3, 3), 1, 2),
]
IDS = [f"{h}x{w}-c{c}f{f}-k{k[0]}x{k[1]}-s{s}p{p}" for h, w, c, f, k, s, p in CASES]


@pytest.fixture
def algorithm():
    before = st.kernels.conv_algorithm.get_conv_algorithm()
    yield st.set_conv_algorithm
    st.set_conv_algorithm(before)


def make(rng, case, dtype=np.float64):
    h, w, c, f, k, s, p = case
    layer = st.nn.Conv2d(c, f, k, stride=s, padding=p, rng=rng, dtype=dtype)
    layer.bias.data[:] = rng.standard_normal(f).astype(dtype)
    return layer, rng.standard_normal((2, h, w, c)).astype(dtype)


def modes(case):
    _, _, _, _, k, s, p = case
    return ["im2col", "winograd2", "winograd4"] if k == (3, 3) and s == 1 and p <= 2 else ["im2col"]


@pytest.mark.parametrize("on", NUMBA)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_layer_matches_reference(rng, numba_path, algorithm, case, on):
    numba_path(on)
    for mode in modes(case):
        algorithm(mode)
        layer, x = make(rng, case)
        _, _, _, _, _, s, p = case
        y = layer(x)
        ref = conv2d_naive(x, layer.weight.data, layer.bias.data, s, p)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10, err_msg=mode)
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy)
        rdx, rdw, rdb = conv2d_backward_naive(dy, x, layer.weight.data, s, p)
        np.testing.assert_allclose(dx, rdx, rtol=1e-10, atol=1e-10, err_msg=mode)
        np.testing.assert_allclose(layer.weight.grad, rdw, rtol=1e-10, atol=1e-10, err_msg=mode)
        np.testing.assert_allclose(layer.bias.grad, rdb, rtol=1e-10, atol=1e-10, err_msg=mode)
        assert layer.algorithms["fwd"] == mode


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_float64(rng, algorithm, case):
    for mode in modes(case):
        algorithm(mode)
        layer, x = make(rng, case)
        battery.gradients_ok(layer, x)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(rng, torch, algorithm, case):
    _, _, _, _, _, s, p = case
    for mode in modes(case):
        algorithm(mode)
        layer, x = make(rng, case, np.float32)
        y = layer(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        tx = battery.nchw(x)
        tw = torch.tensor(battery.conv_weight_to_torch(layer.weight.data), requires_grad=True)
        tb = torch.tensor(layer.bias.data, requires_grad=True)
        ty = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
        ty.backward(battery.nchw(dy).detach())
        np.testing.assert_allclose(y, battery.nhwc(ty), rtol=1e-4, atol=1e-4, err_msg=mode)
        np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=1e-4, atol=1e-4, err_msg=mode)
        np.testing.assert_allclose(battery.conv_weight_to_torch(layer.weight.grad), tw.grad.numpy(),
                                   rtol=1e-4, atol=1e-4, err_msg=mode)


@pytest.mark.parametrize("case", [c for c in CASES if c[5] == 1 and c[6] <= min(c[4]) - 1], ids=str)
def test_input_grad_paths_agree(rng, case):
    """dx of a stride-1 convolution by GEMM + col2im and by the full correlation with the flipped kernel."""
    h, w, c, f, (kh, kw), _, p = case
    x = rng.standard_normal((2, h, w, c))
    wt = rng.standard_normal((kh, kw, c, f))
    dy = rng.standard_normal((2, h + 2 * p - kh + 1, w + 2 * p - kw + 1, f))
    ref = conv2d_backward_naive(dy, x, wt, 1, p)[0]
    np.testing.assert_allclose(_input_grad_col2im(dy, wt, p, x.shape), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv2d_input_grad(dy, wt, 1, p, x.shape), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the optional extra)")
@pytest.mark.parametrize(("shape", "kernel", "stride"), [
    ((2, 20, 12, 1), (3, 5), 1), ((2, 12, 20, 3), (5, 3), 2), ((3, 9, 7, 8), (2, 3), 1), ((2, 11, 11, 64), (3, 3), 2),
    ((4, 44, 36, 3), (5, 3), 1),  # large enough to be split between threads
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_compiled_col2im_is_bit_identical(rng, numba_path, threads, shape, kernel, stride, dtype, n_threads):
    threads(n_threads)
    n, hp, wp, c = shape
    kh, kw = kernel
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    dcols = rng.standard_normal((n * ho * wo, kh * kw * c)).astype(dtype)
    dcols[::3] = -0.0  # signed zeros come out as NumPy's: +0.0 where every term is −0.0
    results = []
    for on in (False, True):
        numba_path(on)
        results.append(col2im(dcols, shape, kh, kw, stride, ho, wo, out=np.full(shape, np.nan, dtype)))
    assert np.array_equal(results[0], results[1])
    assert np.array_equal(np.signbit(results[0]), np.signbit(results[1]))
    # col2im is im2col's adjoint: <im2col(x), d> = <x, col2im(d)>
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(np.vdot(im2col(x, kh, kw, stride, ho, wo), dcols), np.vdot(x, results[1]),
                               rtol=1e-5)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the optional extra)")
@pytest.mark.parametrize("case", CASES[:5], ids=IDS[:5])
def test_kernels_compiled_vs_numpy(rng, numba_path, case):
    """The im2col kernels with and without the compiled passes: forward bit-identical; gradients within float32
    rounding (with numba, few-channel dx may take GEMM + col2im instead of the full correlation)."""
    h, w, c, f, k, s, p = case
    x = rng.standard_normal((3, h, w, c)).astype(np.float32)
    wt = rng.standard_normal((*k, c, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    results = []
    for on in (False, True):
        numba_path(on)
        y, cache = conv2d_forward(x, wt, b, s, p)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        results.append((y, *conv2d_backward(dy, cache)))
    assert np.array_equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1:], results[1][1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_padding_is_applied_to_both_sides_of_each_axis(rng):
    x = rng.standard_normal((1, 5, 3, 2))
    xp = pad_nhwc(x, 1, 2)
    assert xp.shape == (1, 7, 7, 2) and np.array_equal(xp[:, 1:6, 2:5], x) and np.count_nonzero(xp) == x.size


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_frozen_kernel_skips_the_weight_gradient(rng, case):
    """A frozen kernel (a whitening layer) gets no weight gradient computed; dx and the bias gradient are the
    trainable layer's, bit for bit; and the first layer of a net (no dx wanted) computes neither."""
    layer, x = make(rng, case)
    frozen, _ = make(np.random.default_rng(0), case)
    frozen.weight.data[:], frozen.bias.data[:] = layer.weight.data, layer.bias.data
    frozen.weight.requires_grad = False
    dy = rng.standard_normal(layer(x).shape)
    frozen(x)
    dx, fdx = layer.backward(dy), frozen.backward(dy)
    assert np.array_equal(dx, fdx) and np.array_equal(layer.bias.grad, frozen.bias.grad)
    assert frozen.weight.grad is None or not frozen.weight.grad.any()
    direct = case[5] == 1 and case[6] <= min(case[4]) - 1
    assert "dw" not in frozen.algorithms or not direct
    frozen.requires_input_grad = False
    frozen.algorithms.clear()
    frozen(x)
    assert frozen.backward(dy) is None and set(frozen.algorithms) == {"fwd"}
    np.testing.assert_array_equal(frozen.bias.grad, 2 * layer.bias.grad)
