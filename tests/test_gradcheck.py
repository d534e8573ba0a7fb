import numpy as np

import striate as st
from tests.battery import Doubled


class BrokenLinear(st.nn.Linear):
    """A Linear whose weight gradient is wrong by a factor — the check must name it."""

    def _weight_grad(self, dw):
        self.weight.accumulate(0.9 * dw)


class Abs(st.nn.Module):
    def forward(self, x):
        self._save(x)
        return np.abs(x)

    def backward(self, dy):
        return np.sign(self._saved()) * dy


def test_detects_wrong_parameter_gradient(rng):
    net = st.nn.Sequential(st.nn.Linear(4, 5, rng=rng), BrokenLinear(5, 3, rng=rng))
    report = st.gradcheck(net, rng.standard_normal((3, 4)))
    assert not report.ok
    assert report.first_failure().name == "1.weight"
    assert report.errors["0.weight"] < 1e-6 and report.errors["1.weight"] > 0.05
    assert "FAIL 1.weight" in str(report)


def test_detects_wrong_input_gradient(rng):
    class Wrong(st.nn.Module):
        def forward(self, x):
            self._save(x)
            return x ** 3

        def backward(self, dy):
            return 2 * self._saved() ** 2 * dy

    report = st.gradcheck(Wrong(), rng.standard_normal((2, 3)))
    assert not report.ok and report.first_failure().name == "input"
    assert report.first_wrong_layer.where() == "Wrong()"  # a layer checked alone is its own first wrong layer


def test_kinks_are_skipped(rng):
    x = rng.standard_normal((4, 5))
    x[0, :3] = 0.0  # exactly on the kink of |x|
    report = st.gradcheck(Abs(), x)
    assert report.ok, str(report)
    assert report.tensors[0].kinks_skipped >= 3


def test_user_model_untouched_and_float32(rng):
    layer = st.nn.Linear(3, 2, rng=rng)
    before = layer.weight.data.copy()
    st.gradcheck(layer, rng.standard_normal((2, 3)).astype(np.float32))
    assert layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)


def test_plain_function(rng):
    x0 = rng.standard_normal((3, 3))
    report = st.gradcheck(np.tanh, x0, backward=lambda dy: dy * (1 - np.tanh(x0) ** 2))
    assert report.ok
    bad = st.gradcheck(np.tanh, x0, backward=lambda dy: dy)
    assert not bad.ok


def test_samples_large_tensors(rng):
    layer = st.nn.Linear(50, 40, rng=rng)
    report = st.gradcheck(layer, rng.standard_normal((2, 50)), max_checks=10)
    assert report.ok and all(t.checked <= 10 for t in report.tensors)


def test_exactly_zero_gradient_is_not_an_error(rng):
    # a conv bias feeding BatchNorm has a true gradient of exactly 0: BN removes any constant shift
    net = st.nn.Sequential(st.nn.Conv2d(2, 3, 3, rng=rng), st.nn.BatchNorm(3))
    report = st.gradcheck(net, rng.standard_normal((4, 5, 5, 2)))
    assert report.ok, str(report)
    assert report.errors["0.bias"] < 1e-5


class LeakyBackward(st.nn.ReLU):
    """A ReLU whose backward lets gradient through where its forward blocked it."""

    def backward(self, dy):
        return super().backward(dy) + 0.1 * dy


def test_names_the_first_layer_whose_own_backward_is_wrong(rng):
    net = st.nn.Sequential(st.nn.Linear(4, 6, rng=rng), st.nn.ReLU(), st.nn.Linear(6, 6, rng=rng), LeakyBackward(),
                           st.nn.Linear(6, 3, rng=rng))
    report = st.gradcheck(net, rng.standard_normal((5, 4)))
    assert not report.ok
    # the whole model's gradients are wrong below layer 3 too; each layer alone on its real input names layer 3
    assert report.errors["0.weight"] > 1e-3 and report.errors["4.weight"] < 1e-6
    assert report.first_wrong_layer.name == "3" and report.first_wrong_layer.layer == "LeakyBackward()"
    assert [layer.name for layer in report.layers if not layer.ok] == ["3"]
    assert "first wrong layer: layer 3 (LeakyBackward())" in str(report)
    broken = st.gradcheck(st.nn.Sequential(st.nn.Linear(4, 5, rng=rng), BrokenLinear(5, 3, rng=rng)),
                          rng.standard_normal((3, 4)))
    assert broken.first_wrong_layer.name == "1" and broken.first_wrong_layer.tensors[1].name == "weight"
    healthy = st.gradcheck(st.nn.Sequential(st.nn.Linear(4, 5, rng=rng), st.nn.Tanh()), rng.standard_normal((3, 4)))
    assert healthy.ok and healthy.first_wrong_layer is None and len(healthy.layers) == 2


def test_names_a_container_that_routes_gradients_wrongly(rng):
    net = st.nn.Sequential(st.nn.Linear(4, 5, rng=rng), Doubled(st.nn.Linear(5, 3, rng=rng)))
    report = st.gradcheck(net, rng.standard_normal((3, 4)))
    assert not report.ok and report.first_wrong_layer.name == "1"  # its only leaf, 1.child, passes alone
    assert report.first_wrong_layer.layer.startswith("Doubled") and [c.ok for c in report.layers[:2]] == [True, True]


def test_a_frozen_model_still_gets_its_input_checked(rng):
    net = st.nn.Sequential(st.nn.Linear(4, 5, rng=rng), st.nn.ReLU(), st.nn.Linear(5, 3, rng=rng))
    net.freeze(upto=3)
    report = st.gradcheck(net, rng.standard_normal((3, 4)))
    assert report.ok and [t.name for t in report.tensors] == ["input"]


def test_tiny_activations_are_not_read_as_a_wrong_backward():
    """Weights of 1e-3 make a deep ReLU net's activations about as small as the step h: kinks sit just inside
    [x − h, x + h] and bend the centred difference; a retry with smaller steps moves them out, so no layer is
    blamed and the doctor's check passes."""
    from striate.diagnose import PASS
    from striate.diagnose.checks import gradient_check

    d = st.data.load("digits")
    x = d.images.astype(np.float32) / 255
    x = x - x.mean()
    rng = np.random.default_rng(0)
    layers = [st.nn.Flatten()]
    for _ in range(6):
        layers += [st.nn.Linear(64, 64, init=st.nn.init.normal(1e-3), rng=rng), st.nn.ReLU()]
    net = st.nn.Sequential(*layers, st.nn.Linear(64, 10, init="xavier", rng=rng))
    report = st.gradcheck(net, x[:2], max_checks=6, layer_checks=24)
    assert all(layer.ok for layer in report.layers), str(report)
    assert gradient_check.judge(net, st.nn.SoftmaxCrossEntropy(), x, d.labels).status == PASS
