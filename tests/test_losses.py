import numpy as np
import pytest

import striate as st


def scores_labels(rng, n=6, c=5, dtype=np.float64):
    return rng.standard_normal((n, c)).astype(dtype), rng.integers(0, c, n)


@pytest.mark.parametrize("crit", [st.nn.SoftmaxCrossEntropy(), st.nn.SoftmaxCrossEntropy(label_smoothing=0.2),
                                  st.nn.MulticlassSVM(), st.nn.MulticlassSVM(0.5)])
def test_gradients(rng, crit):
    s, y = scores_labels(rng)
    report = st.gradcheck(crit, s, target=y)
    assert report.ok, str(report)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_softmax_matches_torch(rng, torch, smoothing):
    s, y = scores_labels(rng, 8, 10, np.float32)
    crit = st.nn.SoftmaxCrossEntropy(label_smoothing=smoothing)
    loss = crit(s, y)
    assert isinstance(loss, float)
    ts = torch.tensor(s, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(ts, torch.tensor(y), label_smoothing=smoothing)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-6)
    d = crit.backward()
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, ts.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_svm_matches_torch_multimargin(rng, torch):
    s, y = scores_labels(rng, 8, 10, np.float32)
    crit = st.nn.MulticlassSVM(margin=1.0)
    loss = crit(s, y)
    ts = torch.tensor(s, requires_grad=True)
    # torch's multi_margin_loss divides by C; the notes' Weston–Watkins loss sums over classes
    ref = torch.nn.functional.multi_margin_loss(ts, torch.tensor(y), margin=1.0) * s.shape[1]
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(crit.backward(), ts.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2])
def test_label_smoothing_range(bad):
    with pytest.raises(ValueError, match="label_smoothing"):
        st.nn.SoftmaxCrossEntropy(label_smoothing=bad)


def test_svm_notes_example():
    # the notes' worked example: scores [13, -7, 11], correct class 0, delta 10 → loss 8
    crit = st.nn.MulticlassSVM(margin=10.0)
    assert crit(np.array([[13.0, -7.0, 11.0]]), np.array([0])) == pytest.approx(8.0)


def test_stable_for_huge_scores():
    s = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 1e4]], dtype=np.float32)
    y = np.array([0, 2])
    crit = st.nn.SoftmaxCrossEntropy()
    loss = crit(s, y)
    assert np.isfinite(loss) and loss == pytest.approx((0 + 2e4) / 2, rel=1e-6)
    assert np.all(np.isfinite(crit.backward()))


def test_chance_loss(rng):
    s = np.zeros((100, 10), np.float32)
    y = rng.integers(0, 10, 100)
    assert st.nn.SoftmaxCrossEntropy()(s, y) == pytest.approx(np.log(10), rel=1e-6)
    assert st.nn.MulticlassSVM()(s, y) == pytest.approx(9.0)


def test_bad_labels(rng):
    s, y = scores_labels(rng, 4, 3, np.float32)
    crit = st.nn.SoftmaxCrossEntropy()
    with pytest.raises(st.nn.LayerError, match=r"labels must lie in \[0, 3\), found \[3\]"):
        crit(s, np.array([0, 1, 2, 3]))
    with pytest.raises(st.nn.LayerError, match="found \\[-1\\]"):
        st.nn.MulticlassSVM()(s, np.array([0, -1, 2, 1]))
    with pytest.raises(st.nn.LayerError, match="integer class ids"):
        crit(s, y.astype(np.float32))
    with pytest.raises(st.nn.LayerError, match=r"expected labels \(4,\)"):
        crit(s, y[:3])
    with pytest.raises(st.nn.LayerError, match=r"scores \(N, C\)"):
        crit(s.reshape(-1), y)
    with pytest.raises(RuntimeError, match="before forward"):
        st.nn.SoftmaxCrossEntropy().backward()


def test_penalties(rng):
    net = st.nn.Sequential(st.nn.Conv2d(1, 2, 3, rng=rng), st.nn.Flatten(), st.nn.Linear(2, 3, rng=rng))
    for p in net.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    weights = [net[0].weight.data, net[2].weight.data]
    l2, l1 = st.nn.l2(0.1), st.nn.l1(0.01)
    assert l2(net) == pytest.approx(0.05 * sum((w.astype(np.float64) ** 2).sum() for w in weights), rel=1e-5)
    assert l1(net) == pytest.approx(0.01 * sum(np.abs(w).sum() for w in weights), rel=1e-5)
    net.zero_grad()
    l2.backward(net)
    np.testing.assert_allclose(net[0].weight.grad, 0.1 * net[0].weight.data, rtol=1e-6)
    assert not net[0].bias.grad.any() and not net[2].bias.grad.any()  # biases are not penalised
    net.zero_grad()
    l1.backward(net)
    np.testing.assert_allclose(net[2].weight.grad, 0.01 * np.sign(net[2].weight.data), rtol=1e-6)
    assert net[2].weight.grad.dtype == np.float32
    with pytest.raises(ValueError):
        st.nn.l2(-1.0)
