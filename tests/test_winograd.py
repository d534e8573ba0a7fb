import numpy as np
import pytest

import striate as st
from striate.kernels import parallel
from striate.kernels import winograd as wg
from striate.kernels.conv import conv2d_backward, conv2d_forward
from striate.kernels.reference import conv2d_backward_naive, conv2d_naive
from striate.kernels.winograd import (
    choose,
    winograd_backward,
    winograd_forward,
    winograd_input_grad,
    winograd_weight_grad,
)
from striate.kernels.winograd_transforms import MATRICES, filter_transform, filter_transform_transposed
from tests import battery

SHAPES = [  # (N, H, W, C, F, pad): ragged edge tiles (odd and unequal sizes), pad 0 and 1, C or F = 1, N = 1
    (2, 7, 9, 3, 4, 1),
    (1, 8, 8, 5, 3, 0),
    (3, 5, 6, 1, 2, 1),
    (2, 11, 4, 2, 1, 0),
    (1, 3, 3, 2, 2, 0),
    (2, 13, 10, 4, 6, 1),
]
M = [2, 4]


def data(rng, shape, dtype=np.float64):
    n, h, w, c, f, pad = shape
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    wt = rng.standard_normal((3, 3, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    dy = rng.standard_normal((n, h + 2 * pad - 2, w + 2 * pad - 2, f)).astype(dtype)
    return x, wt, b, dy


def rel_err(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("m", M)
def test_matrices_compute_a_1d_correlation(rng, m):
    at, g, bt = MATRICES[m]
    d, k = rng.standard_normal(m + 2), rng.standard_normal(3)
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), np.correlate(d, k, "valid"), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("m", M)
def test_filter_transforms_are_adjoint(rng, m):
    w, du = rng.standard_normal((3, 3, 4, 5)), rng.standard_normal(((m + 2) ** 2, 4, 5))
    np.testing.assert_allclose(np.vdot(filter_transform(w, m), du), np.vdot(w, filter_transform_transposed(du, m)),
                               rtol=1e-12)


@pytest.mark.parametrize("m", M)
@pytest.mark.parametrize("shape", SHAPES)
def test_float64_matches_direct_convolution(rng, m, shape):
    x, w, b, dy = data(rng, shape)
    pad = shape[5]
    y, cache = winograd_forward(x, w, b, pad, m)
    np.testing.assert_allclose(y, conv2d_naive(x, w, b, 1, pad), rtol=1e-10, atol=1e-10)
    for fast, slow in zip(winograd_backward(dy, cache), conv2d_backward_naive(dy, x, w, 1, pad), strict=True):
        assert fast.dtype == np.float64
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m", M)
@pytest.mark.parametrize("shape", SHAPES)
def test_float32_matches_im2col(rng, m, shape):
    x, w, b, dy = data(rng, shape, np.float32)
    pad = shape[5]
    y, cache = winograd_forward(x, w, b, pad, m)
    y_ref, cache_ref = conv2d_forward(x, w, b, 1, pad)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    tol = 3e-6 if m == 2 else 2e-5  # F(4×4)'s transforms amplify float32 rounding (measured 5-12× im2col's)
    assert rel_err(y, y_ref) < tol
    grads, grads_ref = winograd_backward(dy, cache), conv2d_backward(dy, cache_ref)
    for name, g, g_ref in zip(("dx", "dw", "db"), grads, grads_ref, strict=True):
        assert g.dtype == np.float32 and g.shape == g_ref.shape, name
        assert rel_err(g, g_ref) < tol, name


def test_need_dx_false_no_bias_and_strided_dout(rng):
    x, w, _, dy = data(rng, SHAPES[0])
    y, cache = winograd_forward(x, w, None, 1, 2)
    dx, dw, db = winograd_backward(np.asfortranarray(dy), cache, need_dx=False)  # any memory layout
    assert dx is None and db is None
    np.testing.assert_allclose(dw, conv2d_backward_naive(dy, x, w, 1, 1)[1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("m", M)
def test_gradcheck(rng, m):
    x, w, b, _ = data(rng, (2, 5, 6, 2, 3, 1))
    state = {}

    def of_x(inp):
        y, state["cache"] = winograd_forward(inp, w, b, 1, m)
        return y

    def of_w(weight):
        y, state["cache"] = winograd_forward(x, weight, b, 1, m)
        return y

    report = st.gradcheck(of_x, x, backward=lambda dy: winograd_backward(dy, state["cache"])[0])
    assert report.ok, str(report)
    report = st.gradcheck(of_w, w, backward=lambda dy: winograd_backward(dy, state["cache"])[1])
    assert report.ok, str(report)


@pytest.mark.parametrize("m", M)
def test_chunks_and_row_bands_agree(rng, monkeypatch, m):
    x, w, b, dy = data(rng, (3, 14, 9, 3, 4, 1), np.float32)
    y, cache = winograd_forward(x, w, b, 1, m)
    grads = winograd_backward(dy, cache)
    monkeypatch.setattr(wg, "CHUNK_BYTES", 1)  # every chunk one tile row of one image
    y1, cache1 = winograd_forward(x, w, b, 1, m)
    assert rel_err(y1, y) < 1e-5
    for a, b_ in zip(winograd_backward(dy, cache1), grads, strict=True):
        assert rel_err(a, b_) < 1e-5


@pytest.mark.parametrize("m", M)
@pytest.mark.parametrize("n", [5, 1])  # several images split by image, one image by tile rows
def test_thread_counts_agree_and_repeat(rng, threads, monkeypatch, m, n):
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)  # split even these small arrays
    monkeypatch.setattr(wg, "_chunk_tiles", lambda *shape: 8)  # several chunks per thread
    x, w, b, dy = data(rng, (n, 17, 12, 3, 5, 1), np.float32)
    results = []
    for t in (1, 2, 3, 2):
        threads(t)
        y, cache = winograd_forward(x, w, b, 1, m)
        results.append((y, *winograd_backward(dy, cache)))
    for got in results[1:3]:  # other chunk boundaries and partial-sum orders: equal within float32 rounding
        for a, b_ in zip(got, results[0], strict=True):
            assert rel_err(a, b_) < 1e-5
    for a, b_ in zip(results[3], results[1], strict=True):  # same thread count: bit for bit
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("m", M)
def test_matches_torch(rng, torch, m):
    x, w, b, dy = data(rng, (2, 9, 7, 3, 4, 1), np.float32)
    y, cache = winograd_forward(x, w, b, 1, m)
    dx, dw, db = winograd_backward(dy, cache)
    tx = battery.nchw(x)
    tw = torch.tensor(battery.conv_weight_to_torch(w), requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    ty.backward(battery.nchw(dy).detach())
    tol = 1e-5 if m == 2 else 5e-5
    np.testing.assert_allclose(y, battery.nhwc(ty), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=tol, atol=tol)
    np.testing.assert_allclose(battery.conv_weight_to_torch(dw), tw.grad.numpy(), rtol=tol, atol=10 * tol)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("m", M)
def test_accuracy_on_relu_activations_within_10x_of_im2col(rng, m):
    """The realistic case: ReLU outputs in, He-scaled weights; error relative to a float64 convolution."""
    x64 = np.maximum(rng.standard_normal((2, 16, 16, 64)), 0)
    w64 = rng.standard_normal((3, 3, 64, 64)) * np.sqrt(2 / (9 * 64))
    ref, _ = conv2d_forward(x64, w64, None, 1, 1)
    x, w = x64.astype(np.float32), w64.astype(np.float32)
    err_im2col = rel_err(conv2d_forward(x, w, None, 1, 1)[0], ref)
    assert rel_err(winograd_forward(x, w, None, 1, m)[0], ref) < 10 * err_im2col


def test_cached_filter_transform(rng):
    x, w, b, _ = data(rng, SHAPES[0], np.float32)
    u = filter_transform(w, 4)
    assert u.dtype == np.float32 and u.shape == (36, 3, 4)
    np.testing.assert_array_equal(winograd_forward(x, w, b, 1, 4, u=u)[0], winograd_forward(x, w, b, 1, 4)[0])
    with pytest.raises(ValueError, match=r"filter transform must be \(16, 3, 4\)"):
        winograd_forward(x, w, b, 1, 2, u=u)


def test_input_is_not_modified(rng):
    x, w, b, dy = data(rng, SHAPES[1], np.float32)
    before = [a.copy() for a in (x, w, b, dy)]
    _, cache = winograd_forward(x, w, b, 0, 4)
    winograd_backward(dy, cache)
    for a, a0 in zip((x, w, b, dy), before, strict=True):
        np.testing.assert_array_equal(a, a0)


def test_bad_arguments_are_named(rng):
    x, w, b, _ = data(rng, SHAPES[0])
    with pytest.raises(ValueError, match="m must be 2 or 4, got 3"):
        winograd_forward(x, w, b, 1, 3)
    with pytest.raises(ValueError, match="pad must be 0, 1 or 2, got 3"):
        winograd_forward(x, w, b, 3, 2)
    with pytest.raises(ValueError, match=r"weight must be \(3, 3, 3, F\)"):
        winograd_forward(x, np.zeros((5, 5, 3, 4)), b, 1, 2)
    with pytest.raises(ValueError, match="larger than the padded input 2×2"):
        winograd_forward(np.zeros((1, 2, 2, 3)), w, b, 0, 2)


def test_choose_is_a_valid_deterministic_rule():
    shapes = [(128, 32, 32, 3, 64), (128, 32, 32, 64, 64), (128, 16, 16, 128, 128), (128, 8, 8, 256, 256),
              (128, 4, 4, 256, 512), (1, 224, 224, 64, 64), (1, 2, 2, 8, 8)]
    for shape in shapes:
        assert choose(*shape) in ("im2col", "winograd2", "winograd4")
        assert choose(*shape) == choose(*shape)
    assert choose(128, 32, 32, 64, 64, kernel=5) == "im2col"
    assert choose(128, 32, 32, 64, 64, stride=2) == "im2col"
    # the measured rule: im2col for few input channels, F(4×4) only where its error stays within 10× of
    # im2col's, F(2×2) for the wider layers, im2col where the work cannot pay for the transforms
    assert choose(128, 32, 32, 3, 64) == "im2col"
    assert choose(128, 32, 32, 64, 64) == "winograd4"
    assert choose(128, 16, 16, 64, 128) == "winograd4"
    assert choose(128, 8, 8, 256, 256) == "winograd2"  # dx over 256 channels: F(2×2)
    assert choose(128, 2, 2, 512, 512) == "winograd2"
    assert choose(1, 8, 8, 256, 256) == "im2col"
    # per pass: F(4×4) where that pass's error stays within 10× (forward sums over C, dx over F)
    assert [choose(128, 8, 8, 128, 256, which=p) for p in ("fwd", "dx", "dw")] == ["winograd4", "winograd2",
                                                                                 "winograd4"]
    assert [choose(128, 8, 8, 256, 512, which=p) for p in ("fwd", "dx", "dw")] == ["winograd2", "winograd2",
                                                                                 "winograd4"]
    assert [choose(128, 32, 32, 3, 64, which=p) for p in ("fwd", "dx", "dw")] == ["im2col", "winograd4", "im2col"]
    with pytest.raises(ValueError, match="which must be"):
        choose(128, 32, 32, 64, 64, which="backward")


def test_passes_can_use_different_algorithms(rng):
    """The per-pass functions: forward by F(4×4), dx by F(2×2), dw by F(4×4) give the im2col gradients."""
    x, w, b, dy = data(rng, (2, 9, 8, 4, 3, 1))
    y, _ = winograd_forward(x, w, b, 1, 4)
    y_ref, cache = conv2d_forward(x, w, b, 1, 1)
    dx_ref, dw_ref, _ = conv2d_backward(dy, cache)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd_input_grad(dy, w, 1, 2), dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(winograd_weight_grad(x, dy, 1, 4), dw_ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="does not match input"):
        winograd_weight_grad(x, dy[:, 1:], 1, 4)


def test_choose_needs_channels_on_both_sides():
    """Narrow products lose to im2col (bench/winograd.py: 16→32, 32→16 @ 16×16; 24→64 @ 31×31's dw by F(2×2))."""
    assert choose(128, 16, 16, 16, 32) == "im2col"
    assert choose(128, 16, 16, 128, 16, which="dx") == "im2col"  # dx: a convolution of the 16 outputs
    assert choose(1024, 31, 31, 24, 64, which="fwd") == choose(1024, 31, 31, 24, 64, which="dx") == "winograd4"
    assert choose(1024, 31, 31, 24, 64, which="dw") == "im2col"  # F(4×4) is not accurate there, F(2×2) slower
    assert choose(1024, 15, 15, 64, 64, which="dw") == "winograd4"
