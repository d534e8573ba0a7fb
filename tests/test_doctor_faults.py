"""Planted faults: each broken setup, built with the public API on the embedded digits, must get the right
root cause as `report.diagnosis`, with the right severity, and a report whose advice never contradicts
itself (one story: every finding is the root, one of its consequences, or an independent problem that does
not point the other way). A healthy setup must come out "healthy"."""

import numpy as np
import pytest

import striate as st
from striate.diagnose import FAIL, PASS, WARN, doctor
from striate.diagnose.causes import CAUSES, conflicts
from striate.nn import (
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    init,
)

LR = 0.05  # SGD with momentum 0.9: healthy for these MLPs


@pytest.fixture(scope="module")
def digits():
    d = st.data.load("digits")
    x = d.images.astype(np.float32) / 255
    return x - x.mean(), d.labels.astype(np.int64), d.images


def mlp(seed=0, hidden=64, act=ReLU, depth=2, weights="he", bias="zeros", between=()):
    """Flatten → depth × (Linear(hidden) → [between] → act) → Linear(10)."""
    rng = np.random.default_rng(seed)
    layers, fan = [Flatten()], 64
    for _ in range(depth):
        layers += [Linear(fan, hidden, init=weights, bias_init=bias, rng=rng), *[b() for b in between], act()]
        fan = hidden
    return Sequential(*layers, Linear(fan, 10, init="xavier", rng=rng))


class LeakyBackward(ReLU):
    """A custom layer whose backward lets gradient through where its forward blocked it."""

    def backward(self, dy):
        return super().backward(dy) + 0.1 * dy


class Affine(Module):
    """A user's affine layer whose parameters are named w and b: a weight penalty misses them."""

    def __init__(self, n_in, n_out, rng):
        super().__init__()
        self.w = Parameter(init.he((n_in, n_out), rng))
        self.b = Parameter(np.zeros(n_out, np.float32))

    def forward(self, x):
        self._save(x)
        return x @ self.w.data + self.b.data

    def backward(self, dy):
        x = self._saved(dy)
        self.w.accumulate(x.T @ dy)
        self.b.accumulate(dy.sum(axis=0))
        return dy @ self.w.data.T


def _frozen():
    m = mlp()
    m.freeze(upto=len(m))
    return m


def _wrong_backward():
    layers = list(mlp())
    layers[4] = LeakyBackward()
    return Sequential(*layers)


def _last_bias():
    m = mlp()
    m[-1].bias.data[3] = 12.0  # the scores favour class 3 before any training
    return m


def _imbalanced(x, y):
    keep = (y < 5) | (np.arange(len(y)) % 8 == 0)  # classes 5…9 keep 1 sample in 8
    return x[keep], y[keep]


def _nan(x):
    x = x.copy()
    x[7, 3, 4, 0] = np.nan
    return x


# id: (model, doctor settings from (x, y, raw images), expected diagnosis, expected status)
FAULTS = {
    # the issue's five
    "negative bias kills ReLUs": (lambda: mlp(hidden=100, bias=init.constant(-3.0)), {}, "dead_units", FAIL),
    "saturated sigmoid": (lambda: mlp(act=Sigmoid, weights=init.normal(1.0)),
                          {"data": lambda x, y, raw: (3 * x, y)}, "weights_too_large", FAIL),
    "learning rate too low": (mlp, {"optimizer": "sgd", "lr": 1e-7}, "lr_too_low", FAIL),
    "weights too small, deep tanh": (lambda: mlp(act=Tanh, weights=init.normal(0.01), depth=8), {},
                                     "weights_too_small", FAIL),
    "custom layer, wrong backward": (_wrong_backward, {}, "wrong_backward", FAIL),
    # planted beyond them
    "learning rate too high": (mlp, {"lr": 5.0}, "lr_too_high", FAIL),
    "raw 0…255 pixels": (mlp, {"data": lambda x, y, raw: (raw.astype(np.float32), y)}, "inputs_not_preprocessed",
                         FAIL),
    "labels shuffled": (mlp, {"data": lambda x, y, raw: (x, np.random.default_rng(1).permutation(y))},
                        "labels_shuffled", FAIL),
    "labels offset by one": (mlp, {"data": lambda x, y, raw: (x, y + 1)}, "labels_out_of_range", FAIL),
    "a single class": (mlp, {"data": lambda x, y, raw: (x, np.full_like(y, 4)), "num_classes": 10},
                       "single_class", FAIL),
    "class imbalance": (mlp, {"data": lambda x, y, raw: _imbalanced(x, y)}, "class_imbalance", WARN),
    "NaN in the data": (mlp, {"data": lambda x, y, raw: (_nan(x), y)}, "nonfinite_inputs", FAIL),
    "blank images": (mlp, {"data": lambda x, y, raw: (np.zeros_like(x), y)}, "constant_inputs", FAIL),
    "zero init": (lambda: mlp(weights=init.zeros), {}, "symmetric_init", FAIL),
    "frozen net": (_frozen, {}, "frozen", FAIL),
    "missing nonlinearity": (lambda: mlp(act=Flatten), {}, "missing_nonlinearity", FAIL),
    "dropout p=0.95": (lambda: mlp(between=(lambda: Dropout(0.95, rng=np.random.default_rng(3)),)), {},
                       "regularization_too_strong", FAIL),
    "weight penalty 1.0": (mlp, {"penalty": st.nn.l2(1.0)}, "regularization_too_strong", FAIL),
    "penalty touches nothing": (lambda: Sequential(Flatten(), Affine(64, 64, np.random.default_rng(0)), ReLU(),
                                                   Affine(64, 10, np.random.default_rng(1))),
                                {"penalty": st.nn.l2(1e-3)}, "regularization_ineffective", FAIL),
    "BatchNorm momentum 0": (lambda: mlp(between=(lambda: BatchNorm(64, momentum=0.0),)), {}, "eval_mismatch", FAIL),
    "ReLU weights normal(1.0)": (lambda: mlp(weights=init.normal(1.0)), {}, "weights_too_large", FAIL),
    "last-layer bias": (_last_bias, {}, "bad_initial_loss", FAIL),
    "too small a model": (lambda: mlp(hidden=2), {}, "underfitting", FAIL),
    "60 training images": (lambda: mlp(hidden=256), {"data": lambda x, y, raw: (x[:60], y[:60]),
                                                     "val": lambda x, y, raw: (x[1000:], y[1000:])},
                           "overfitting", WARN),
    "batch of 4": (mlp, {"optimizer": "sgd", "lr": 0.1, "batch_size": 4}, "noisy_loss", WARN),
}


def run(digits, model, settings):
    x, y, raw = digits
    kw = {"data": (x, y), "optimizer": "momentum", "lr": LR, **settings}
    for key in ("data", "val"):
        if callable(kw.get(key)):
            kw[key] = kw[key](x, y, raw)
    return doctor(model, **kw)


def assert_one_story(report):
    """The causes named never point opposite ways, every finding belongs to one of them, and no two pieces of
    advice contradict each other."""
    d = report.diagnosis
    named = d.codes()
    assert all(c in CAUSES for c in named), named
    assert not any(conflicts(a, b) for a in named for b in named), named
    for v in report.verdicts:
        if v.status in (WARN, FAIL):
            assert v.cause in named, (v.check, v.cause, named)
    text = " ".join(report.advice()).lower()
    for a, b in (("too small", "too large"), ("too low", "too high"), ("saturat", "collapse"),
                 ("shuffled", "learning rate is too low"), ("overfitting", "underfitting"),
                 ("raise the learning rate", "lower the learning rate")):
        assert not (a in text and b in text), (a, b, text)


@pytest.mark.parametrize("name", list(FAULTS))
def test_planted_fault_is_diagnosed(digits, name):
    build, settings, cause, status = FAULTS[name]
    report = run(digits, build(), settings)
    assert report.diagnosis == cause, f"{name}: {report.diagnosis!r}\n{report}"
    assert report.diagnosis.status == status, str(report)
    assert report.diagnosis.evidence and report.diagnosis.advice
    assert_one_story(report)


def test_healthy_setup_is_healthy(digits):
    report = run(digits, mlp(), {})
    assert report.diagnosis == "healthy" and report.diagnosis.status == PASS, str(report)
    assert report.status == PASS and not report.diagnosis.consequences and not report.diagnosis.also
    assert str(report).startswith("diagnosis: healthy")


def test_the_issue_cases_name_their_visible_cause(digits):
    """Dead ReLUs: the share of zero outputs and the negative bias are named (the per-unit count alone missed
    them); saturation: the weight scale, and never 'collapse'; the crash on a constant layer output is gone."""
    dead = run(digits, FAULTS["negative bias kills ReLUs"][0](), {"checks": ("activations", "gradient_stats")})
    a = dead.get("activations")
    assert "of the outputs of layer 2 (ReLU()) are zero" in a.value and "negative bias" in a.advice
    assert "mean bias -3" in a.advice and dead.get("gradients").cause == "dead_units"
    sat = run(digits, FAULTS["saturated sigmoid"][0](), {"data": (3 * digits[0], digits[1]),
                                                          "checks": ("activations", "gradient_stats")})
    a = sat.get("activations")
    assert a.cause == "weights_too_large" and "saturated" in a.value and "RMS·√fan_in = 8" in a.advice
    assert "collapse" not in " ".join(sat.advice())


def test_consequences_are_listed_under_the_root(digits):
    report = run(digits, FAULTS["learning rate too low"][0](), FAULTS["learning rate too low"][1])
    curves = report.get("learning curves")
    # the curves alone would blame the labels or the rate; here they are a consequence of the rate
    assert curves.cause == "lr_too_low" and "shuffled" not in curves.advice
    assert report.diagnosis.evidence and any(c["check"] == "learning curves" or c["check"].startswith("update")
                                             for c in report.diagnosis.consequences + report.diagnosis.evidence)
    small = run(digits, FAULTS["weights too small, deep tanh"][0](), {})
    grads = small.get("gradients (at init)")
    assert grads.cause == "weights_too_small" and "saturated" not in grads.advice


def test_a_conv_net_with_raw_pixels(digits):
    """digits_net on unscaled images: the input check names the cause; the explosion is its consequence."""
    x, y, raw = digits
    model = st.models.get("digits_net", 10, 1, rng=np.random.default_rng(0), image_size=(8, 8))
    report = doctor(model, data=(raw.astype(np.float32), y), lr=LR, iterations=60, lr_finder_iters=60,
                    overfit_iters=60)
    assert report.diagnosis == "inputs_not_preprocessed" and report.diagnosis.status == FAIL
    assert_one_story(report)


def test_a_conv_net_without_nonlinearities(digits):
    rng = np.random.default_rng(0)
    model = Sequential(Conv2d(1, 8, 3, padding=1, rng=rng), Conv2d(8, 8, 3, padding=1, rng=rng), MaxPool2d(2),
                       Flatten(), Linear(128, 10, rng=rng))
    report = doctor(model, data=digits[:2], lr=LR, checks=("model",))
    assert report.diagnosis == "missing_nonlinearity" and report.diagnosis.status == WARN  # max-pool is nonlinear
    assert "layer 1 (Conv2d(8→8, 3×3, pad=1))" in report.diagnosis.advice
