import numpy as np
import pytest

import striate as st
from striate.nn import init


def test_fans():
    assert init.fans((100, 50)) == (100, 50)
    assert init.fans((3, 3, 16, 32)) == (3 * 3 * 16, 3 * 3 * 32)


@pytest.mark.parametrize("name,var", [
    ("xavier", lambda fi, fo: 1 / fi),
    ("glorot", lambda fi, fo: 2 / (fi + fo)),
    ("he", lambda fi, fo: 2 / fi),
])
def test_variances(name, var):
    rng = np.random.default_rng(0)
    shape = (5, 5, 40, 200)
    w = init.get(name)(shape, rng, np.float32)
    assert w.dtype == np.float32 and w.shape == shape
    fi, fo = init.fans(shape)
    assert w.var() == pytest.approx(var(fi, fo), rel=0.03)
    assert abs(w.mean()) < 0.01 * np.sqrt(var(fi, fo)) * 10


def test_small_constant_zero():
    rng = np.random.default_rng(0)
    w = init.normal(0.01)((300, 300), rng, np.float64)
    assert w.dtype == np.float64 and w.std() == pytest.approx(0.01, rel=0.02)
    assert not init.zeros((3, 4)).any()
    np.testing.assert_array_equal(init.constant(0.1)((2,), rng, np.float32), np.float32([0.1, 0.1]))


def test_sparse_connects_k_inputs():
    rng = np.random.default_rng(0)
    w = init.sparse(7)((50, 30), rng, np.float32)
    assert ((w != 0).sum(axis=0) == 7).all()
    conv = init.sparse(4)((3, 3, 2, 5), rng, np.float32)
    assert ((conv.reshape(-1, 5) != 0).sum(axis=0) == 4).all()
    with pytest.raises(ValueError):
        init.sparse(100)((50, 30), rng, np.float32)


def test_layers_take_init_and_default_he():
    rng = np.random.default_rng(0)
    layer = st.nn.Conv2d(64, 128, 3, rng=rng)
    assert layer.weight.data.std() == pytest.approx(np.sqrt(2 / (9 * 64)), rel=0.02)
    assert not layer.bias.data.any()
    lin = st.nn.Linear(400, 100, init=init.normal(0.01), bias_init=init.constant(0.1), rng=rng)
    assert lin.weight.data.std() == pytest.approx(0.01, rel=0.03)
    assert np.allclose(lin.bias.data, 0.1)
    with pytest.raises(ValueError, match="unknown initialiser 'kaiming'"):
        st.nn.Linear(4, 4, init="kaiming")


def test_same_seed_same_weights():
    a = st.nn.Conv2d(3, 8, 3, rng=np.random.default_rng(5))
    b = st.nn.Conv2d(3, 8, 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


@pytest.mark.parametrize(("kh", "kw", "cin", "cout"), [(3, 3, 4, 6), (2, 2, 5, 3), (1, 1, 3, 3), (3, 2, 2, 4)])
def test_dirac_is_torch_dirac_on_the_first_filters(torch, kh, kw, cin, cout):
    """airbench's `dirac_(w[:w.size(1)])`: the first min(C_in, C_out) filters torch's identity, the rest
    PyTorch's default conv init (uniform ±1/√fan_in)."""
    w = init.get("dirac")((kh, kw, cin, cout), np.random.default_rng(0), np.float32)
    assert w.dtype == np.float32 and w.shape == (kh, kw, cin, cout)
    t = torch.empty(cout, cin, kh, kw)
    torch.nn.init.dirac_(t[:cin])
    m = min(cin, cout)
    np.testing.assert_array_equal(w[..., :m], t.numpy().transpose(2, 3, 1, 0)[..., :m])
    rest = w[..., m:]
    assert np.abs(rest).max(initial=0) <= 1 / np.sqrt(kh * kw * cin) and (rest.size == 0 or rest.std() > 0)
    conv = st.nn.Conv2d(cin, cout, (kh, kw), padding=0, init="dirac", rng=np.random.default_rng(1))
    x = np.random.default_rng(2).standard_normal((1, kh + 2, kw + 2, cin)).astype(np.float32)
    y = conv(x)  # the identity filters pass their channel's centre pixel through
    np.testing.assert_array_equal(y[..., :m], x[:, kh // 2:kh // 2 + y.shape[1], kw // 2:kw // 2 + y.shape[2], :m])
    with pytest.raises(ValueError, match="dirac: initialises a convolution weight"):
        st.nn.Linear(3, 4, init="dirac")
