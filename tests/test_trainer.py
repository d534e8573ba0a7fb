"""Trainer: exact resume (in-process, after Ctrl-C mid-epoch, and across SIGKILL / SIGTERM of a subprocess),
the explosion guard, early stopping, evaluation mode, history and metrics."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from striate.data import Compose, DataLoader, PerChannelMean, RandomCrop, RandomFlip, Scale, load
from striate.nn.activation import ReLU
from striate.nn.containers import Sequential
from striate.nn.conv import Conv2d
from striate.nn.dropout import Dropout
from striate.nn.linear import Linear
from striate.nn.losses import SoftmaxCrossEntropy
from striate.nn.norm import BatchNorm
from striate.nn.pool import MaxPool2d
from striate.nn.shape import Flatten
from striate.optim import SGD, Adam, schedules
from striate.train import (
    Callback,
    CheckpointStore,
    EarlyStopping,
    ExplosionGuard,
    History,
    ModelCheckpoint,
    Trainer,
    confusion_matrix,
    per_class_accuracy,
    top_k,
)

N_TRAIN = 320


@pytest.fixture(scope="module")
def digits():
    ds = load("digits", "train")
    pre = [Scale(1 / 255), PerChannelMean()]
    x = ds.images[:N_TRAIN]
    for p in pre:
        x = p.fit_transform(x)
    vx = ds.images[N_TRAIN:N_TRAIN + 160]
    for p in pre:
        vx = p.transform(vx)
    return ds.images[:N_TRAIN], ds.labels[:N_TRAIN], pre, (vx, ds.labels[N_TRAIN:N_TRAIN + 160])


def small_net(seed=0):
    """Conv, BatchNorm (buffers), pooling and Dropout (its own generator) on 8×8×1."""
    rng = np.random.default_rng(seed)
    return Sequential(Conv2d(1, 8, 3, padding=1, rng=rng), BatchNorm(8), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(128, 32, rng=rng), ReLU(), Dropout(0.3, rng=np.random.default_rng(seed + 1)),
                      Linear(32, 10, rng=rng))


def make_trainer(digits, directory, extra=(), lr=3e-3, opt="adam", seed=0):
    x, y, pre, val = digits
    model = small_net(seed)
    loader = DataLoader(x, y, 32, rng=np.random.default_rng(seed + 5),
                        transform=Compose([RandomCrop(8, padding=1), RandomFlip(), *pre]))
    optimizer = Adam(model, lr=lr) if opt == "adam" else SGD(model, lr=lr, momentum=0.9)
    schedule = schedules.warmup(schedules.cosine(lr, 3 * len(loader)), len(loader))
    callbacks = [ExplosionGuard(), History(directory / "metrics.jsonl"), ModelCheckpoint(directory / "ck"), *extra]
    return Trainer(model, SoftmaxCrossEntropy(), optimizer, schedule=schedule, callbacks=callbacks), loader, val


def assert_same_state(a: Trainer, b: Trainer):
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)  # bit-identical, buffers included
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["step_count"] == sb["step_count"]
    for i in sa["state"]:
        for k in sa["state"][i]:
            np.testing.assert_array_equal(sa["state"][i][k], sb["state"][i][k])


def test_resume_after_k_epochs_is_bit_identical(digits, tmp_path):
    ref, loader, val = make_trainer(digits, tmp_path / "ref")
    ref.fit(loader, val, epochs=3)

    first, loader, val = make_trainer(digits, tmp_path / "run")
    first.fit(loader, val, epochs=1)
    assert CheckpointStore(tmp_path / "run" / "ck").load().state["progress"]["epoch"] == 1

    resumed, loader, val = make_trainer(digits, tmp_path / "run", seed=99)  # different init: all comes from disk
    resumed.restore(tmp_path / "run" / "ck")  # a directory: its 'last' checkpoint
    assert resumed.epoch == 1 and resumed.iteration == len(loader)
    resumed.fit(loader, val, epochs=3)
    assert resumed.epoch == 3
    assert_same_state(ref, resumed)
    # the history file of the resumed run matches the uninterrupted one line for line
    lines = lambda d: [json.loads(s) for s in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    strip = lambda recs: [{k: v for k, v in r.items() if k != "time"} for r in recs]  # noqa: E731
    assert strip(lines("ref")) == strip(lines("run"))
    assert [r["epoch"] for r in lines("run") if r["type"] == "epoch"] == [1, 2, 3]


class SignalAt(Callback):
    """Sends a real signal to this process after a given iteration."""

    def __init__(self, iteration, signum=signal.SIGINT):
        self.iteration, self.signum = iteration, signum

    def on_batch_end(self, batch, logs):
        if logs["iteration"] == self.iteration:
            os.kill(os.getpid(), self.signum)


def test_ctrl_c_mid_epoch_saves_and_resumes_exactly(digits, tmp_path):
    ref, loader, val = make_trainer(digits, tmp_path / "ref")
    ref.fit(loader, val, epochs=2)

    steps = len(loader)
    t, loader, val = make_trainer(digits, tmp_path / "run", extra=[SignalAt(steps + 3)])
    t.fit(loader, val, epochs=2)
    assert t.interrupted == signal.SIGINT and "interrupted by SIGINT" in t.stop_reason
    assert (t.epoch, t.batch, t.iteration) == (1, 3, steps + 3)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    ck = CheckpointStore(tmp_path / "run" / "ck").load("last")
    assert ck.state["progress"]["batch"] == 3 and ck.state["loader"]["batch"] == 3

    resumed, loader, val = make_trainer(digits, tmp_path / "run")
    resumed.restore(ck)
    resumed.fit(loader, val, epochs=2)
    assert_same_state(ref, resumed)
    assert resumed.callback(History).epochs[-1]["loss"] == ref.callback(History).epochs[-1]["loss"]


def test_explosion_guard_stops_within_one_step_and_never_saves(digits, tmp_path):
    t, loader, val = make_trainer(digits, tmp_path, opt="sgd", lr=0.05)
    t.schedule = None
    t.fit(loader, val, epochs=1)
    good = CheckpointStore(tmp_path / "ck").load("last")
    t.optimizer.lr = 1e4  # far too high: the loss explodes within a few steps
    t.fit(loader, val, epochs=3)
    assert t.diverged and t.stop_training
    hist = t.callback(History).iterations
    bad = [r for r in hist if not math.isfinite(r["loss"]) or r["loss"] > 3 * hist[0]["loss"]]
    assert bad and hist[-1] is bad[0], "training went on after the first exploded step"
    assert t.iteration == bad[0]["iteration"]
    msg = t.stop_reason
    assert "epoch 2" in msg and f"step {t.batch}" in msg and "lr 1e+04" in msg and "lower learning rate" in msg
    store = CheckpointStore(tmp_path / "ck")
    assert store.load("last").generation == good.generation  # the bad state was never saved
    assert store.load("best").generation == good.generation


class ExplodeOnLastStep(Callback):
    """Multiplies the weights by 1e3 right after the update of an epoch's last step, as an exploding update
    there would: the step's own loss (measured before the update) looks healthy."""

    order = -200  # before the guard, which then sees the next state

    def on_batch_end(self, batch, logs):
        t = self.trainer
        if t.epoch == 1 and batch == len(t.train_data) - 1:
            for p in t.model.parameters():
                p.data *= 1e3


@pytest.mark.parametrize("with_val", [True, False])
def test_an_exploded_update_on_the_last_step_is_never_checkpointed(digits, tmp_path, with_val):
    t, loader, val = make_trainer(digits, tmp_path, extra=[ExplodeOnLastStep()])
    t.fit(loader, val if with_val else None, epochs=3)
    assert t.diverged and t.epoch == 2  # stopped after the second epoch, without saving it
    what = "validation loss" if with_val else "loss of the last batch"
    assert "diverged at the end of epoch 2" in t.stop_reason and what in t.stop_reason
    store = CheckpointStore(tmp_path / "ck")
    last = store.load("last")
    assert last.state["progress"]["epoch"] == 1
    # resuming `last` at the original learning rate: a finite first loss within the guard's factor
    resumed, loader, val = make_trainer(digits, tmp_path / "again")
    resumed.restore(last)
    initial = last.state["callbacks"]["ExplosionGuard"]["initial_loss"]
    resumed.fit(loader, val if with_val else None, epochs=2)
    first = resumed.callback(History).iterations[0]
    assert first["iteration"] == last.state["progress"]["iteration"] + 1
    assert math.isfinite(first["loss"]) and first["loss"] <= 3 * initial
    assert not resumed.diverged


class NaNAt(SoftmaxCrossEntropy):
    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, scores, labels):
        loss = super().forward(scores, labels)
        self.calls += 1
        return float("nan") if self.calls == self.at else loss


def test_nan_loss_stops_at_that_step(digits, tmp_path):
    t, loader, val = make_trainer(digits, tmp_path)
    t.loss = NaNAt(4)
    t.fit(loader, val, epochs=2)
    assert t.diverged and t.iteration == 4 and t.epoch == 0
    assert "not finite" in t.stop_reason and "step 4" in t.stop_reason
    assert not CheckpointStore(tmp_path / "ck").has("last")


def test_early_stopping_restores_best(digits, tmp_path):
    class FakeVal(Callback):  # a scripted val_accuracy curve, applied before EarlyStopping reads it
        order = 10
        curve = [0.5, 0.7, 0.6, 0.65, 0.69, 0.9]

        def on_epoch_end(self, epoch, logs):
            logs["val_accuracy"] = self.curve[epoch]
            self.weights = getattr(self, "weights", []) + [self.trainer.model.state_dict()]

    fake = FakeVal()
    t, loader, _ = make_trainer(digits, tmp_path, extra=[fake, EarlyStopping(patience=3)])
    t.fit(loader, None, epochs=6)
    assert t.epoch == 5 and "early stopping after epoch 5" in t.stop_reason
    best = fake.weights[1]
    for k, v in t.model.state_dict().items():
        np.testing.assert_array_equal(v, best[k])  # restored the epoch-2 weights
    store = CheckpointStore(tmp_path / "ck")
    assert store.load("best").state["progress"]["epoch"] == 2  # best checkpoint: after epoch index 1


def test_evaluate_runs_in_eval_mode_without_caches(digits, tmp_path):
    t, loader, val = make_trainer(digits, tmp_path)
    t.fit(loader, None, epochs=1)
    buffers = {k: v.copy() for k, v in t.model.named_buffers()}
    r1 = t.evaluate(val, keep=True)
    r2 = t.evaluate(val)
    assert r1["accuracy"] == r2["accuracy"] and r1["loss"] == r2["loss"]  # dropout off, BN frozen
    assert r1["count"] == len(val[1]) and r1["scores"].shape == (len(val[1]), 10)
    assert t.model.training  # mode restored
    assert all(m._cache is None for m in t.model.modules())  # no_grad: nothing cached
    for k, v in t.model.named_buffers():
        np.testing.assert_array_equal(v, buffers[k])


def test_flip_tta_averages_the_probabilities_of_image_and_mirror(digits, tmp_path):
    from striate.nn.losses import softmax
    from striate.train.tta import tta_scores

    t, loader, val = make_trainer(digits, tmp_path)
    t.fit(loader, None, epochs=1)
    x, y = val
    plain = t.predict_scores(x)
    mirror = t.predict_scores(np.ascontiguousarray(x[:, :, ::-1]))
    t.tta = "flip"
    scores = t.predict_scores(x)
    expected = (softmax(plain.astype(np.float64)) + softmax(mirror.astype(np.float64))) / 2
    np.testing.assert_allclose(softmax(scores.astype(np.float64)), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1, rtol=1e-5)  # log-probabilities
    r = t.evaluate(val, keep=True)
    np.testing.assert_array_equal(r["scores"].argmax(axis=1), expected.argmax(axis=1))
    assert r["loss"] == pytest.approx(-np.log(expected[np.arange(len(y)), y]).mean(), rel=1e-5)
    assert scores.dtype == np.float32
    # a symmetric batch: the mirror view is the image itself, so TTA changes nothing
    sym = np.concatenate([x[:, :, :4], x[:, :, 3::-1]], axis=2)
    t.model.eval()
    np.testing.assert_allclose(tta_scores(t.model, sym, "flip"),
                               np.log(softmax(t.model.forward(sym).astype(np.float64))), rtol=1e-4, atol=1e-5)


def test_unknown_tta_is_refused_at_construction():
    from striate.train.tta import tta_scores

    with pytest.raises(ValueError, match="'crop'.*flip"):
        Trainer(small_net(), SoftmaxCrossEntropy(), None, tta="crop")
    with pytest.raises(ValueError, match=r"mirrors images \(N, H, W, C\).*\(4, 3\)"):
        tta_scores(lambda v: v, np.zeros((4, 3), np.float32), "flip")


def test_metrics():
    pred = np.array([0, 1, 1, 2, 2, 2])
    true = np.array([0, 1, 2, 2, 2, 0])
    cm = confusion_matrix(pred, true, 4)
    expected = np.zeros((4, 4), np.int64)
    for p, y in zip(pred, true, strict=True):
        expected[y, p] += 1
    np.testing.assert_array_equal(cm, expected)
    acc = per_class_accuracy(cm)
    np.testing.assert_allclose(acc[:3], [0.5, 1.0, 2 / 3])
    assert np.isnan(acc[3])
    idx, val = top_k(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]), 2)
    np.testing.assert_array_equal(idx, [[1, 2], [0, 2]])
    np.testing.assert_allclose(val, [[0.6, 0.3], [0.5, 0.3]])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        confusion_matrix(np.array([5]), np.array([0]), 4)


CHILD = textwrap.dedent("""
    import sys, time
    from striate.run import RunDir, build, config as cfg, execute, resume
    from striate.train.callbacks import Callback
    out, mode, epoch_delay, batch_delay = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    config = cfg.resolve({"epochs": 3, "limit": 400, "augment": "crop,flip", "schedule": "cosine", "warmup": 1,
                          "batch_size": 32, "out": out})

    class Slow(Callback):
        order = 200  # after the checkpoint is written
        def on_batch_end(self, batch, logs): time.sleep(batch_delay)
        def on_epoch_end(self, epoch, logs): time.sleep(epoch_delay)

    directory = RunDir(out)
    if mode == "resume":
        run = resume(directory, {}, callbacks=[Slow()])
    else:
        directory.write_config(config)
        run = build(config, directory, callbacks=[Slow()])
    print("ready", flush=True)
    summary = execute(run)
    print(summary["status"], flush=True)
""")


def _child(tmp_path, out, mode, epoch_delay=0.0, batch_delay=0.0):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), str(out), mode, str(epoch_delay), str(batch_delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)


def _said(out: str) -> list[str]:
    """The child's own words on stdout (the epoch lines of the console are there too)."""
    return [line for line in out.splitlines() if line in ("ready", "finished", "interrupted", "diverged")]


def _last_progress(out):
    store = CheckpointStore(out / "checkpoints")
    return store.load("last").state["progress"] if store.has("last") else None


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_sigkill_between_epochs_then_resume_is_bit_identical(tmp_path):
    ref = _child(tmp_path, tmp_path / "ref", "fresh")
    run = _child(tmp_path, tmp_path / "run", "fresh", epoch_delay=2.0)
    assert ref.stdout.readline().strip() == "ready" and run.stdout.readline().strip() == "ready"
    _wait_for(lambda: (_last_progress(tmp_path / "run") or {}).get("epoch", 0) >= 1)
    run.send_signal(signal.SIGKILL)  # sleeping right after the epoch-1 checkpoint
    run.wait()
    run.stdout.close()
    assert _last_progress(tmp_path / "run")["epoch"] == 1
    resumed = _child(tmp_path, tmp_path / "run", "resume")
    out, _ = resumed.communicate(timeout=120)
    assert _said(out) == ["ready", "finished"]
    assert _said(ref.communicate(timeout=120)[0]) == ["finished"]
    a = CheckpointStore(tmp_path / "ref" / "checkpoints").load("last")
    b = CheckpointStore(tmp_path / "run" / "checkpoints").load("last")
    assert a.state["progress"]["iteration"] == b.state["progress"]["iteration"]
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k], err_msg=k)
    sa, sb = json.loads((tmp_path / "ref" / "summary.json").read_text()), json.loads(
        (tmp_path / "run" / "summary.json").read_text())
    assert sa["test"] == sb["test"] and sa["last"]["val_loss"] == sb["last"]["val_loss"]


def test_sigterm_mid_epoch_saves_then_resume_is_bit_identical(tmp_path):
    ref = _child(tmp_path, tmp_path / "ref", "fresh")
    run = _child(tmp_path, tmp_path / "run", "fresh", batch_delay=0.05)
    assert run.stdout.readline().strip() == "ready"
    time.sleep(0.8)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    assert _said(out) == ["interrupted"]
    progress = _last_progress(tmp_path / "run")
    assert progress["iteration"] > 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["stop_reason"]
    resumed = _child(tmp_path, tmp_path / "run", "resume")
    assert _said(resumed.communicate(timeout=120)[0]) == ["ready", "finished"]
    ref.communicate(timeout=120)
    a = CheckpointStore(tmp_path / "ref" / "checkpoints").load("last")
    b = CheckpointStore(tmp_path / "run" / "checkpoints").load("last")
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k], err_msg=k)


def test_nan_on_the_very_first_step(digits, tmp_path):
    t, loader, val = make_trainer(digits, tmp_path)
    t.loss = NaNAt(1)
    t.fit(loader, val, epochs=1)
    assert t.diverged and t.iteration == 1 and "step 1 " in t.stop_reason


def test_model_registry_and_rebuild():
    import striate.models as models

    assert {"digits_net", "reference", "three_layer"} <= set(models.names())
    for name in models.names():  # every registered name resolves to a builder
        assert callable(models.builder(name)), name
    rng = np.random.default_rng(0)
    net = models.get("three_layer", 10, 3, rng)
    layers = [m.describe() for m in net]
    assert layers[0].startswith("Conv2d(3→32, 5×5")
    assert [type(m).__name__ for m in net] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    assert (net[0].padding, net[4].in_features, net[4].out_features) == (2, 16 * 16 * 32, 100)
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 3)).astype(np.float32)
    assert net.forward(x).shape == (2, 10) and net.forward(x).dtype == np.float32

    ref = models.get("reference", 10, 3, rng)
    kinds = [type(m).__name__ for m in ref]
    assert kinds.count("Conv2d") == 6 and kinds.count("BatchNorm") == 6 and kinds.count("MaxPool2d") == 3
    assert [m.out_channels for m in ref if type(m).__name__ == "Conv2d"] == [64, 64, 128, 128, 256, 256]
    assert kinds[-4:] == ["Linear", "ReLU", "Dropout", "Linear"] and ref[-2].p == 0.5
    assert ref[-4].in_features == 4 * 4 * 256 and ref[-4].out_features == 256
    assert ref.eval().forward(x).shape == (2, 10)

    digits_net = models.get("digits_net", 10, 1, rng, image_size=8)
    rebuilt = models.from_config(json.loads(json.dumps(digits_net.build_config)))
    assert rebuilt.build_config == digits_net.build_config
    rebuilt.load_state_dict(digits_net.state_dict())  # strict: same names and shapes
    d = np.random.default_rng(2).standard_normal((3, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.forward(d), digits_net.forward(d))
    with pytest.raises(ValueError, match="'resnet'"):
        models.get("resnet", 10, 3, rng)
    with pytest.raises(ValueError, match="'digits_net' takes no keyword 'depth'"):
        models.get("digits_net", 10, 1, rng, depth=3)


def test_train_step_skips_the_unused_input_gradient():
    import striate as st

    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Conv2d(1, 2, 3, rng=rng), st.nn.Flatten(), st.nn.Linear(2 * 6 * 6, 3, rng=rng))
    seen = []
    conv_backward = net[0].backward

    def spy(dy):
        dx = conv_backward(dy)
        seen.append((net[0].requires_input_grad, dx))
        return dx

    net[0].backward = spy
    trainer = Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1))
    trainer.train_step(rng.standard_normal((4, 8, 8, 1)).astype(np.float32), np.array([0, 1, 2, 0]))
    assert seen == [(False, None)]  # the first layer computed weight gradients only
    assert net.requires_input_grad  # the model's own setting is restored
    assert np.abs(net[0].weight.grad).sum() > 0
