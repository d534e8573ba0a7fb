"""Choice of convolution algorithm per shape and pass: the rule, forced modes, autotune, the exported table,
and a resume that computes with the algorithms recorded in its checkpoint whatever STRIATE_CONV_ALGO says."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import striate as st
from striate.kernels import conv_algorithm as ca
from striate.kernels.winograd import choose
from striate.nn.conv import Conv2d
from striate.train.checkpoint import CheckpointError, CheckpointStore


@pytest.fixture(autouse=True)
def fresh_table():
    """Each test starts from the default mode and an empty table, and leaves them so."""
    st.set_conv_algorithm("rule")
    yield
    st.set_conv_algorithm("rule")


def _conv_and_data(rng, c=16, f=16, n=16, h=8):
    conv = Conv2d(c, f, 3, padding=1, bias=True, rng=rng)
    return conv, rng.standard_normal((n, h, h, c)).astype(np.float32)


def test_the_rule_is_winograd_choose_per_pass(rng):
    conv, x = _conv_and_data(rng, c=32, f=32, n=32)
    y = conv(x)
    conv.backward(np.ones_like(y))
    for which in ("fwd", "dx", "dw"):
        assert conv.algorithms[which] == choose(32, 8, 8, 32, 32, which=which)
    assert set(conv.algorithms.values()) <= set(ca.ALGORITHMS)
    assert "winograd" in conv.algorithms["fwd"]  # this shape is one Winograd wins on
    assert Conv2d(32, 16, 5, padding=2, rng=rng)(x) is not None  # 5×5: im2col
    assert ca.conv_algorithms()["choices"][ca.conv_key("fwd", x.shape, (5, 5, 32, 16), 1, 2, x.dtype)] == "im2col"


@pytest.mark.parametrize("mode", ["im2col", "winograd", "winograd2", "winograd4"])
def test_forced_modes_agree_with_im2col(rng, mode):
    conv, x = _conv_and_data(rng)
    dy = rng.standard_normal((16, 8, 8, 16)).astype(np.float32)
    st.set_conv_algorithm("im2col")
    y0, dx0 = conv(x), conv.backward(dy)
    dw0 = conv.weight.grad.copy()
    conv.zero_grad()
    st.set_conv_algorithm(mode)
    y, dx = conv(x), conv.backward(dy)
    expected = {"fwd": mode, "dw": mode, "dx": mode}
    if mode == "winograd":  # F(4×4) where accurate: not for dw at 16 channels
        expected = {"fwd": "winograd4", "dw": "winograd2", "dx": "winograd4"}
    assert conv.algorithms == expected
    scale = np.abs(y0).max()
    assert np.abs(y - y0).max() < 1e-4 * scale
    assert np.abs(dx - dx0).max() < 1e-4 * np.abs(dx0).max()
    assert np.abs(conv.weight.grad - dw0).max() < 1e-4 * np.abs(dw0).max()


def test_forced_winograd_leaves_other_shapes_to_im2col(rng):
    st.set_conv_algorithm("winograd")
    conv = Conv2d(4, 4, 3, stride=2, padding=1, rng=rng)
    y = conv(rng.standard_normal((2, 9, 9, 4)).astype(np.float32))
    conv.backward(np.ones_like(y))
    assert conv.algorithms == {"fwd": "im2col", "dw": "im2col", "dx": "im2col"}


def test_autotune_picks_a_candidate_and_keeps_it(rng):
    st.set_conv_algorithm("autotune")
    conv, x = _conv_and_data(rng, n=32)
    y = conv(x)
    first = dict(conv.algorithms)
    assert first["fwd"] in ca.candidates("fwd", 32, 8, 8, 16, 16, 3, 3, 1, 1)
    st.set_conv_algorithm("im2col")
    y_ref = conv(x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4 * np.abs(y_ref).max())
    ca.load_conv_algorithms({"mode": "autotune", "choices": {ca.conv_key("fwd", x.shape, conv.weight.shape, 1, 1,
                                                                          x.dtype): first["fwd"]}})
    conv(x)
    assert conv.algorithms["fwd"] == first["fwd"]  # a recorded choice is not timed again


def test_mode_from_the_environment(monkeypatch):
    monkeypatch.setattr(ca, "_mode", None)
    monkeypatch.setenv("STRIATE_CONV_ALGO", "Winograd2")
    assert st.get_conv_algorithm() == "winograd2"
    monkeypatch.setattr(ca, "_mode", None)
    monkeypatch.setenv("STRIATE_CONV_ALGO", "fastest")
    with pytest.raises(ValueError, match="STRIATE_CONV_ALGO.*autotune.*'fastest'"):
        st.get_conv_algorithm()
    monkeypatch.setattr(ca, "_mode", None)
    with pytest.raises(ValueError, match="one of rule, autotune, im2col"):
        st.set_conv_algorithm("gemm")


def test_exported_table_round_trips_and_pins(rng):
    conv, x = _conv_and_data(rng, n=32)
    conv(x)
    table = ca.conv_algorithms()
    assert table["mode"] == "rule" and len(table["choices"]) == 1
    key = next(iter(table["choices"]))
    st.set_conv_algorithm("im2col")  # forgets the choices
    assert ca.conv_algorithms() == {"mode": "im2col", "choices": {}}
    ca.load_conv_algorithms({"mode": "im2col", "choices": {key: "winograd2"}})
    conv(x)
    assert conv.algorithms["fwd"] == "winograd2"  # pinned, although the mode says im2col
    conv(x[:8])  # another shape: the mode decides
    assert conv.algorithms["fwd"] == "im2col"


@pytest.mark.parametrize(("table", "message"), [
    ({"mode": "rule", "choices": {"fwd 2x8x8x4 k3x3x4 s1 p1 float32": "fft"}}, "algorithm 'fft'"),
    ({"mode": "rule", "choices": {"fwd 2x8x8x4 k5x5x4 s1 p2 float32": "winograd2"}}, "cannot be computed by"),
    ({"mode": "rule", "choices": {"forward of a conv": "im2col"}}, "malformed key"),
    ({"mode": "fast", "choices": {}}, "one of rule"),
    ({"choices": None}, "expected"),
])
def test_bad_tables_are_refused_whole(table, message):
    st.set_conv_algorithm("winograd2")
    with pytest.raises(ValueError, match=message):
        ca.load_conv_algorithms(table)
    assert ca.conv_algorithms() == {"mode": "winograd2", "choices": {}}


def test_trainer_state_records_and_restores_the_table(rng):
    from striate.train import Trainer

    net = st.nn.Sequential(Conv2d(16, 16, 3, padding=1, rng=rng), st.nn.Flatten(), st.nn.Linear(1024, 3, rng=rng))
    trainer = Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net.parameters(), lr=0.1))
    x = rng.standard_normal((32, 8, 8, 16)).astype(np.float32)
    trainer.train_step(x, rng.integers(0, 3, 32))
    state = trainer.state_dict()
    assert state["conv_algorithms"] == ca.conv_algorithms()
    assert len(state["conv_algorithms"]["choices"]) == 2  # fwd and dw: the first layer computes no dx
    st.set_conv_algorithm("im2col")
    trainer.load_state_dict(state)
    assert ca.conv_algorithms() == state["conv_algorithms"]
    # a checkpoint from before the choice existed computed everything by im2col
    del state["conv_algorithms"]
    trainer.load_state_dict(state)
    assert ca.conv_algorithms() == {"mode": "im2col", "choices": {}}
    state["conv_algorithms"] = {"mode": "rule", "choices": {"dx 1x1x1x1 k3x3x1 s2 p1 float32": "winograd4"}}
    with pytest.raises(CheckpointError, match="'conv_algorithms'.*cannot be computed"):
        trainer.load_state_dict(state)


def _train(env, *args):
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**{k: v for k, v in os.environ.items() if k != "STRIATE_CONV_ALGO"}, **env,
           "PYTHONPATH": src + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}
    r = subprocess.run([sys.executable, "-m", "striate", "train", *args], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_resume_under_another_setting_computes_with_the_recorded_algorithms(tmp_path):
    """Trained with STRIATE_CONV_ALGO=winograd, resumed with =im2col: bit-identical to the straight run, because
    the resume adopts the checkpoint's table; ignoring it (a fresh run under im2col) gives other weights."""
    wino, im2col = {"STRIATE_CONV_ALGO": "winograd", "STRIATE_NUM_THREADS": "1"}, \
        {"STRIATE_CONV_ALGO": "im2col", "STRIATE_NUM_THREADS": "1"}
    new = ["--seed", "1", "--report", "off", "--limit", "256", "--batch-size", "64"]
    _train(wino, *new, "--epochs", "2", "--out", str(tmp_path / "straight"))
    _train(wino, *new, "--epochs", "1", "--out", str(tmp_path / "resumed"))
    _train(im2col, "--resume", str(tmp_path / "resumed"), "--epochs", "2")
    _train(im2col, *new, "--epochs", "2", "--out", str(tmp_path / "other"))
    a, b, c = (CheckpointStore(tmp_path / d / "checkpoints").load("last") for d in ("straight", "resumed", "other"))
    assert a.state["conv_algorithms"] == b.state["conv_algorithms"]
    assert set(a.state["conv_algorithms"]["choices"].values()) >= {"winograd4", "winograd2"}
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert not all(np.array_equal(a.weights[k], c.weights[k]) for k in a.weights)


def test_eval_mode_keeps_the_filter_transform_only_while_the_weights_stay(rng):
    st.set_conv_algorithm("winograd")
    conv, x = _conv_and_data(rng)
    conv.eval()
    y1 = conv(x)
    assert conv(x) is not y1 and np.array_equal(conv(x), y1)
    conv.weight.data *= 2  # in place, as an optimizer step
    np.testing.assert_allclose(conv(x) - conv.bias.data, 2 * (y1 - conv.bias.data), rtol=1e-5, atol=1e-5)
    conv.to(np.float64)
    assert conv(x.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize(("c", "f", "k", "pad"), [(2, 9, 3, 1), (1, 6, 5, 0), (3, 16, 5, 2), (4, 4, 3, 1)])
def test_input_gradient_by_col2im_and_by_full_correlation(rng, c, f, k, pad):
    """dx picks GEMM + col2im when F ≥ 4·C (fewer columns), the full correlation otherwise: both exact."""
    from striate.kernels.conv import _input_grad_col2im, conv2d_input_grad
    from striate.kernels.reference import conv2d_backward_naive

    x = rng.standard_normal((2, 7, 6, c))
    w = rng.standard_normal((k, k, c, f))
    dy = rng.standard_normal((2, 7 + 2 * pad - k + 1, 6 + 2 * pad - k + 1, f))
    expected = conv2d_backward_naive(dy, x, w, 1, pad)[0]
    np.testing.assert_allclose(conv2d_input_grad(dy, w, 1, pad, x.shape), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(_input_grad_col2im(dy, w, pad, x.shape), expected, rtol=1e-10, atol=1e-10)
