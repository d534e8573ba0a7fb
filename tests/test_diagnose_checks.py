"""The doctor's checks one by one, on deliberately broken pieces: each must FAIL/WARN with the right cause."""

import numpy as np
import pytest

import striate as st
from striate.diagnose import FAIL, PASS, SKIP, WARN, lr_range_test
from striate.diagnose.checks import (
    activations,
    gradient_check,
    gradients,
    initial_loss,
    learning_curves,
    learning_rate,
    overfit,
    regularisation,
    update_ratio,
)
from striate.diagnose.hooks import leaf_modules, tap
from striate.diagnose.init_experiment import deep_net, init_experiment
from striate.diagnose.stats import layer_statistics
from striate.nn.activation import ReLU, Tanh
from tests.battery import Doubled


class HalfReLU(ReLU):
    """A ReLU whose backward is wrong by a factor of 2."""

    def backward(self, dy):
        return 0.5 * super().backward(dy)


def activations_of(model, x):
    """The activation check on one pass of `model` over all of `x`."""
    stats, _ = layer_statistics(model, x)
    return activations.judge(stats, activations.input_rms(x))


def gradients_of(model, loss, x, y):
    """The gradient check on one forward/backward pass of `model` over (x, y)."""
    stats, params = layer_statistics(model, x, loss, y)
    return gradients.judge(stats, params, activations=activations.judge(stats, activations.input_rms(x)))


def mlp(rng, hidden=32, d=16, c=5, act=ReLU):
    return st.nn.Sequential(st.nn.Linear(d, hidden, rng=rng), act(), st.nn.Linear(hidden, hidden, rng=rng), act(),
                            st.nn.Linear(hidden, c, init="xavier", rng=rng))


@pytest.fixture
def blobs(rng):
    """5 separable Gaussian blobs in 16-D: (x float32 (400, 16), y int64 (400,))."""
    centers = rng.standard_normal((5, 16))
    y = rng.integers(0, 5, 400)
    x = (centers[y] + rng.standard_normal((400, 16))).astype(np.float32)
    return x, y


# ----- 1 gradient check ---------------------------------------------------------------------------
def test_gradient_check_names_the_broken_layer(rng, blobs):
    x, y = blobs
    good = mlp(rng)
    v = gradient_check.judge(good, st.nn.SoftmaxCrossEntropy(), x, y)
    assert v.status == PASS and float(v.value.split()[-1]) < 1e-6
    bad = st.nn.Sequential(st.nn.Linear(16, 32, rng=rng), ReLU(), st.nn.Linear(32, 32, rng=rng), HalfReLU(),
                           st.nn.Linear(32, 5, rng=rng))
    v = gradient_check.judge(bad, st.nn.SoftmaxCrossEntropy(), x, y)
    assert v.status == FAIL and v.cause == "wrong_backward"
    assert "layer 3 (HalfReLU())" in v.value and "layer 3" in v.details["first_failure"]
    # the layers below it get wrong gradients too, but only layer 3 is wrong on its own
    assert v.details["layers"]["3"] > 0.1 and max(e for k, e in v.details["layers"].items() if k != "3") < 1e-5
    assert v.details["model"]["0.weight"] > 1e-3


def test_gradient_check_names_a_user_container(rng, blobs):
    x, y = blobs
    net = st.nn.Sequential(st.nn.Linear(16, 8, rng=rng), ReLU(), Doubled(st.nn.Linear(8, 5, rng=rng)))
    v = gradient_check.judge(net, st.nn.SoftmaxCrossEntropy(), x, y)
    assert v.status == FAIL and v.cause == "wrong_backward" and "first wrong: layer 2 (Doubled" in v.value


def test_gradient_check_leaves_the_model_alone(rng, blobs):
    x, y = blobs
    net = mlp(rng)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    gradient_check.judge(net, st.nn.SoftmaxCrossEntropy(), x, y)
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())
    assert net.dtype == np.float32 and not any("forward" in vars(m) for _, m in leaf_modules(net))


# ----- 2 initial loss, 3 regularisation -----------------------------------------------------------------
def test_initial_loss_against_chance(rng, blobs):
    x, y = blobs
    net = mlp(rng)
    net[4].weight.data *= 0.01
    v = initial_loss.judge(net, st.nn.SoftmaxCrossEntropy(), x, y, num_classes=5)
    assert v.status == PASS and abs(v.details["chance"] - np.log(5)) < 1e-12
    big = mlp(rng)
    big[4].weight.data *= 50
    v = initial_loss.judge(big, st.nn.SoftmaxCrossEntropy(), x, y, num_classes=5)
    assert v.status == FAIL and v.cause == "weights_too_large" and "Xavier/He" in v.advice and "layer 4" in v.advice
    svm = initial_loss.judge(net, st.nn.MulticlassSVM(), x, y, num_classes=5)
    assert svm.status == PASS and svm.details["chance"] == 4.0


def test_regularisation_must_raise_the_loss(rng, blobs):
    x, y = blobs
    assert regularisation.judge(mlp(rng), st.nn.SoftmaxCrossEntropy(), x, y).status == PASS
    # a penalty that touches nothing (no parameter is named 'weight') is caught
    v = regularisation.judge(st.nn.Sequential(st.nn.PReLU(5), st.nn.Flatten()), st.nn.SoftmaxCrossEntropy(),
                             x[:, :5].copy(), y)
    assert v.status == FAIL and v.cause == "regularization_ineffective" and "named 'weight'" in v.advice


# ----- 4 overfit ----------------------------------------------------------------------------------------
def test_overfit_memorises_even_random_labels(rng, blobs):
    x, _ = blobs
    y = rng.integers(0, 5, len(x))
    v = overfit.judge(mlp(rng, hidden=64), st.nn.SoftmaxCrossEntropy(), x, y, "adam", 1e-2, n=32)
    assert v.status == PASS and v.details["accuracy"] == 1.0


def test_overfit_fails_for_a_model_that_cannot_learn(rng, blobs):
    x, y = blobs
    net = mlp(rng)
    for p in net.parameters():
        p.requires_grad = p is net[4].bias  # only the last bias learns: scores cannot depend on the input
    v = overfit.judge(net, st.nn.SoftmaxCrossEntropy(), x, y, "adam", 1e-2, n=32, max_iters=100)
    assert v.status == FAIL and v.cause == "cannot_overfit"


def test_overfit_blames_the_optimizer_when_adam_fits(rng, blobs):
    x, y = blobs
    v = overfit.judge(mlp(rng), st.nn.SoftmaxCrossEntropy(), x, y, "sgd", 1e-7, n=32, max_iters=100)
    assert v.status == WARN and v.cause == "lr_too_low" and "too low" in v.advice and "too high" not in v.advice


# ----- 5 learning rate ----------------------------------------------------------------------------------
def test_lr_range_test_finds_a_sensible_rate(rng, blobs):
    x, y = blobs
    r = lr_range_test(mlp(rng), st.nn.SoftmaxCrossEntropy(), x, y, optimizer="momentum", iters=100, rng=rng)
    assert r.diverged_lr is not None and 1e-4 < r.suggestion < r.diverged_lr
    lo, hi = r.search_range
    assert lo < r.suggestion <= hi < r.diverged_lr
    assert learning_rate.judge(r.suggestion * 100 * 10, r).cause == "lr_too_high"
    assert learning_rate.judge(r.suggestion / 1000, r).cause == "lr_too_low"
    assert learning_rate.judge(r.suggestion, r).status == PASS


def test_learning_rate_from_a_short_run():
    exploded = [2.3, 2.2, 8.0, float("nan")]
    v = learning_rate.judge(1.0, None, exploded)
    assert v.status == FAIL and v.cause == "lr_too_high" and "lower it" in v.advice
    flat = list(2.30 - 0.0001 * np.arange(200))
    v = learning_rate.judge(1e-6, None, flat)
    assert v.status == FAIL and v.cause == "lr_too_low"
    falling = list(2.3 * np.exp(-np.arange(200) / 50))
    assert learning_rate.judge(0.1, None, falling).status == PASS


# ----- 6 activations, 7 gradients --------------------------------------------------------------------------
def test_init_experiment_diagnoses_each_case():
    cases = {c.name: c for c in init_experiment(samples=300)}
    small = cases["tanh, 0.01·randn"]
    stds = [s.std for s in small.activations]
    assert all(b < 0.3 * a for a, b in zip(stds, stds[1:], strict=False)) and stds[-1] < 1e-5
    assert small.verdicts[0].status == FAIL and small.verdicts[0].cause == "weights_too_small"
    assert "too small" in small.verdicts[0].advice and "Xavier" in small.verdicts[0].advice
    assert small.verdicts[1].cause == "weights_too_small" and "vanish" in small.verdicts[1].symptom
    big = cases["tanh, 1.0·randn"]
    assert big.verdicts[0].status == FAIL and big.verdicts[0].cause == "weights_too_large"
    assert min(s.saturated for s in big.activations) > 0.8 and "saturated" in big.verdicts[0].advice
    assert "too large" in big.verdicts[0].advice and "too small" not in big.verdicts[0].advice
    for healthy in ("tanh, Xavier", "ReLU, He"):
        assert [v.status for v in cases[healthy].verdicts] == [PASS, PASS], cases[healthy].verdicts
    assert cases["ReLU, Xavier"].verdicts[0].cause == "weights_too_small"  # halves the variance per layer (He et al.)
    hist = small.activations[0]
    assert sum(hist.hist) == 300 * 500 and len(hist.edges) == len(hist.hist) + 1


def test_small_init_in_a_deep_tanh_net_collapses(rng):
    x = rng.standard_normal((200, 100)).astype(np.float32)
    net = deep_net("tanh", st.nn.init.normal(0.01), depth=10, width=100, inputs=100, rng=rng)
    v = activations_of(net, x)
    assert v.status == FAIL and v.cause == "weights_too_small" and "collapsed" in v.advice
    g = gradients_of(net, st.nn.SoftmaxCrossEntropy(), x, rng.integers(0, 10, 200))
    assert g.status == FAIL and g.cause == "weights_too_small"


def test_large_negative_bias_kills_relus(rng, blobs):
    x, y = blobs
    net = mlp(rng)
    net[2].bias.data[:] = -10.0
    v = activations_of(net, x)
    assert v.status == FAIL and v.cause == "dead_units" and "layer 3" in v.value and "negative bias" in v.advice
    g = gradients_of(net, st.nn.SoftmaxCrossEntropy(), x, y)
    # a few units still fire on some samples, so the gradient below is tiny rather than exactly zero
    assert g.status != PASS and g.cause == "dead_units" and "layer 2" in g.advice + g.value
    healthy = mlp(rng)
    assert activations_of(healthy, x).status == PASS
    assert gradients_of(healthy, st.nn.SoftmaxCrossEntropy(), x, y).status == PASS


def test_sigmoid_saturation(rng, blobs):
    x, _ = blobs
    from striate.nn.activation import Sigmoid

    net = st.nn.Sequential(st.nn.Linear(16, 64, init=st.nn.init.normal(3.0), rng=rng), Sigmoid(),
                           st.nn.Linear(64, 5, rng=rng))
    v = activations_of(net, x)
    assert v.status == FAIL and v.cause == "weights_too_large"


def test_taps_are_removed_and_see_every_leaf(rng, blobs):
    x, _ = blobs
    net = mlp(rng, act=Tanh)
    seen = []
    with tap(leaf_modules(net), on_forward=lambda n, m, a, b: seen.append((n, b.shape))):
        net.forward(x)
    assert [n for n, _ in seen] == ["0", "1", "2", "3", "4"] and seen[-1][1] == (400, 5)
    assert not any("forward" in vars(m) for m in net.modules())


# ----- 8 update ratio, 9 curves -------------------------------------------------------------------
def _records(value, n=50):
    return [{"iteration": i, "ratios": {"0.weight": value, "2.weight": value * 2}} for i in range(n)]


def test_update_ratio_bands():
    assert update_ratio.judge(_records(1e-3)).status == PASS
    low = update_ratio.judge(_records(1e-7))
    assert low.status == FAIL and low.cause == "lr_too_low" and "raise" in low.advice
    high = update_ratio.judge(_records(0.5))
    assert high.status == FAIL and high.cause == "lr_too_high" and "lower" in high.advice
    assert update_ratio.judge(_records(float("nan"))).cause == "lr_too_high"
    assert update_ratio.judge([]).status == SKIP


def _history(train_acc, val_acc, losses):
    iters = [{"type": "iteration", "iteration": i + 1, "loss": v, "lr": 0.1} for i, v in enumerate(losses)]
    epochs = [{"type": "epoch", "epoch": e, "iteration": (e + 1) * len(losses) // len(train_acc), "loss": 1.0,
               "accuracy": a, "val_accuracy": b} for e, (a, b) in enumerate(zip(train_acc, val_acc, strict=True))]
    return iters + epochs


def test_curves_diagnoses():
    rng = np.random.default_rng(0)
    falling = list(2.3 * np.exp(-np.arange(300) / 60) + 0.01 * rng.random(300))
    ok = learning_curves.judge(_history([0.8, 0.95], [0.8, 0.93], falling), num_classes=10)
    assert ok.status == PASS, ok
    over = learning_curves.judge(_history([0.9, 1.0], [0.6, 0.62], falling), num_classes=10)
    assert over.status == FAIL and over.cause == "overfitting" and "regularisation" in over.advice
    under = learning_curves.judge(_history([0.4, 0.45], [0.41, 0.44], falling), num_classes=10)
    assert under.status == WARN and under.cause == "underfitting" and "bigger model" in under.advice
    chance = learning_curves.judge(_history([0.3, 0.5], [0.1, 0.11], falling), num_classes=10)
    assert chance.status == FAIL and chance.cause == "labels_shuffled" and "shuffled" in chance.advice
    boom = learning_curves.judge(_history([0.2], [0.2], [2.3, 2.2, 9.0, float("nan")]), num_classes=10)
    assert boom.status == FAIL and boom.cause == "lr_too_high"
    plateau = [2.3 * np.exp(-i / 20) if i < 100 else 2.3 * np.exp(-5) + 1.0 for i in range(300)]
    plateau = list(np.maximum(plateau, 1.0) + 0.001 * rng.random(300))
    p = learning_curves.judge(_history([0.6, 0.62], [0.6, 0.61], plateau))
    assert p.cause in ("plateau", "underfitting") and any(f["cause"] == "plateau" for f in p.details["findings"])
    noisy = list(1.0 + 0.6 * rng.standard_normal(300))
    n = learning_curves.judge(_history([0.97, 0.98], [0.97, 0.975], noisy))
    assert n.status == WARN and n.cause == "noisy_loss"


# ----- degenerate statistics: never a crash, always a report of what was seen -------------------------------
def test_summaries_of_degenerate_outputs():
    from striate.diagnose.stats import summarize, summarize_gradient

    relu, lin = ReLU(), st.nn.Linear(3, 4)
    cases = {"constant": np.full((8, 4), -3.0, np.float32), "zeros": np.zeros((8, 4), np.float32),
             "nan": np.full((8, 4), np.nan, np.float32), "huge": np.array([[3e38, -3e38, 1.0, 0.0]] * 8, np.float32)}
    cases["mixed"] = np.where(np.arange(32).reshape(8, 4) % 5 == 0, np.inf, 1.0).astype(np.float32)
    for name, y in cases.items():
        for module in (relu, lin, Tanh()):
            s = summarize("0", module, y)
            summarize_gradient(s, y)
            assert len(s.edges) == len(s.hist) + 1 and np.isfinite(s.edges).all(), name
            assert sum(s.hist) == np.isfinite(y).sum() and sum(s.grad_hist) == np.isfinite(y).sum(), name
            assert s.nonfinite == pytest.approx(1 - np.isfinite(y).mean()), name
    assert summarize("0", relu, cases["constant"]).zero == 1.0 and summarize("0", relu, cases["constant"]).dead == 1.0


def test_constant_layer_output_is_reported_not_a_crash(rng):
    """The issue's crash: a Linear whose input is all zero outputs its bias (−3) everywhere; its histogram
    range was degenerate ("Too many bins for data range")."""
    b = st.nn.init.constant(-3.0)
    net = st.nn.Sequential(st.nn.Linear(16, 32, bias_init=b, rng=rng), ReLU(),
                           st.nn.Linear(32, 32, bias_init=b, rng=rng), ReLU(), st.nn.Linear(32, 5, rng=rng))
    x = rng.standard_normal((64, 16)).astype(np.float32) * 0.3
    v = activations_of(net, x)
    assert v.status == FAIL and v.cause == "dead_units" and "of the outputs of layer 1 (ReLU()) are zero" in v.value
    assert "negative bias" in v.advice and "mean bias -3" in v.advice
    g = gradients_of(net, st.nn.SoftmaxCrossEntropy(), x, rng.integers(0, 5, 64))
    assert g.status == FAIL and g.cause == "dead_units" and "no gradient reaches" in g.value


def test_all_zero_nan_and_inf_activations(rng, blobs):
    x, y = blobs
    zero = mlp(rng)
    for p in zero.parameters():
        p.data[...] = 0
    v = activations_of(zero, x)
    assert v.status == FAIL and v.cause == "symmetric_init" and "are all zero" in v.advice
    assert gradients_of(zero, st.nn.SoftmaxCrossEntropy(), x, y).cause == "symmetric_init"
    bad = x.copy()
    bad[3, 2] = np.nan
    v = activations_of(mlp(rng), bad)
    assert v.status == FAIL and v.cause == "nonfinite_inputs" and "NaN/inf" in v.value
    g = gradients_of(mlp(rng), st.nn.SoftmaxCrossEntropy(), bad, y)
    assert g.status == FAIL and g.cause == "nonfinite_inputs" and "non-finite gradient" in g.value
    huge = mlp(rng)
    huge[0].weight.data *= 1e20
    huge[2].weight.data *= 1e20  # its outputs (≈ 1e40) overflow float32 to ±inf
    v = activations_of(huge, x)
    assert v.status == FAIL and v.cause == "weights_too_large" and "NaN/inf" in v.value and "RMS·√fan_in" in v.advice
    assert gradients_of(huge, st.nn.SoftmaxCrossEntropy(), x, y).status == FAIL
