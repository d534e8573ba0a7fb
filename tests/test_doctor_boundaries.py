"""Each doctor check at its WARN and FAIL boundaries (`diagnose/thresholds.py`), just inside and just outside,
on both sides where a check has two: cheap synthetic inputs (fixed scores, hand-made layer statistics, loss
curves), no training. The overfit check has no numeric boundary (100 % of the tiny subset or not): its tests
are in test_diagnose_checks.py."""

import math

import numpy as np
import pytest

import striate as st
from striate.diagnose import FAIL, PASS, SKIP, THRESHOLDS, WARN, check_inputs
from striate.diagnose.checks import (
    activations,
    gradient_check,
    gradients,
    initial_loss,
    learning_curves,
    learning_rate,
    model,
    regularisation,
    update_ratio,
)
from striate.diagnose.stats import LayerStats
from striate.nn.module import Module

EPS = 1e-3


class FixedScores(Module):
    """A model whose scores give every sample the same softmax loss `loss` (its label's probability e^-loss,
    the other classes sharing the rest equally)."""

    def __init__(self, loss: float, classes: int):
        super().__init__()
        p = math.exp(-loss)
        self.lift, self.classes = math.log(p * (classes - 1) / (1 - p)), classes

    def forward(self, x):
        s = np.zeros((len(x), self.classes), np.float32)
        s[np.arange(len(x)), x[:, 0].astype(int)] = self.lift  # the label rides in the first feature
        return s


def initial(ratio: float, classes: int = 10):
    """The initial-loss verdict of a loss of `ratio`× chance (ln C)."""
    y = np.arange(200) % classes
    x = np.stack([y, np.zeros_like(y)], axis=1).astype(np.float32)
    return initial_loss.judge(FixedScores(ratio * math.log(classes), classes), st.nn.SoftmaxCrossEntropy(), x, y,
                              classes)


T = THRESHOLDS


@pytest.mark.parametrize("ratio,status", [
    (1 + T.initial_loss.warn - EPS, PASS), (1 + T.initial_loss.warn + EPS, WARN),  # above chance
    (1 + T.initial_loss.fail - EPS, WARN), (1 + T.initial_loss.fail + EPS, FAIL),
    (1 - T.initial_loss.warn + EPS, PASS), (1 - T.initial_loss.warn - EPS, WARN),  # below chance
    (T.initial_loss.fail_below + EPS, WARN), (T.initial_loss.fail_below - EPS, FAIL),
])
def test_initial_loss_is_judged_on_both_sides_of_chance(ratio, status):
    v = initial(ratio)
    assert v.status == status, (ratio, v)


def test_an_initial_loss_far_below_chance_fails():
    """The mutation gap: a deviation compared with its sign let a loss far below chance (labels leaked into the
    inputs, broken scores) through."""
    v = initial(0.05)
    assert v.status == FAIL and v.cause == "bad_initial_loss" and "below chance" in v.symptom


def rms_inputs(rms: float):
    x = np.where(np.random.default_rng(0).random((200, 8)) < 0.5, -rms, rms).astype(np.float64)
    return next(v for v in check_inputs(x, np.arange(200) % 4, 4) if v.check == "inputs")


@pytest.mark.parametrize("rms,status", [
    (T.inputs.rms_warn * (1 - EPS), PASS), (T.inputs.rms_warn * (1 + EPS), WARN),
    (T.inputs.rms_fail * (1 - EPS), WARN), (T.inputs.rms_fail * (1 + EPS), FAIL),
    (T.inputs.rms_tiny_warn * (1 + EPS), PASS), (T.inputs.rms_tiny_warn * (1 - EPS), WARN),
    (T.inputs.rms_tiny_fail * (1 + EPS), WARN), (T.inputs.rms_tiny_fail * (1 - EPS), FAIL),
])
def test_input_scale_boundaries(rms, status):
    assert rms_inputs(rms).status == status


@pytest.mark.parametrize("rare,status", [(21, PASS), (20, WARN)])  # 100 of the common class: 4.8× vs 5×
def test_class_imbalance_boundary(rare, status):
    y = np.array([0] * 100 + [1] * rare)
    x = np.random.default_rng(0).standard_normal((len(y), 4))
    assert next(v for v in check_inputs(x, y, 2) if v.check == "labels").status == status


@pytest.fixture(scope="module")
def shuffled_digits():
    d = st.data.load("digits")
    x = d.images.astype(np.float32) / 255
    return x - x.mean(), np.random.default_rng(0).permutation(d.labels.astype(np.int64))


@pytest.mark.parametrize("side,status", [(1 + EPS, FAIL), (1.0, FAIL), (1 - EPS, SKIP)])
def test_neighbour_contrast_boundary(shuffled_digits, monkeypatch, side, status):
    """1-NN agreement at chance claims shuffled labels only at a neighbour contrast at or below the threshold;
    above it (neighbours uninformative, as on natural photos) the verdict is an inconclusive SKIP, no cause."""
    from dataclasses import replace

    from striate.diagnose import data_check

    x, y = shuffled_digits
    contrast = next(v for v in check_inputs(x, y, 10) if v.check == "labels match inputs").details["contrast"]
    monkeypatch.setattr(data_check, "T", replace(T.inputs, match_contrast=contrast * side))
    v = next(v for v in check_inputs(x, y, 10) if v.check == "labels match inputs")
    assert v.status == status and v.cause == ("labels_shuffled" if status == FAIL else "")
    assert ("inconclusive" in v.value) == (status == SKIP)


def mlp(*middle):
    rng = np.random.default_rng(0)
    return st.nn.Sequential(st.nn.Linear(8, 16, rng=rng), *middle, st.nn.Linear(16, 4, rng=rng))


@pytest.mark.parametrize("p,status", [
    (T.model.dropout_warn - EPS, PASS), (T.model.dropout_warn, WARN),
    (T.model.dropout_fail - EPS, WARN), (T.model.dropout_fail, FAIL),
])
def test_dropout_boundaries(p, status):
    assert model.judge(mlp(st.nn.ReLU(), st.nn.Dropout(p))).status == status


@pytest.mark.parametrize("momentum,status", [
    (T.model.bn_slow * 1.01, PASS), (T.model.bn_slow, WARN), (0.0, FAIL),
    (T.model.bn_last * 0.99, PASS), (T.model.bn_last, WARN),
])
def test_batchnorm_momentum_boundaries(momentum, status):
    assert model.judge(mlp(st.nn.BatchNorm(16, momentum=momentum), st.nn.ReLU())).status == status


class Scale(Module):
    """y = 2x whose backward is off by a factor (1 + error)."""

    def __init__(self, error: float):
        super().__init__()
        self.error = error

    def forward(self, x):
        return 2 * x

    def backward(self, dy):
        return 2 * (1 + self.error) * dy

    def output_shape(self, shape):
        return shape


@pytest.mark.parametrize("error,status", [
    (T.gradient_check.tol / 10, PASS), (T.gradient_check.tol * 10, WARN),
    (T.gradient_check.fail_tol / 10, WARN), (T.gradient_check.fail_tol * 10, FAIL),
])
def test_gradient_check_boundaries(error, status):
    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Linear(4, 6, rng=rng), Scale(error), st.nn.Linear(6, 3, rng=rng))
    x = rng.standard_normal((2, 4))
    assert gradient_check.judge(net, st.nn.SoftmaxCrossEntropy(), x, np.array([0, 1])).status == status


@pytest.mark.parametrize("ratio,status", [
    (T.regularisation.strong_warn * 0.99, PASS), (T.regularisation.strong_warn * 1.01, WARN),
    (T.regularisation.strong_fail * 0.99, WARN), (T.regularisation.strong_fail * 1.01, FAIL),
])
def test_penalty_strength_boundaries(ratio, status):
    net = mlp(st.nn.ReLU())
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 8)).astype(np.float32), rng.integers(0, 4, 64)
    data_loss = float(st.nn.SoftmaxCrossEntropy()(net.forward(x), y))
    reg = ratio * data_loss / st.nn.L2(1.0).value(net)
    assert regularisation.judge(net, st.nn.SoftmaxCrossEntropy(), x, y, used=st.nn.L2(reg)).status == status


def flat_then(end: float) -> list[float]:
    """A short run's losses: 1.0 for the first half, `end` for the second (the check compares tenths)."""
    return [1.0] * 50 + [end] * 50


@pytest.mark.parametrize("end,status,cause", [
    (1 - T.learning_rate.flat_warn - EPS, PASS, ""), (1 - T.learning_rate.flat_warn + EPS, WARN, "lr_too_low"),
    (1 - T.learning_rate.flat_fail - EPS, WARN, "lr_too_low"),
    (1 - T.learning_rate.flat_fail + EPS, FAIL, "lr_too_low"),
    (1 + T.learning_rate.flat_warn - EPS, FAIL, "lr_too_low"),  # a small rise: the loss does not fall
    (1 + T.learning_rate.flat_warn + EPS, WARN, "lr_too_high"),
    (1 + 3 * T.learning_rate.flat_warn - EPS, WARN, "lr_too_high"),
    (1 + 3 * T.learning_rate.flat_warn + EPS, FAIL, "lr_too_high"),
])
def test_learning_rate_boundaries(end, status, cause):
    v = learning_rate.judge(0.1, None, flat_then(end))
    assert (v.status, v.cause) == (status, cause)


def test_a_short_run_that_explodes_fails():
    below = learning_rate.judge(0.1, None, [1.0] * 99 + [T.learning_rate.explode_factor * 0.99])
    assert "exploded" not in below.symptom
    v = learning_rate.judge(0.1, None, [1.0] * 99 + [T.learning_rate.explode_factor * 1.01])
    assert v.status == FAIL and "exploded" in v.symptom


def relu_layer(zero: float = 0.0, dead: float = 0.0) -> list[LayerStats]:
    units = np.ones(16, bool)
    return [LayerStats("0", "Linear(8→16)", "param", 0.0, 1.0, weight_gain=1.4, bias_mean=0.0),
            LayerStats("1", "ReLU()", "relu", 0.4, 0.6, zero=zero, dead=dead, active_units=units)]


@pytest.mark.parametrize("zero,dead,status", [
    (T.activations.zero_warn - EPS, 0.0, PASS), (T.activations.zero_warn, 0.0, WARN),
    (T.activations.zero_fail - EPS, 0.0, WARN), (T.activations.zero_fail, 0.0, FAIL),
    (0.5, T.activations.dead_warn - EPS, PASS), (0.5, T.activations.dead_warn, WARN),
    (0.5, T.activations.dead_fail - EPS, WARN), (0.5, T.activations.dead_fail, FAIL),
])
def test_dead_unit_boundaries(zero, dead, status):
    v = activations.judge(relu_layer(zero, dead), 1.0)
    assert v.status == status and (status == PASS or v.cause == "dead_units")


@pytest.mark.parametrize("saturated,status", [
    (T.activations.saturated_warn, PASS), (T.activations.saturated_warn + EPS, WARN),
    (T.activations.saturated_fail, WARN), (T.activations.saturated_fail + EPS, FAIL),
])
def test_saturation_boundaries(saturated, status):
    stats = [LayerStats("0", "Linear(8→16)", "param", 0.0, 1.0, weight_gain=1.0, bias_mean=0.0),
             LayerStats("1", "Tanh()", "tanh", 0.0, 0.5, saturated=saturated)]
    assert activations.judge(stats, 1.0).status == status


def two_layers(ratio: float) -> tuple[list[LayerStats], dict]:
    """A bottom and a top weighted layer whose output gradients are `ratio` : 1."""
    stats = [LayerStats("0", "Linear", "param", 0.0, 1.0, weight_gain=1.0, grad_rms=ratio),
             LayerStats("1", "Linear", "param", 0.0, 1.0, weight_gain=1.0, grad_rms=1.0)]
    params = {n: {"finite": True, "grad_norm": 1.0, "ndim": 2, "trainable": True} for n in ("0.weight", "1.weight")}
    return stats, params


@pytest.mark.parametrize("ratio,status", [
    (T.gradients.vanish_warn * 1.01, PASS), (T.gradients.vanish_warn * 0.99, WARN),
    (T.gradients.vanish * 1.01, WARN), (T.gradients.vanish * 0.99, FAIL),
    (T.gradients.explode_warn * 0.99, PASS), (T.gradients.explode_warn * 1.01, WARN),
    (T.gradients.explode * 0.99, WARN), (T.gradients.explode * 1.01, FAIL),
])
def test_gradient_scale_boundaries(ratio, status):
    stats, params = two_layers(ratio)
    assert gradients.judge(stats, params).status == status


@pytest.mark.parametrize("ratio,status,cause", [
    (T.update_ratio.low * 1.01, PASS, ""), (T.update_ratio.low * 0.99, WARN, "lr_too_low"),
    (T.update_ratio.low_fail * 1.01, WARN, "lr_too_low"), (T.update_ratio.low_fail * 0.99, FAIL, "lr_too_low"),
    (T.update_ratio.high * 0.99, PASS, ""), (T.update_ratio.high * 1.01, WARN, "lr_too_high"),
    (T.update_ratio.high_fail * 0.99, WARN, "lr_too_high"), (T.update_ratio.high_fail * 1.01, FAIL, "lr_too_high"),
])
def test_update_ratio_boundaries(ratio, status, cause):
    v = update_ratio.judge([{"iteration": i, "ratios": {"w": ratio}} for i in range(20)])
    assert (v.status, v.cause) == (status, cause)


def curves(train: float, val: float) -> list[dict]:
    losses = [{"type": "iteration", "iteration": i + 1, "loss": 2.0 - 0.01 * i} for i in range(20)]
    return losses + [{"type": "epoch", "epoch": 1, "accuracy": train, "val_accuracy": val}]


@pytest.mark.parametrize("gap,status,cause", [
    (T.learning_curves.gap_warn - EPS, PASS, ""), (T.learning_curves.gap_warn + EPS, WARN, "overfitting"),
    (T.learning_curves.gap_fail - EPS, WARN, "overfitting"), (T.learning_curves.gap_fail + EPS, FAIL, "overfitting"),
])
def test_train_validation_gap_boundaries(gap, status, cause):
    v = learning_curves.judge(curves(0.97, 0.97 - gap), num_classes=10)
    assert (v.status, v.cause) == (status, cause)


@pytest.mark.parametrize("acc,status", [
    (T.learning_curves.good_accuracy + EPS, PASS), (T.learning_curves.good_accuracy - EPS, WARN),
])
def test_underfitting_boundary(acc, status):
    assert learning_curves.judge(curves(acc, acc), num_classes=10).status == status


@pytest.mark.parametrize("margin,cause", [
    (T.learning_curves.chance_margin + EPS, "overfitting"), (T.learning_curves.chance_margin - EPS, "labels_shuffled"),
])
def test_validation_at_chance_boundary(margin, cause):
    v = learning_curves.judge(curves(0.5, 0.1 + margin), num_classes=10)
    assert v.status == FAIL and v.cause == cause
