"""The doctor's "dropout and batch norm" check: a BatchNorm after a dropout WARNs (variance shift), with the
measured shift of its input variance; dropout only after the last BatchNorm (the zoo nets) passes."""

import dataclasses

import numpy as np
import pytest

from striate.diagnose import doctor
from striate.diagnose.check import REGISTRY
from striate.diagnose.checks import bn_dropout
from striate.diagnose.context import Context
from striate.diagnose.thresholds import THRESHOLDS, BnDropout
from striate.diagnose.verdict import PASS, WARN
from striate.models.cifar import reference
from striate.models.vgg import vgg_cifar
from striate.nn.activation import ReLU
from striate.nn.containers import Sequential
from striate.nn.conv import Conv2d
from striate.nn.dropout import DropConnect, Dropout, Dropout2d
from striate.nn.linear import Linear
from striate.nn.norm import BatchNorm
from striate.nn.shape import Flatten


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).standard_normal((64, 8, 8, 3)).astype(np.float32)


def _drop_then_bn(p=0.5, drop=Dropout, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Conv2d(3, 8, 3, padding=1, rng=rng), ReLU(), drop(p, rng=rng),
                      Conv2d(8, 8, 3, padding=1, bias=False, rng=rng), BatchNorm(8), ReLU(),
                      Flatten(), Linear(8 * 8 * 8, 10, rng=rng))


def test_a_batchnorm_after_a_dropout_warns_with_the_measured_shift(images):
    net = _drop_then_bn()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    v = bn_dropout.judge(net, images)
    assert v.status == WARN and v.cause == "variance_shift"
    shift = v.details["shift"]["4"]
    assert shift["on"] > shift["off"] > 0 and shift["ratio"] == pytest.approx(shift["on"] / shift["off"])
    assert shift["ratio"] > 1.5  # p = 0.5 after a ReLU roughly doubles the variance
    assert "layer 4" in v.value and f"×{shift['ratio']:.3g}" in v.value
    assert "follows layer 2 (Dropout" in v.advice and "after the last BatchNorm" in v.advice  # reason + remedy
    assert all(np.array_equal(before[k], w) for k, w in net.state_dict().items())  # your model is not changed
    assert net.training


def test_spatial_dropout_counts_too(images):
    v = bn_dropout.judge(_drop_then_bn(drop=Dropout2d), images)
    assert v.status == WARN and v.details["after_dropout"] == ["4"]


def test_the_zoo_nets_pass(images):
    rng = np.random.default_rng(1)
    big = rng.standard_normal((16, 32, 32, 3)).astype(np.float32)
    for net, x in ((reference(image_size=8, width=0.125, rng=rng), images),
                   (vgg_cifar(11, width=0.0625, hidden=32, rng=rng), big)):
        v = bn_dropout.judge(net, x)
        assert v.status == PASS and v.value == "dropout only after the last BatchNorm", v.value
        assert v.details["dropouts"] and v.details["batchnorms"] and not v.details["after_dropout"]


def test_not_both_passes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 20)).astype(np.float32)
    for net in (Sequential(Linear(20, 16, rng=rng), ReLU(), Dropout(0.5, rng=rng), Linear(16, 3, rng=rng)),
                Sequential(Linear(20, 16, rng=rng), BatchNorm(16), ReLU(), Linear(16, 3, rng=rng)),
                Sequential(DropConnect(20, 16, 0.5, rng=rng), ReLU(), Linear(16, 3, rng=rng))):
        v = bn_dropout.judge(net, x)
        assert v.status == PASS and v.value == "not both"


def test_dropconnect_before_batchnorm_is_found():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    net = Sequential(DropConnect(20, 16, 0.5, rng=rng), BatchNorm(16), ReLU(), Linear(16, 3, rng=rng))
    v = bn_dropout.judge(net, x)
    assert v.details["after_dropout"] == ["1"] and v.details["shift"]["1"]["ratio"] > 1


def test_the_threshold_on_both_sides(images):
    ratio = bn_dropout.judge(_drop_then_bn(p=0.1), images).details["shift"]["4"]["ratio"]
    assert ratio > 1
    below = BnDropout(shift_warn=ratio * 1.001)  # the measured shift just under the threshold: harmless
    at = BnDropout(shift_warn=ratio)  # at it: WARN
    assert bn_dropout.judge(_drop_then_bn(p=0.1), images, below).status == PASS
    assert bn_dropout.judge(_drop_then_bn(p=0.1), images, at).status == WARN
    assert bn_dropout.judge(_drop_then_bn(p=0.0), images).status == PASS  # p = 0: no shift at all
    assert THRESHOLDS.bn_dropout.shift_warn > 1


def test_registered_and_run_by_the_doctor(images):
    assert list(REGISTRY).index("dropout and batch norm") == list(REGISTRY).index("model") + 1
    net, y = _drop_then_bn(), np.arange(64) % 10
    strict = dataclasses.replace(THRESHOLDS, bn_dropout=BnDropout(shift_warn=1.01))
    (v,) = REGISTRY["dropout and batch norm"].run(Context(net, None, images, y, thresholds=strict))
    assert v.status == WARN
    report = doctor(net, data=(images, y), checks=("dropout_and_batch_norm", "model"))
    assert [v.check for v in report.verdicts] == ["model", "dropout and batch norm"]
    assert report.diagnosis == "variance_shift"
