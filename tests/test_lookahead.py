"""Lookahead-style weight averaging copied back (optim.Lookahead, LookaheadAveraging, the `lookahead` options):
the decay schedule, one update against the formula (parameters, frozen ones and float buffers; integer buffers
untouched), a training loop against airbench's update done by torch on the same arrays, the final copy, the
saved state and an in-process resume after Ctrl-C mid-epoch."""

import os
import signal

import numpy as np
import pytest

import striate as st
from striate.data import DataLoader
from striate.nn.losses import SoftmaxCrossEntropy
from striate.optim import SGD, Lookahead, lookahead_decay
from striate.train import Callback, CheckpointStore, ModelCheckpoint, Trainer
from striate.train.callbacks import LookaheadAveraging


def tiny_net(seed=0):
    rng = np.random.default_rng(seed)
    return st.nn.Sequential(st.nn.Conv2d(2, 4, 3, padding=1, rng=rng), st.nn.BatchNorm(4), st.nn.ReLU(),
                            st.nn.Flatten(), st.nn.Linear(4 * 4 * 4, 3, rng=rng))


def tiny_data(n=40, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4, 4, 2)).astype(np.float32), rng.integers(0, 3, n)


def test_the_decay_schedule_is_airbenchs():
    assert lookahead_decay(0, 100) == 0.0
    assert lookahead_decay(100, 100) == pytest.approx(0.95 ** 5)
    assert lookahead_decay(50, 100, decay=0.9, every=2, power=1.0) == pytest.approx(0.81 * 0.5)
    assert lookahead_decay(150, 100) == lookahead_decay(100, 100)  # past the end it stays at decay^every
    torch = pytest.importorskip("torch")
    total = 37
    airbench = 0.95 ** 5 * (torch.arange(total + 1) / total) ** 3  # airbench94's alpha_schedule (float32)
    ours = [lookahead_decay(t, total) for t in range(total + 1)]
    np.testing.assert_allclose(ours, airbench.numpy(), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="total"):
        lookahead_decay(1, 0)


def test_one_update_is_the_lerp_on_parameters_and_float_buffers_then_copied_back():
    net = tiny_net()
    net[0].bias.requires_grad = False  # a frozen parameter is averaged too
    bn = net[1]
    la = Lookahead(net)
    assert "1.num_batches_tracked" not in la.average and "1.running_var" in la.average
    before = net.state_dict()
    rng = np.random.default_rng(5)
    for a in net._state_arrays().values():  # the network moves on (training would)
        a += rng.standard_normal(a.shape).astype(a.dtype) if a.dtype.kind == "f" else 7
    moved = net.state_dict()
    la.update(0.7)
    after = net.state_dict()
    for name in la.average:
        expected = before[name] + np.float32(0.3) * (moved[name] - before[name])
        np.testing.assert_array_equal(after[name], expected, err_msg=name)  # w' = 0.3 < 0.5: avg + w'·(w − avg)
        np.testing.assert_array_equal(la.average[name], after[name], err_msg=name)
        assert after[name].dtype == np.float32
    assert int(bn.num_batches_tracked) == int(moved["1.num_batches_tracked"])  # integer buffer untouched
    la.update(0.2)  # w' = 0.8: w − (1 − w')·(w − avg); w == avg already, so nothing moves
    np.testing.assert_array_equal(net.state_dict()["4.weight"], after["4.weight"])
    la.update(0.0)  # decay 0: the average is exactly the weights
    net[4].weight.data += 1
    w = net[4].weight.data.copy()
    la.update(0.0)
    np.testing.assert_array_equal(la.average["4.weight"], w)
    assert la.num_updates == 4 and "num_updates=4" in repr(la)


def test_finish_copies_the_average_in_and_the_state_round_trips():
    net = tiny_net()
    la = Lookahead(net)
    start = net.state_dict()
    net[4].weight.data *= 3
    net[1].running_mean[...] = 5
    net[1].num_batches_tracked[...] = 9
    la.finish()
    now = net.state_dict()
    for name in la.average:
        np.testing.assert_array_equal(now[name], start[name])
    assert int(now["1.num_batches_tracked"]) == 9
    net[4].weight.data += 1
    la.update(0.5)
    other = Lookahead(tiny_net(seed=3)).load_state_dict(la.state_dict())
    assert other.num_updates == 1
    for name, a in la.state_arrays().items():
        np.testing.assert_array_equal(other.average[name], a)
    with pytest.raises(KeyError, match="missing entries"):
        other.load_state_dict({"num_updates": 0, "average": {"4.weight": la.average["4.weight"]}})
    bad = la.state_dict()
    bad["average"]["4.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(bad)


def _airbench_loop(net, x, y, batch, epochs, every, lr):
    """airbench94's loop on a striate net: SGD steps by hand, and its LookaheadState.update done by torch on the
    net's own arrays (torch.from_numpy shares their memory), with its decay per step 0.95."""
    torch = pytest.importorskip("torch")
    loss, opt = SoftmaxCrossEntropy(), SGD(net, lr=lr, momentum=0.9)
    total = (len(x) // batch) * epochs
    alpha_schedule = 0.95 ** every * (torch.arange(total + 1) / total) ** 3  # airbench: every = 5
    state = {n: torch.from_numpy(a) for n, a in net._state_arrays().items()}
    net_ema = {n: t.clone() for n, t in state.items()}

    def update(decay):
        for n, p in state.items():
            if p.dtype in (torch.half, torch.float):
                net_ema[n].lerp_(p, 1 - decay)
                p.copy_(net_ema[n])

    current = 0
    for _ in range(epochs):
        for i in range(0, len(x), batch):
            opt.zero_grad()
            loss(net.forward(x[i:i + batch]), y[i:i + batch])
            net.backward(loss.backward())
            opt.step()
            current += 1
            if current % every == 0:
                update(alpha_schedule[current].item())
            if current == total:
                update(1.0)
    return net


def test_training_with_the_callback_equals_airbenchs_loop():
    x, y = tiny_data()
    every, epochs, batch = 3, 2, 10  # 8 steps: updates after 3 and 6, the last 2 dropped at the end
    ref = _airbench_loop(tiny_net(), x, y, batch, epochs, every, lr=0.05)
    net = tiny_net()
    cb = LookaheadAveraging(every=every)
    trainer = Trainer(net, SoftmaxCrossEntropy(), SGD(net, lr=0.05, momentum=0.9), callbacks=[cb], progress=False)
    trainer.fit(DataLoader(x, y, batch, shuffle=False), epochs=epochs)
    assert cb.total == 8 and cb.lookahead.num_updates == 2
    a, b = net.state_dict(), ref.state_dict()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)  # torch.lerp fuses (FMA)
    for name, avg in cb.lookahead.average.items():
        np.testing.assert_array_equal(a[name], avg, err_msg=name)  # finished: the network is the average


class SignalAt(Callback):
    def __init__(self, iteration):
        self.iteration = iteration

    def on_batch_end(self, batch, logs):
        if logs["iteration"] == self.iteration:
            os.kill(os.getpid(), signal.SIGINT)


def _trainer(directory, extra=()):
    net = tiny_net()
    x, y = tiny_data()
    loader = DataLoader(x, y, 8, rng=np.random.default_rng(4))
    callbacks = [LookaheadAveraging(every=2, decay=0.9, power=2.0), ModelCheckpoint(directory), *extra]
    return Trainer(net, SoftmaxCrossEntropy(), SGD(net, lr=0.05, momentum=0.9), callbacks=callbacks,
                   progress=False), loader


def test_ctrl_c_mid_epoch_then_a_resume_equals_the_run_in_one_go(tmp_path):
    ref, loader = _trainer(tmp_path / "ref")
    ref.fit(loader, epochs=3)
    t, loader = _trainer(tmp_path / "run", extra=[SignalAt(7)])  # 5 steps an epoch: stopped at step 2 of epoch 2
    t.fit(loader, epochs=3)
    assert t.interrupted == signal.SIGINT
    saved = CheckpointStore(tmp_path / "run").load("last").state["callbacks"]["LookaheadAveraging"]
    assert saved["num_updates"] == 3 and "0.weight" in saved["average"]
    resumed, loader = _trainer(tmp_path / "run")
    resumed.restore(tmp_path / "run")
    resumed.fit(loader, epochs=3)
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_the_run_options_make_the_callback_and_bad_values_are_refused():
    from striate.run import config as cfg
    from striate.run.callbacks import run_callbacks

    config = cfg.resolve({"lookahead": 5, "lookahead_decay": 0.9, "lookahead_power": 2}, where="run.toml")
    made = [c for c in run_callbacks(config, None, {}, 10, has_val=False, steps_per_epoch=4, writers=False)
            if isinstance(c, LookaheadAveraging)]
    assert [(c.every, c.decay, c.power) for c in made] == [(5, 0.9, 2.0)]
    assert not any(isinstance(c, LookaheadAveraging) for c in run_callbacks(
        cfg.resolve({}), None, {}, 10, has_val=False, steps_per_epoch=4, writers=False))
    with pytest.raises(cfg.ConfigError, match="lookahead_decay"):
        cfg.resolve({"lookahead_decay": 1.5}, where="run.toml")
    with pytest.raises(cfg.ConfigError, match="lookahead"):
        cfg.resolve({"lookahead": -1}, where="run.toml")
    with pytest.raises(ValueError, match="every"):
        LookaheadAveraging(every=0)
