"""The doctor's checks of the data and of the model's construction: `check_inputs` (which training's start-up
warnings reuse) and the model's construction (`checks/model.py`)."""

import numpy as np
import pytest

import striate as st
from striate.diagnose import FAIL, PASS, SKIP, WARN, check_inputs
from striate.diagnose.checks.model import judge as check_model
from striate.models import registry

# at collection: the built-in models (other tests register probes while they run); "layers" builds a run
# file's layer list, which it needs
ZOO = [name for name in registry.names() if name != "layers"]


@pytest.fixture(scope="module")
def digits():
    d = st.data.load("digits")
    x = d.images.astype(np.float32) / 255
    return x - x.mean(), d.labels.astype(np.int64), d.images


def by_check(verdicts):
    return {v.check: v for v in verdicts}


def test_clean_digits_pass(digits):
    x, y, _ = digits
    out = check_inputs(x, y, 10)
    assert [v.check for v in out] == ["inputs", "labels", "labels match inputs"]
    assert all(v.status == PASS for v in out) and not [v for v in out if not v.ok]
    assert out[2].details["z"] > 20 and out[2].details["accuracy"] > 0.9


def test_inputs_not_preprocessed(digits):
    x, y, raw = digits
    v = by_check(check_inputs(raw.astype(np.float32), y, 10))["inputs"]
    assert v.status == FAIL and v.cause == "inputs_not_preprocessed" and "raw values 0 … 255" in v.advice
    assert "÷ 255" in v.advice
    offset = by_check(check_inputs(x + 50, y, 10))["inputs"]
    assert offset.status == FAIL and "subtract the mean" in offset.advice
    assert by_check(check_inputs(3 * x, y, 10))["inputs"].status == PASS  # ×3 is still unit scale
    tiny = by_check(check_inputs(x / 255, y, 10))["inputs"]
    assert tiny.status == FAIL and tiny.cause == "inputs_not_preprocessed" and "tiny" in tiny.advice


def test_nonfinite_and_blank_inputs(digits):
    x, y, _ = digits
    bad = x.copy()
    bad[12, 2, 3, 0], bad[40, 0, 0, 0] = np.nan, np.inf
    v = by_check(check_inputs(bad, y, 10))["inputs"]
    assert v.status == FAIL and v.cause == "nonfinite_inputs" and "2 NaN/inf value(s) in 2 sample(s)" in v.value
    assert v.details["samples"] == [12, 40]
    assert by_check(check_inputs(bad, y, 10))["labels match inputs"].status == PASS  # judged on the finite rows
    blank = by_check(check_inputs(np.zeros_like(x), y, 10))["inputs"]
    assert blank.status == FAIL and blank.cause == "constant_inputs"


def test_label_problems(digits):
    x, y, _ = digits
    off = by_check(check_inputs(x, y + 1, 10))["labels"]
    assert off.status == FAIL and off.cause == "labels_out_of_range" and "offset by one?" in off.advice
    one = check_inputs(x, np.full_like(y, 7), 10)
    assert one[1].status == FAIL and one[1].cause == "single_class" and one[2].status == SKIP
    keep = (y < 5) | (np.arange(len(y)) % 8 == 0)
    imb = by_check(check_inputs(x[keep], y[keep], 10))["labels"]
    assert imb.status == WARN and imb.cause == "class_imbalance" and imb.details["ratio"] >= 5
    few = by_check(check_inputs(x[:60], y[:60], 10))["labels"]  # ~6 per class: a 5× ratio there is noise
    assert few.status == PASS


def test_shuffled_labels_are_caught_without_a_model(digits):
    x, y, _ = digits
    shuffled = by_check(check_inputs(x, np.random.default_rng(0).permutation(y), 10))["labels match inputs"]
    assert shuffled.status == FAIL and shuffled.cause == "labels_shuffled" and shuffled.details["z"] < 2
    rolled = by_check(check_inputs(x, np.roll(y, 1), 10))["labels match inputs"]  # images and labels misaligned
    assert rolled.status in (WARN, FAIL) and rolled.cause == "labels_shuffled"
    val = (x[1100:], np.random.default_rng(1).permutation(y[1100:]))
    out = by_check(check_inputs(x[:1100], y[:1100], 10, val=val))
    assert out["labels match inputs"].status == PASS
    assert out["validation labels match"].status == FAIL and out["validation labels match"].cause == "labels_shuffled"


def test_large_inputs_are_subsampled_and_one_hot_labels_refused():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (rng.standard_normal((300, 40, 40, 3)) + 3 * y[:, None, None, None]).astype(np.float32)
    out = check_inputs(x, y, 3)  # 4800 features: an evenly strided subset for the 1-NN test
    assert out[2].status == PASS
    with pytest.raises(ValueError, match="one-hot"):
        check_inputs(x, np.eye(3)[y], 3)


def test_start_up_warnings_reuse_it(digits):
    """How training's start-up warnings call it: the problems only, each with its advice."""
    x, y, raw = digits
    problems = [v for v in check_inputs(raw.astype(np.float32), y, 10) if not v.ok]
    assert [v.cause for v in problems] == ["inputs_not_preprocessed"] and problems[0].advice


def mlp(rng, *layers):
    return st.nn.Sequential(st.nn.Flatten(), *layers, st.nn.Linear(16, 10, rng=rng))


def test_model_construction(rng):
    lin = st.nn.Linear
    assert check_model(mlp(rng, lin(64, 16, rng=rng), st.nn.ReLU())).status == PASS
    frozen = mlp(rng, lin(64, 16, rng=rng), st.nn.ReLU()).freeze(upto=4)
    assert check_model(frozen).cause == "frozen"
    zero = check_model(mlp(rng, lin(64, 16, init="zeros", rng=rng), st.nn.ReLU()))
    assert zero.status == FAIL and zero.cause == "symmetric_init" and "every value of 1.weight is 0" in zero.value
    # a zero last layer is fine: the hidden units below it already differ
    head = mlp(rng, lin(64, 16, rng=rng), st.nn.ReLU())
    head[3].weight.data[:] = 0
    assert check_model(head).status == PASS
    linear = check_model(mlp(rng, lin(64, 16, rng=rng), st.nn.Dropout(0.2)))
    assert linear.status == FAIL and linear.cause == "missing_nonlinearity" and "whole model is linear" in linear.advice
    drop = check_model(mlp(rng, lin(64, 16, rng=rng), st.nn.ReLU(), st.nn.Dropout(0.95)))
    assert drop.status == FAIL and drop.cause == "regularization_too_strong" and "drops 95 %" in drop.value
    assert check_model(mlp(rng, lin(64, 16, rng=rng), st.nn.ReLU(), st.nn.Dropout(0.8))).status == WARN
    for momentum, status in ((0.0, FAIL), (0.99, WARN), (1e-4, WARN), (0.1, PASS), (None, PASS)):
        bn = check_model(mlp(rng, lin(64, 16, rng=rng), st.nn.BatchNorm(16, momentum=momentum), st.nn.ReLU()))
        assert bn.status == status and bn.cause == ("" if status == PASS else "eval_mismatch"), momentum


def test_every_zoo_model_is_built_to_learn():
    for name in ZOO:
        kw = {"width": 0.125} if "width" in (registry.keywords(name) or {}) else {}
        model = registry.get(name, 10, 3, rng=np.random.default_rng(0), **kw)
        v = check_model(model)
        assert v.status == PASS, (name, v)
