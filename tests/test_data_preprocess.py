"""Preprocessing estimators: PCA / whitening recover identity covariance on correlated data, statistics come
from the training split only, float32 out, state_dict round trip (arrays + JSON config), clear errors."""

import json

import numpy as np
import pytest

from striate.data import (
    PCA,
    Compose,
    DataError,
    MeanImage,
    PerChannelMean,
    PerChannelStandardize,
    Preprocessor,
    Scale,
    Whitening,
)


def correlated(rng, n=20000, shape=(2, 3, 1), shift=0.0):
    """Gaussian samples with a strongly non-diagonal covariance, eigenvalues 1 to 400 along random axes."""
    d = int(np.prod(shape))
    fixed = np.random.default_rng(123)
    q1, _ = np.linalg.qr(fixed.standard_normal((d, d)))
    q2, _ = np.linalg.qr(fixed.standard_normal((d, d)))
    mix = q1 @ np.diag(np.linspace(1.0, 20.0, d)) @ q2
    z = rng.standard_normal((n, d))
    return (z @ mix + 3.0 + shift).reshape(n, *shape), mix.T @ mix


def cov(x):
    flat = x.reshape(len(x), -1).astype(np.float64)
    return np.cov(flat, rowvar=False)


def test_zca_whitening_gives_identity_covariance(rng):
    x, _ = correlated(rng)
    assert np.abs(cov(x) - np.diag(np.diag(cov(x)))).max() > 10  # really correlated
    zca = Whitening("zca", eps=1e-5).fit(x)
    out = zca.transform(x)
    assert out.shape == x.shape and out.dtype == np.float32  # ZCA stays in pixel space
    np.testing.assert_allclose(cov(out), np.eye(6), atol=2e-3)
    np.testing.assert_allclose(out.reshape(len(x), -1).mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(zca.matrix_, zca.matrix_.T, atol=1e-5)  # ZCA's matrix is symmetric


def test_pca_whitening_identity_and_eps_smoothing(rng):
    x, _ = correlated(rng)
    out = Whitening("pca").fit_transform(x)
    assert out.shape == (len(x), 6) and out.dtype == np.float32
    np.testing.assert_allclose(cov(out), np.eye(6), atol=2e-3)
    top = Whitening("pca", n_components=3).fit_transform(x)
    np.testing.assert_allclose(cov(top), np.eye(3), atol=2e-3)
    np.testing.assert_allclose(top, out[:, :3], atol=1e-4)
    # Large eps (the notes' smoothing) shrinks directions of small variance: variance S / (S + eps).
    eps = 10.0
    smooth = Whitening("pca", eps=eps).fit_transform(x)
    s = np.linalg.eigvalsh(cov(x))[::-1]
    np.testing.assert_allclose(np.diag(cov(smooth)), s / (s + eps), rtol=1e-3)


def test_pca_matches_svd_and_population_axes(rng):
    x, population = correlated(rng, n=40000)
    pca = PCA(3).fit(x)
    feats = pca.transform(x)
    assert feats.shape == (len(x), 3) and feats.dtype == np.float32
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(3), atol=1e-5)
    flat = x.reshape(len(x), -1)
    centred = flat - flat.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(pca.explained_variance_, sv[:3] ** 2 / (len(x) - 1), rtol=1e-4)
    np.testing.assert_allclose(np.abs(pca.components_ @ vt[:3].T), np.eye(3), atol=1e-4)
    np.testing.assert_allclose(np.var(feats, axis=0, ddof=1), pca.explained_variance_, rtol=1e-3)
    assert np.all(np.diff(pca.explained_variance_) < 0)
    # The sample axes approach the population ones (eigenvectors of mix^T mix).
    _, u = np.linalg.eigh(population)
    assert np.all(np.abs(np.sum(pca.components_ * u[:, ::-1][:, :3].T, axis=1)) > 0.99)


def test_fitted_on_train_only(rng):
    train, _ = correlated(rng, n=5000)
    test, _ = correlated(rng, n=3000, shift=5.0)  # a shifted distribution
    for prep in (MeanImage(), PerChannelMean(), PerChannelStandardize(), PCA(4), Whitening("zca")):
        prep.fit(train)
        learned = {k: v.copy() for k, v in prep.state_dict()["arrays"].items()}
        out_test = prep.transform(test)
        for k, v in prep.state_dict()["arrays"].items():  # transform never refits
            assert np.array_equal(v, learned[k]), (type(prep).__name__, k)
        if hasattr(prep, "mean_") and prep.mean_.shape == train.shape[1:]:
            np.testing.assert_allclose(prep.mean_, train.mean(axis=0), rtol=1e-5)
        assert out_test.dtype == np.float32
        # The test split keeps its shift relative to the training statistics: nothing was fitted on it.
        assert abs(float(out_test.mean()) - float(prep.transform(train).mean())) > 0.1, type(prep).__name__


def test_simple_preprocessors(rng):
    x = rng.integers(0, 256, (64, 4, 5, 3), dtype=np.uint8)
    out = Scale().fit_transform(x)
    assert out.dtype == np.float32 and out.max() <= 1.0 and np.isclose(out.max(), x.max() / 255)
    mi = MeanImage().fit(x)
    assert mi.mean_.shape == (4, 5, 3)
    np.testing.assert_allclose(mi.transform(x).mean(axis=0), 0, atol=1e-4)
    pcm = PerChannelMean().fit(x)
    assert pcm.mean_.shape == (3,)
    np.testing.assert_allclose(pcm.transform(x).mean(axis=(0, 1, 2)), 0, atol=1e-4)
    std = PerChannelStandardize().fit(x)
    z = std.transform(x)
    np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1, atol=1e-4)
    assert PerChannelStandardize().fit_transform(np.zeros((3, 2, 2, 1))).max() == 0  # constant: finite
    assert Compose([Scale(), pcm])(x, None).dtype == np.float32
    assert pcm(x.astype(np.float64)).dtype == np.float32


@pytest.mark.parametrize("prep", [Scale(0.5), MeanImage(), PerChannelMean(), PerChannelStandardize(1e-6), PCA(2),
                                  Whitening("zca", eps=0.1), Whitening("pca", eps=1e-3, n_components=3)])
def test_state_dict_round_trip(prep, rng):
    x = rng.standard_normal((200, 3, 2, 2)).astype(np.float32)
    prep.fit(x)
    state = prep.state_dict()
    assert all(k.endswith("_") for k in state["arrays"])
    text = json.dumps({"type": state["type"], "config": state["config"]})  # config is JSON
    back = Preprocessor.from_state_dict({**json.loads(text), "arrays": {k: v.copy() for k, v in
                                                                       state["arrays"].items()}})
    assert type(back) is type(prep) and repr(back) == repr(prep)
    assert np.array_equal(back.transform(x), prep.transform(x))
    assert type(prep).from_state_dict(state).state_dict()["config"] == state["config"]
    with pytest.raises(DataError, match="mismatched"):
        (MeanImage if type(prep) is not MeanImage else PCA).from_state_dict(state)


def test_errors(rng):
    x = rng.standard_normal((10, 4, 4, 3)).astype(np.float32)
    with pytest.raises(DataError, match="PCA: not fitted"):
        PCA(2).transform(x)
    pca = PCA(2).fit(x)
    with pytest.raises(DataError, match=r"fitted on samples of shape \(4, 4, 3\), got \(4, 4, 1\)"):
        pca.transform(x[..., :1])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="NaN or inf"):
        MeanImage().fit(bad)
    with pytest.raises(DataError, match="numeric"):
        MeanImage().fit(np.array([["a"], ["b"]]))
    with pytest.raises(DataError, match="exceeds"):
        PCA(100).fit(x)
    with pytest.raises(DataError, match="kind"):
        Whitening("svd")
    with pytest.raises(DataError, match="at least 2"):
        Whitening().fit(x[:1])
