"""PatchWhitening (a frozen convolution fitted from the patches' PCA), the BiasEpochs callback, and the run's fit
of such a layer from the training images."""

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.nn.whitening import fit_unfitted
from striate.train.callbacks import BiasEpochs
from tests import battery


def images(rng, n=12, h=7, w=6, c=3):
    """Correlated channels with a non-zero mean, so the uncentred covariance is far from the identity."""
    x = rng.standard_normal((n, h, w, c)) @ np.array([[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.2, 0.0, 0.7]])[:c, :c]
    return (x + 0.4).astype(np.float32)


def naive_covariance(x, kh, kw):
    """Σ PᵀP / n, one patch at a time (the test oracle)."""
    rows = [x[i, r:r + kh, s:s + kw, :].reshape(-1) for i in range(len(x))
            for r in range(x.shape[1] - kh + 1) for s in range(x.shape[2] - kw + 1)]
    p = np.asarray(rows, dtype=np.float64)
    return p.T @ p / len(p)


def test_the_whitening_layers_covariance_on_patches_is_the_identity(rng):
    x = images(rng)
    layer = nn.PatchWhitening(3, eps=1e-9, rng=rng).fit(x)
    y = layer(x).astype(np.float64)
    assert y.shape == (12, 6, 5, 24)
    d = 12
    first = y[..., :d].reshape(-1, d)
    np.testing.assert_allclose(first.T @ first / len(first), np.eye(d), atol=2e-4)
    np.testing.assert_allclose(y[..., d:], -y[..., :d], atol=1e-5)  # the bias is zero: exact negatives
    # eigenvalues in descending order: the filters' norms 1/√(λ + eps) grow
    w = layer.weight.data.reshape(d, 2 * d)
    assert np.all(np.diff(np.linalg.norm(w[:, :d], axis=0)) >= -1e-6)


def test_zca_filters_whiten_in_the_patchs_own_coordinates(rng):
    x = images(rng)
    layer = nn.PatchWhitening(3, eps=1e-9, method="zca", rng=rng).fit(x)
    assert "zca" in repr(layer)
    d = 12
    w = layer.weight.data.reshape(d, 2 * d).astype(np.float64)
    lam, u = np.linalg.eigh(naive_covariance(x, 2, 2))
    np.testing.assert_allclose(w[:, :d], (u / np.sqrt(lam + 1e-9)) @ u.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(w[:, :d], w[:, :d].T, rtol=1e-5, atol=1e-5)  # U·D·Uᵀ is symmetric
    y = layer(x).astype(np.float64)
    first = y[..., :d].reshape(-1, d)
    np.testing.assert_allclose(first.T @ first / len(first), np.eye(d), atol=2e-4)
    np.testing.assert_allclose(y[..., d:], -y[..., :d], atol=1e-5)
    with pytest.raises(ValueError, match="PatchWhitening: method must be 'pca' or 'zca'"):
        nn.PatchWhitening(3, method="pcaa")


def test_fit_is_the_naive_patch_covariance_and_chunk_size_independent(rng):
    x = images(rng, h=5, w=8)
    layer = nn.PatchWhitening(3, (2, 3), rng=rng)
    sigma = layer.patch_covariance(x)
    np.testing.assert_allclose(layer.patch_covariance(x.astype(np.float64)), sigma, rtol=1e-12)  # any float
    np.testing.assert_allclose(sigma, naive_covariance(x, 2, 3), rtol=1e-12, atol=1e-12)
    for chunks in [layer.patch_covariance(x, 1), layer.patch_covariance(x, 5), layer.patch_covariance([x[:7], x[7:]])]:
        np.testing.assert_allclose(chunks, sigma, rtol=1e-12, atol=1e-13)
    a = nn.PatchWhitening(3, (2, 3)).fit(x, batch_size=1).weight.data
    b = nn.PatchWhitening(3, (2, 3)).fit(x).weight.data
    np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-4, atol=1e-5)  # eigenvectors: up to their sign


def test_frozen_weight_gets_no_gradient_and_never_moves(rng, monkeypatch):
    x = images(rng)
    net = nn.Sequential(nn.PatchWhitening(3, rng=rng).fit(x), nn.GELU(), nn.GlobalAvgPool2d(),
                        nn.Linear(24, 4, rng=rng))
    layer = net[0]
    w = layer.weight.data.copy()
    opt = st.optim.SGD(net, lr=0.5, momentum=0.9, weight_decay=0.1)
    assert all(p is not layer.weight for p in opt.params)
    monkeypatch.setattr(type(layer), "_weight_grad", lambda *a: pytest.fail("a frozen weight's gradient"))
    layer.requires_input_grad = True  # dx still flows (a layer below could need it)
    for _ in range(2):
        net.zero_grad()
        y = net(x)
        net.backward(np.ones_like(y))
        opt.step()
    np.testing.assert_array_equal(layer.weight.data, w)
    assert not layer.weight.grad.any() and layer.bias.grad.any()
    net.freeze(1).unfreeze()
    assert not layer.weight.requires_grad and layer.bias.requires_grad


def test_gradcheck_and_contract(rng):
    x = images(rng, n=3, h=4, w=5)
    layer = nn.PatchWhitening(3, rng=rng).fit(x)
    layer.bias.data[:] = rng.standard_normal(24)
    battery.gradients_ok(layer, x)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    assert layer.macs((1, 4, 5, 3)) == 3 * 4 * 24 * 12


def test_matches_torch(torch, rng):
    x = images(rng, n=4)
    layer = nn.PatchWhitening(3, rng=rng).fit(x)
    layer.bias.data[:] = rng.standard_normal(24)
    t = torch.nn.Conv2d(3, 24, 2)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data.transpose(3, 2, 0, 1).copy()))
        t.bias.copy_(torch.from_numpy(layer.bias.data))
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    ty = t(tx)
    y = layer(x)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, t.bias.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_errors_name_the_layer(rng):
    layer = nn.PatchWhitening(3, rng=rng)
    with pytest.raises(nn.LayerError, match=r"PatchWhitening\(3→24, 2×2, unfitted\): fit: expected float images "
                                            r"\(N, H, W, 3\), got float32 \(2, 4, 4, 1\)"):
        layer.fit(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(nn.LayerError, match="got uint8"):
        layer.fit(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(nn.LayerError, match=r"expected input \(N, H, W, 3\), got \(2, 4, 4, 1\)"):
        layer(np.zeros((2, 4, 4, 1), np.float32))
    with pytest.raises(nn.LayerError, match="smaller than the 2×2 patches"):
        layer.fit(np.zeros((2, 1, 4, 3), np.float32))
    with pytest.raises(nn.LayerError, match="got no images"):
        layer.fit(np.zeros((0, 4, 4, 3), np.float32))
    with pytest.raises(nn.LayerError, match="singular and eps = 0"):
        nn.PatchWhitening(3, eps=0).fit(np.zeros((2, 4, 4, 3), np.float32))
    for bad in [dict(eps=-1.0), dict(bias_epochs=-1), dict(bias_epochs=2, bias=False), dict(kernel_size=0)]:
        with pytest.raises(ValueError, match="PatchWhitening"):
            nn.PatchWhitening(3, **bad)


def test_state_dict_round_trip_keeps_the_fit(rng):
    x = images(rng)
    a = nn.PatchWhitening(3, bias_epochs=2, rng=rng).fit(x)
    b = nn.PatchWhitening(3, bias_epochs=2, rng=np.random.default_rng(5))
    assert "unfitted" in repr(b) and "unfitted" not in repr(a) and "bias_epochs=2" in repr(a)
    assert fit_unfitted(nn.Sequential(a), lambda: [x]) == 0  # nothing to fit
    b.load_state_dict(a.state_dict())
    assert bool(b.fitted_) and "unfitted" not in repr(b)
    np.testing.assert_array_equal(b(x), a(x))
    assert not b.weight.requires_grad


def test_fit_unfitted_fits_a_deeper_layer_on_its_own_input(rng):
    x = images(rng)
    net = nn.Sequential(nn.Scale(2.0), nn.PatchWhitening(3, rng=rng), nn.GELU(), nn.Flatten(),
                        nn.Linear(6 * 5 * 24, 3, rng=rng))
    assert fit_unfitted(net, lambda: [x[:5], x[5:]]) == 1
    want = nn.PatchWhitening(3).fit(2 * x).weight.data
    np.testing.assert_allclose(np.abs(net[1].weight.data), np.abs(want), rtol=1e-4, atol=1e-5)
    assert net.training and net[1].fitted_


def test_bias_epochs_freezes_at_epoch_k():
    layer = nn.PatchWhitening(3, bias_epochs=2)
    net = nn.Sequential(layer, nn.PatchWhitening(24))  # the second has no bias_epochs: left alone
    cb = BiasEpochs()
    cb.set_trainer(type("T", (), {"model": net})())
    assert BiasEpochs.applies(net) and not BiasEpochs.applies(nn.Sequential(nn.PatchWhitening(3)))
    for epoch, trains in [(0, True), (1, True), (2, False), (5, False), (1, True)]:  # a function of the epoch
        cb.on_epoch_begin(epoch)
        assert layer.bias.requires_grad is trains and net[1].bias.requires_grad


# ----- a run ------------------------------------------------------------------------------------------------
RUN = """epochs = {epochs}
data = "digits"
batch_size = 100
seed = 4
report = "off"
diagnostics = 0
limit = 300
[model]
layers = [
  {{ layer = "PatchWhitening", bias_epochs = 1, eps = 0.01 }},
  {{ layer = "GELU" }},
  {{ layer = "Conv2d", out_channels = 8, kernel_size = 3, init = "dirac", bias = false }},
  {{ layer = "BatchNorm", scale = false, momentum = 0.4 }},
  {{ layer = "GELU" }},
  {{ layer = "GlobalAvgPool2d" }},
  {{ layer = "Linear", out_features = 10, bias = false }},
  {{ layer = "Scale", factor = 0.5 }},
]
"""


def test_a_run_fits_the_layer_from_data_and_a_resume_does_not_refit(tmp_path, monkeypatch):
    from striate.cli import main
    from striate.run import RunDir
    from striate.train.checkpoint import CheckpointStore

    for name, epochs in [("straight", 2), ("resumed", 1)]:
        (tmp_path / f"{name}.toml").write_text(RUN.format(epochs=epochs))
        assert main(["train", "--config", str(tmp_path / f"{name}.toml"), "--out", str(tmp_path / name)]) == 0
    first = CheckpointStore(tmp_path / "resumed" / "checkpoints").load("last").weights
    assert bool(first["0.fitted_"]) and "unfitted" not in repr(RunDir(tmp_path / "resumed").load_model().model)
    np.testing.assert_array_equal(first["0.weight"][..., 4:], -first["0.weight"][..., :4])  # the fit's filters
    monkeypatch.setattr(nn.PatchWhitening, "fit", lambda *a, **k: pytest.fail("a resumed run fitted again"))
    assert main(["train", "--resume", str(tmp_path / "resumed"), "--epochs", "2"]) == 0
    a = CheckpointStore(tmp_path / "straight" / "checkpoints").load("last").weights
    b = CheckpointStore(tmp_path / "resumed" / "checkpoints").load("last").weights
    assert [k for k in a if not np.array_equal(a[k], b[k])] == []
    np.testing.assert_array_equal(a["0.bias"], first["0.bias"])  # frozen after epoch 0: epoch 1 left it
    np.testing.assert_array_equal(a["0.weight"], first["0.weight"])
    np.testing.assert_array_equal(a["3.gamma"], np.ones(8, np.float32))
