import numpy as np
import pytest

import striate as st
from striate.kernels.conv import conv2d_backward, conv2d_forward
from striate.kernels.reference import conv2d_backward_naive, conv2d_naive
from tests import battery

CASES = [  # (H, W, C, F, K, stride, pad)
    (7, 7, 3, 4, 3, 1, 1),
    (9, 9, 2, 3, 3, 2, 1),
    (8, 6, 3, 5, 1, 1, 0),
    (11, 11, 3, 2, 5, 2, 2),
    (6, 6, 4, 3, 2, 2, 0),
]


def make(rng, case=CASES[0], dtype=np.float32):
    h, w, c, f, k, s, p = case
    layer = st.nn.Conv2d(c, f, k, stride=s, padding=p, rng=rng, dtype=dtype)
    layer.bias.data[:] = rng.standard_normal(f).astype(dtype)
    x = rng.standard_normal((2, h, w, c)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("case", CASES)
def test_gradients(rng, case):
    layer, x = make(rng, case, np.float64)
    battery.gradients_ok(layer, x)


@pytest.mark.parametrize("case", CASES)
def test_fast_matches_naive(rng, case):
    layer, x = make(rng, case, np.float64)
    _, _, _, _, _, s, p = case
    y, cache = conv2d_forward(x, layer.weight.data, layer.bias.data, s, p)
    np.testing.assert_allclose(y, conv2d_naive(x, layer.weight.data, layer.bias.data, s, p), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(y.shape)
    for fast, slow in zip(conv2d_backward(dout, cache), conv2d_backward_naive(dout, x, layer.weight.data, s, p),
                          strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)


def test_chunked_equals_unchunked(rng, monkeypatch):
    import striate.kernels.conv as conv

    layer, x = make(rng, CASES[0])
    x = np.repeat(x, 5, axis=0)
    y, cache = conv2d_forward(x, layer.weight.data, layer.bias.data, 1, 1)
    grads = conv2d_backward(np.ones_like(y), cache)
    monkeypatch.setattr(conv, "COLUMN_BYTES", 1)  # one sample per chunk
    y2, cache2 = conv2d_forward(x, layer.weight.data, layer.bias.data, 1, 1)
    np.testing.assert_allclose(y, y2, rtol=1e-6, atol=1e-6)
    for a, b in zip(grads, conv2d_backward(np.ones_like(y), cache2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_matches_torch(rng, torch, case):
    layer, x = make(rng, case)
    _, _, _, _, _, s, p = case
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    tx = battery.nchw(x)
    tw = torch.tensor(battery.conv_weight_to_torch(layer.weight.data), requires_grad=True)
    tb = torch.tensor(layer.bias.data, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p)
    ty.backward(battery.nchw(dy).detach())
    np.testing.assert_allclose(y, battery.nhwc(ty), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(battery.conv_weight_to_torch(layer.weight.grad), tw.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_battery(rng):
    layer, x = make(rng)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.accumulates(layer, x)
    battery.state_dict_round_trip(lambda r: st.nn.Conv2d(3, 4, 3, padding=1, rng=r))
    battery.repr_ok(layer, "Conv2d(3→4, 3×3, pad=1)")
    assert layer.macs((2, 7, 7, 3)) == 2 * 7 * 7 * 4 * 9 * 3


def test_bad_inputs(rng):
    layer, x = make(rng)
    battery.bad_input_names_layer(layer, x[..., :1], "expected input (N, H, W, 3)", "(2, 7, 7, 1)")
    battery.bad_input_names_layer(layer, x[0], "expected input (N, H, W, 3)")
    battery.wrong_dtype_rejected(layer, x)
    battery.bad_input_names_layer(layer, x.astype(np.float64), "float64", "float32")
    strided = st.nn.Conv2d(3, 2, 3, stride=2, rng=rng)
    battery.bad_input_names_layer(strided, np.zeros((1, 8, 8, 3), np.float32), "not an integer")
    with pytest.raises(st.nn.LayerError, match="not an integer"):
        strided.output_shape((1, 8, 8, 3))


def test_backward_without_forward(rng):
    layer, _ = make(rng)
    with pytest.raises(RuntimeError, match="backward called without"):
        layer.backward(np.zeros((2, 7, 7, 4), np.float32))
    layer(make(rng)[1])
    layer.clear_state()
    with pytest.raises(RuntimeError):
        layer.backward(np.zeros((2, 7, 7, 4), np.float32))


def test_no_grad_keeps_no_cache(rng):
    layer, x = make(rng)
    with st.no_grad():
        layer(x)
    assert layer._cache is None


def test_two_threads_convolve_independently(rng):
    from concurrent.futures import ThreadPoolExecutor

    layers = [make(np.random.default_rng(s))[0] for s in (1, 2)]
    xs = [rng.standard_normal((6, 7, 7, 3)).astype(np.float32) for _ in layers]
    with st.no_grad():
        expected = [layer(x) for layer, x in zip(layers, xs, strict=True)]

    def run(i):
        with st.no_grad():
            return [layers[i](xs[i]) for _ in range(20)]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, [0, 1]))
    for i, outs in enumerate(results):
        for y in outs:
            np.testing.assert_array_equal(y, expected[i])


@pytest.mark.parametrize("kw", [dict(kernel_size=3, padding=1), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=1), dict(kernel_size=3, stride=2, rounding="floor")])
def test_a_frozen_weight_skips_its_gradient_and_keeps_dx(rng, kw):
    conv = st.nn.Conv2d(3, 4, rng=rng, **kw)
    x = rng.standard_normal((2, 11, 11, 3)).astype(np.float32)
    dy = rng.standard_normal(conv(x).shape).astype(np.float32)
    dx = conv.backward(dy)
    conv.zero_grad()
    conv.weight.requires_grad = False
    conv(x)
    np.testing.assert_array_equal(conv.backward(dy), dx)
    assert not conv.weight.grad.any() and conv.bias.grad.any()
