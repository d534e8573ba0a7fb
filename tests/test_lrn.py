import numpy as np
import pytest

from striate.kernels.lrn import lrn_backward, lrn_forward
from striate.kernels.reference import lrn_naive
from striate.nn.errors import LayerError
from striate.nn.lrn import LocalResponseNorm
from tests import battery

CASES = [(5, 1e-4, 0.75, 1.0), (5, 5e-4, 0.75, 2.0), (4, 0.3, 0.5, 1.0), (3, 1.0, 1.0, 0.5), (1, 0.2, 0.75, 1.0)]


def make(rng, dtype=np.float32, case=CASES[0], c=7):
    size, alpha, beta, k = case
    # large values so the normaliser matters (AlexNet applies it to unnormalised ReLU outputs)
    x = (3 * rng.standard_normal((2, 4, 5, c))).astype(dtype)
    return LocalResponseNorm(size, alpha, beta, k), x


@pytest.mark.parametrize("case", CASES)
def test_gradients(rng, case):
    layer, x = make(rng, np.float64, case)
    battery.gradients_ok(layer, x)


@pytest.mark.parametrize("case", CASES)
def test_fast_matches_naive(rng, case):
    _, x = make(rng, np.float64, case)
    y, _ = lrn_forward(x, *case)
    np.testing.assert_allclose(y, lrn_naive(x, *case), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES + [(9, 0.5, 0.75, 1.0)])  # window wider than the 7 channels
def test_matches_torch(rng, torch, case):
    layer, x = make(rng, np.float32, case)
    y = layer(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    tx = battery.nchw(x)
    ty = torch.nn.LocalResponseNorm(*case)(tx)
    ty.backward(battery.nchw(dy).detach())
    np.testing.assert_allclose(y, battery.nhwc(ty), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, battery.nhwc(tx.grad), rtol=1e-4, atol=1e-5)


def test_backward_matches_finite_difference_of_kernel(rng):
    x = rng.standard_normal((1, 2, 2, 6))
    y, cache = lrn_forward(x, 4, 0.7, 0.75, 1.0)
    dy = rng.standard_normal(y.shape)
    dx = lrn_backward(dy, cache)
    eps, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        diff = lrn_forward(xp, 4, 0.7, 0.75, 1.0)[0] - lrn_forward(xm, 4, 0.7, 0.75, 1.0)[0]
        num[i] = (diff * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_battery(rng):
    layer, x = make(rng)
    battery.float32_in_out(layer, x)
    battery.output_shape_matches(layer, x)
    battery.batched_equals_per_sample(layer, x)
    battery.state_dict_round_trip(lambda r: LocalResponseNorm(5))
    battery.repr_ok(layer, "LocalResponseNorm(size=5, alpha=0.0001, beta=0.75, k=1)")
    assert layer.macs(x.shape) == 0 and layer.num_parameters() == 0
    # works on (N, D) features too, and train/eval agree (no state)
    f = x.reshape(40, 7)
    layer.eval()
    np.testing.assert_array_equal(layer(f), lrn_forward(f, 5, 1e-4, 0.75, 1.0)[0])


def test_bad_inputs(rng):
    layer, x = make(rng)
    battery.bad_input_names_layer(layer, x[0, 0, 0], "expected input (N, H, W, C)")
    battery.wrong_dtype_rejected(layer, x)
    with pytest.raises(ValueError, match="size"):
        LocalResponseNorm(0)
    with pytest.raises(LayerError):
        layer.output_shape((3,))
