import numpy as np
import pytest

import striate as st
from striate.kernels.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    fractional_boundaries,
    max_pool2d_backward,
    max_pool2d_forward,
    max_pool2d_switches,
)
from striate.kernels.reference import (
    avg_pool2d_backward_naive,
    avg_pool2d_naive,
    fractional_max_pool2d_naive,
    max_pool2d_backward_naive,
    max_pool2d_naive,
)
from striate.nn.errors import LayerError
from striate.nn.pool import AvgPool2d, FractionalMaxPool2d, GlobalAvgPool2d, MaxPool2d
from tests import battery

CASES = [  # (H, W, C, kernel, stride) — tiling (fast reshape path) and strided/overlapping (general path)
    (8, 8, 3, 2, None),
    (6, 9, 2, (2, 3), None),
    (9, 9, 2, 3, 3),
    (7, 7, 2, 3, 2),
    (5, 6, 3, (3, 2), (1, 2)),
    (8, 8, 2, 3, 1),  # GoogLeNet's pool-projection window (after 1-pixel zero padding)
]


def _pairs(k, s):
    kh, kw = (k, k) if isinstance(k, int) else k
    s = (kh, kw) if s is None else s
    sh, sw = (s, s) if isinstance(s, int) else s
    return kh, kw, sh, sw


def _input(rng, case, n=2, dtype=np.float32):
    h, w, c, _, _ = case
    return rng.standard_normal((n, h, w, c)).astype(dtype)


def _torch_pool(torch, fn, x, dy, kh, kw, sh, sw):
    tx = battery.nchw(x)
    ty = fn(tx, (kh, kw), (sh, sw))
    ty.backward(battery.nchw(dy).detach())
    return battery.nhwc(ty), battery.nhwc(tx.grad)


# ----- MaxPool2d ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_max_gradients(rng, case):
    # random normal floats: no ties, so the max is differentiable at every checked point
    battery.gradients_ok(MaxPool2d(case[3], case[4]), _input(rng, case, dtype=np.float64))


@pytest.mark.parametrize("case", CASES)
def test_max_fast_matches_naive(rng, case):
    x = _input(rng, case, n=3, dtype=np.float64)
    kh, kw, sh, sw = _pairs(case[3], case[4])
    y, cache = max_pool2d_forward(x, (kh, kw), (sh, sw))
    ref, arg = max_pool2d_naive(x, kh, kw, sh, sw)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(max_pool2d_switches(cache), arg)  # the switches are the row-major argmax
    dout = rng.standard_normal(y.shape)
    np.testing.assert_allclose(max_pool2d_backward(dout, cache),
                               max_pool2d_backward_naive(dout, x, kh, kw, sh, sw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_max_matches_torch(rng, torch, case):
    layer = MaxPool2d(case[3], case[4])
    x = _input(rng, case)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    ty, tdx = _torch_pool(torch, torch.nn.functional.max_pool2d, x, dy, *_pairs(case[3], case[4]))
    assert y.shape == ty.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_allclose(dx, tdx, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5]])
def test_max_ties_route_to_first_maximum(rng, case):
    kh, kw, sh, sw = _pairs(case[3], case[4])
    x = rng.integers(0, 3, size=(2, *case[:3])).astype(np.float32)  # many ties
    x[0] = 0.0  # every window of sample 0 is an all-way tie (e.g. after ReLU)
    layer = MaxPool2d(case[3], case[4])
    y = layer(x)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, max_pool2d_backward_naive(dout, x, kh, kw, sh, sw), rtol=1e-6, atol=1e-6)
    # the gradient is routed, never duplicated: total gradient is conserved
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-4)
    if sh == kh and sw == kw:  # all-tie windows send everything to their top-left element
        np.testing.assert_array_equal(dx[0, ::kh, ::kw], dout[0])
        assert np.count_nonzero(dx[0]) == np.count_nonzero(dout[0])


def test_max_switches_are_small(rng):
    _, cache = max_pool2d_forward(rng.standard_normal((2, 8, 8, 3)).astype(np.float32), (2, 2), (2, 2))
    assert max_pool2d_switches(cache).dtype == np.uint8 and max_pool2d_switches(cache).shape == (2, 4, 4, 3)
    _, cache = max_pool2d_forward(rng.standard_normal((2, 9, 9, 3)).astype(np.float32), (3, 3), (1, 1))
    assert all(s.dtype == np.uint8 for s in cache[1])  # the separable stages: one byte per position each


def test_max_no_grad_skips_switches(rng):
    layer, x = MaxPool2d(3, 2), _input(rng, CASES[3])
    y = layer(x)
    with st.no_grad():
        np.testing.assert_array_equal(layer(x), y)
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="backward called without"):
        layer.backward(y)


def test_max_battery(rng):
    layer, x = MaxPool2d(2), _input(rng, CASES[0])
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: MaxPool2d(2))
    assert layer.state_dict() == {}
    battery.repr_ok(layer, "MaxPool2d(2×2, stride=2)")
    battery.repr_ok(MaxPool2d((3, 2), (1, 2)), "MaxPool2d(3×2, stride=(1, 2))")
    assert layer.output_shape((128, 32, 32, 64)) == (128, 16, 16, 64)
    assert layer.macs((128, 32, 32, 64)) == 0
    train_y = layer(x)
    layer.eval()
    np.testing.assert_array_equal(layer(x), train_y)  # no train/eval difference
    battery.deepcopy_independent(layer)
    strided = np.concatenate([x, x], axis=3)[..., ::2]  # a non-contiguous view: the reshape path must copy
    np.testing.assert_array_equal(layer(strided), max_pool2d_naive(np.ascontiguousarray(strided), 2, 2, 2, 2)[0])


@pytest.mark.parametrize("cls", [MaxPool2d, AvgPool2d])
def test_window_pool_bad_inputs(rng, cls):
    layer, x = cls(2), _input(rng, CASES[0])
    battery.bad_input_names_layer(layer, x[0], "expected input (N, H, W, C)", "(8, 8, 3)")
    battery.wrong_dtype_rejected(layer, x)
    message = battery.bad_input_names_layer(layer, np.zeros((1, 7, 8, 3), np.float32), "not an integer", "(7 − 2)")
    assert "(1, 7, 8, 3)" in message
    battery.bad_input_names_layer(cls(3, 2), np.zeros((1, 8, 9, 3), np.float32), "not an integer")
    battery.bad_input_names_layer(cls(5), np.zeros((1, 4, 5, 1), np.float32), "larger than the input")
    with pytest.raises(LayerError, match=f"{cls.__name__}.*not an integer"):
        layer.output_shape((1, 9, 8, 3))
    with pytest.raises(LayerError, match="not an integer"):
        layer.macs((1, 9, 8, 3))
    with pytest.raises(ValueError, match="kernel_size"):
        cls(0)


# ----- AvgPool2d / GlobalAvgPool2d ------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_avg_gradients(rng, case):
    battery.gradients_ok(AvgPool2d(case[3], case[4]), _input(rng, case, dtype=np.float64))


@pytest.mark.parametrize("case", CASES)
def test_avg_fast_matches_naive(rng, case):
    x = _input(rng, case, n=3, dtype=np.float64)
    kh, kw, sh, sw = _pairs(case[3], case[4])
    y, cache = avg_pool2d_forward(x, (kh, kw), (sh, sw))
    np.testing.assert_allclose(y, avg_pool2d_naive(x, kh, kw, sh, sw), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(y.shape)
    np.testing.assert_allclose(avg_pool2d_backward(dout, cache),
                               avg_pool2d_backward_naive(dout, x.shape, kh, kw, sh, sw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_avg_matches_torch(rng, torch, case):
    layer = AvgPool2d(case[3], case[4])
    x = _input(rng, case)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    ty, tdx = _torch_pool(torch, torch.nn.functional.avg_pool2d, x, dy, *_pairs(case[3], case[4]))
    assert y.shape == ty.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, ty, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, tdx, rtol=1e-5, atol=1e-6)


def test_avg_battery(rng):
    layer, x = AvgPool2d(3, 2), _input(rng, CASES[3])
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: AvgPool2d(2))
    battery.repr_ok(layer, "AvgPool2d(3×3, stride=2)")
    battery.repr_ok(AvgPool2d(2), "AvgPool2d(2×2, stride=2)")
    assert layer.macs(x.shape) == 0
    train_y = layer(x)
    layer.eval()
    np.testing.assert_array_equal(layer(x), train_y)


def test_global_avg(rng, torch):
    layer = GlobalAvgPool2d()
    x = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    battery.gradients_ok(layer, x.astype(np.float64))
    y = battery.output_shape_matches(layer, x)
    assert y.shape == (3, 6) and layer.output_shape((7, 2, 2, 10)) == (7, 10)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    tx = battery.nchw(x)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=1e-5, atol=1e-7)
    battery.float32_in_out(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: GlobalAvgPool2d())
    battery.repr_ok(layer, "GlobalAvgPool2d()")
    assert layer.macs(x.shape) == 0
    train_y = layer(x)
    layer.eval()
    np.testing.assert_array_equal(layer(x), train_y)
    battery.bad_input_names_layer(layer, x[0], "expected input (N, H, W, C)", "(5, 4, 6)")
    battery.wrong_dtype_rejected(layer, x)
    with pytest.raises(LayerError, match="GlobalAvgPool2d"):
        layer.output_shape((3, 6))


# ----- FractionalMaxPool2d --------------------------------------------------------------------
@pytest.mark.parametrize("n_in", [2, 5, 7, 10, 15, 22, 32])
def test_fractional_boundaries(n_in):
    for ratio in (0.51, 0.6, 1 / np.sqrt(2), 0.8, 0.95):
        n_out = int(n_in * ratio)
        if n_out < 1 or 2 * n_out < n_in:
            continue
        seen = set()
        for s in range(n_in):
            a = fractional_boundaries(n_in, n_out, s)
            steps = np.diff(a)
            assert a[0] == 0 and a[-1] == n_in and len(a) == n_out + 1
            assert set(steps.tolist()) <= {1, 2}
            assert (steps == 2).sum() == n_in - n_out
            seen.add(tuple(a))
        if n_in != n_out and 2 * n_out != n_in:  # α strictly inside (1, 2): the shift matters
            assert len(seen) > 1


def test_fractional_boundaries_match_paper_formula():
    # a_i = ⌈α(i + u)⌉ − ⌈αu⌉ for a u where no α(i + u) is an integer, written with s = ⌊n_in·u⌋
    n_in, n_out = 32, 22
    for u in (0.013, 0.37, 0.5 + 1e-3, 0.91):
        alpha = n_in / n_out
        paper = np.ceil(alpha * (np.arange(n_out + 1) + u)) - np.ceil(alpha * u)
        np.testing.assert_array_equal(fractional_boundaries(n_in, n_out, int(np.floor(n_in * u))), paper)


def _fmp(seed=0, ratio=0.7):
    return FractionalMaxPool2d(ratio, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("training", [True, False])
def test_fractional_gradients(rng, training):
    layer = _fmp().train(training)
    x = rng.standard_normal((2, 9, 7, 2))
    report = battery.gradients_ok(layer, x)
    assert report.tensors[0].checked > 50


@pytest.mark.parametrize("training", [True, False])
def test_fractional_matches_naive(rng, training):
    layer = _fmp(3).train(training)
    x = rng.standard_normal((3, 11, 10, 4))
    state = layer.rng.bit_generator.state
    y = layer(x)
    dout = rng.standard_normal(y.shape)
    dx = layer.backward(dout)
    layer.rng.bit_generator.state = state  # replay the same regions
    rows, cols = layer.boundaries(11, 10, 7, 7)
    ref, ref_backward = fractional_max_pool2d_naive(x, rows, cols)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_allclose(dx, ref_backward(dout), rtol=1e-12, atol=1e-12)


def test_fractional_ties_route_to_first_maximum(rng):
    layer = _fmp(1)
    x = np.zeros((1, 10, 10, 2), np.float32)
    y = layer(x)
    dout = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dout)
    assert np.count_nonzero(dx) == dout.size  # one element per region, never duplicated
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-5)


def test_fractional_with_ratio_near_half_is_2x2_max_pool(rng, torch):
    # ⌊8 · 0.51⌋ = 4: α = 2 exactly, every region is 2×2 whatever u is drawn
    layer, x = _fmp(5, 0.51), rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    for _ in range(3):
        y = layer(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = layer.backward(dy)
        ty, tdx = _torch_pool(torch, torch.nn.functional.max_pool2d, x, dy, 2, 2, 2, 2)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_allclose(dx, tdx, rtol=1e-6, atol=1e-6)


def test_fractional_train_random_eval_fixed(rng):
    x = rng.standard_normal((4, 16, 16, 2)).astype(np.float32)
    a, b = _fmp(7), _fmp(7)
    outs = [a(x) for _ in range(4)]
    for y in outs:  # same seed → same sequence of regions
        np.testing.assert_array_equal(y, b(x))
        assert y.shape == (4, 11, 11, 2)
    assert any(not np.array_equal(outs[0], y) for y in outs[1:])  # regions are redrawn each forward
    a.eval()
    state = a.rng.bit_generator.state
    e1, e2 = a(x), _fmp(99).eval()(x)
    np.testing.assert_array_equal(e1, e2)  # eval ignores the generator entirely
    assert a.rng.bit_generator.state == state
    rows, cols = a.boundaries(16, 16, 11, 11)
    np.testing.assert_array_equal(rows, fractional_boundaries(16, 11, 8))
    np.testing.assert_array_equal(e1, fractional_max_pool2d_naive(x, rows, cols)[0])


def test_fractional_battery(rng):
    layer = _fmp(0, (0.75, 0.6))
    x = rng.standard_normal((3, 12, 10, 4)).astype(np.float32)
    battery.float32_in_out(layer, x)
    y = battery.output_shape_matches(layer, x)
    assert y.shape == (3, 9, 6, 4)
    battery.batched_equals_per_sample(layer, x)  # eval: fixed regions
    battery.accumulates(layer.eval(), x)
    layer.train()
    battery.state_dict_round_trip(lambda r: FractionalMaxPool2d(0.7, rng=r))
    battery.repr_ok(_fmp(0, 1 / np.sqrt(2)), "FractionalMaxPool2d(output_ratio=0.707)")
    battery.repr_ok(layer, "FractionalMaxPool2d(output_ratio=(0.75, 0.6))")
    assert layer.macs(x.shape) == 0
    with st.no_grad():
        layer(x)
    assert layer._cache is None


def test_fractional_bad_inputs(rng):
    layer = _fmp()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    battery.bad_input_names_layer(layer, x[0], "expected input (N, H, W, C)", "(8, 8, 3)")
    battery.wrong_dtype_rejected(layer, x)
    battery.bad_input_names_layer(_fmp(0, 0.55), np.zeros((1, 5, 8, 1), np.float32), "below half the input 5")
    battery.bad_input_names_layer(layer, np.zeros((1, 1, 8, 1), np.float32), "below half")
    with pytest.raises(LayerError, match="FractionalMaxPool2d"):
        layer.output_shape((1, 1, 8, 1))
    for ratio in (0.5, 1.0, 1.4, (0.7, 0.3)):
        with pytest.raises(ValueError, match="output_ratio"):
            FractionalMaxPool2d(ratio)
