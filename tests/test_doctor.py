"""The doctor end to end on the embedded digits: a healthy setup passes everything; deliberately broken
setups FAIL/WARN with the right cause. Also the training callbacks (checks 6–8) inside the Trainer."""

import json
import time

import numpy as np
import pytest

import striate as st
from striate.data import load
from striate.diagnose import FAIL, PASS, WARN, doctor
from striate.diagnose.callbacks import Diagnostics
from striate.diagnose.diagnosis import Diagnosis
from striate.models import get as get_model
from striate.nn.activation import ReLU
from striate.train import History, Trainer

LR = 0.05  # SGD with momentum 0.9: healthy for digits_net


@pytest.fixture(scope="module")
def digits():
    d = load("digits", "train")
    x = d.images.astype(np.float32) / 255
    return x - x.mean(), d.labels


def net(seed=0):
    return get_model("digits_net", 10, 1, rng=np.random.default_rng(seed), image_size=(8, 8))


def statuses(report):
    return {v.check: v.status for v in report.verdicts}


def test_healthy_setup_passes_everything(digits):
    t = time.perf_counter()
    report = doctor(net(), data=digits, optimizer="momentum", lr=LR)
    elapsed = time.perf_counter() - t
    assert report.status == PASS and report.diagnosis == "healthy", str(report)
    assert len(report.verdicts) == 16 and elapsed < 60
    assert report.get("learning curves").details["val_accuracy"] > 0.9
    assert report.lr_finder is not None and report.lr_finder.suggestion > 0


def test_learning_rate_100x_too_high(digits):
    report = doctor(net(), data=digits, optimizer="momentum", lr=100 * LR,
                    checks=("lr", "training"))
    v = report.get("learning rate")
    assert v.status == FAIL and v.cause == "lr_too_high" and "lower it" in v.advice
    assert report.lr_finder.suggestion < 100 * LR  # the suggestion is lower than what was tried
    assert report.diagnosis == "lr_too_high" and "lower it" in report.diagnosis.advice
    curves = report.get("learning curves")
    assert curves.cause == "lr_too_high" and "exploded" in curves.symptom
    assert report.get("update/weight ratio").cause == "lr_too_high"


def test_learning_rate_1000x_too_low(digits):
    report = doctor(net(), data=digits, optimizer="momentum", lr=LR / 1000, checks=("lr", "training"))
    v = report.get("learning rate")
    assert v.status == FAIL and v.cause == "lr_too_low" and "raise it" in v.advice
    r = report.get("update/weight ratio")
    assert r.status in (WARN, FAIL) and r.cause == "lr_too_low" and r.details["typical"] < 1e-4
    assert report.diagnosis == "lr_too_low" and not report.diagnosis.also


def test_shuffled_labels_cannot_beat_chance_but_overfit_passes(digits):
    x, y = digits
    shuffled = np.random.default_rng(1).permutation(y)
    report = doctor(net(), data=(x, shuffled), optimizer="momentum", lr=LR,
                    checks=("overfit", "training"))
    assert report.get("overfit tiny subset").status == PASS
    v = report.get("learning curves")
    assert v.status == FAIL and v.cause == "labels_shuffled" and "shuffled" in v.advice
    assert v.details["val_accuracy"] < 0.2 and report.diagnosis == "labels_shuffled"
    # with the input checks, the model-free 1-NN test names it too
    full = doctor(net(), data=(x, shuffled), optimizer="momentum", lr=LR,
                  checks=("inputs", "labels", "labels match inputs"))
    assert full.diagnosis == "labels_shuffled" and full.get("labels match inputs").status == FAIL


def test_large_negative_bias_before_relu(digits):
    model = net()
    model[6].bias.data[:] = -10.0  # Linear(512→64) feeding the ReLU at layer 7
    report = doctor(model, data=digits, optimizer="momentum", lr=LR, checks=("activations", "gradient_stats"))
    a = report.get("activations")
    assert a.status == FAIL and a.cause == "dead_units" and "layer 7" in a.value and "negative bias" in a.advice
    g = report.get("gradients")
    assert g.status == FAIL and g.cause == "dead_units" and report.diagnosis == "dead_units"


def test_wrong_backward_is_named(digits):
    class LeakyBackward(ReLU):
        def backward(self, dy):
            return super().backward(dy) + 0.1 * dy  # lets gradient through where the forward blocked it

    model = net()
    layers = list(model)
    layers[3] = LeakyBackward()
    report = doctor(st.nn.Sequential(*layers), data=digits, checks=("gradient check",))
    v = report.get("gradient check")
    assert v.status == FAIL and v.cause == "wrong_backward" and "layer 3 (LeakyBackward())" in v.value
    assert report.diagnosis == "wrong_backward" and "layer 3 (LeakyBackward())" in report.diagnosis.advice


def test_doctor_does_not_touch_the_model(digits):
    model = net()
    before = model.state_dict()
    doctor(model, data=digits, lr=LR, checks=("overfit", "lr"), iterations=30)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_report_round_trip(digits, tmp_path):
    report = doctor(net(), data=digits, optimizer="momentum", lr=LR, checks=("lr", "training"), iterations=60)
    report.write(tmp_path / "diagnostics.json", tmp_path / "metrics.jsonl")
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert [v["check"] for v in saved["verdicts"]] == [v.check for v in report.verdicts]
    assert saved["diagnosis"]["cause"] == report.diagnosis == "healthy"
    assert Diagnosis.from_dict(saved["diagnosis"]) == "healthy"
    assert saved["lr_finder"]["suggestion"] == pytest.approx(report.lr_finder.suggestion)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(s)["type"] == "iteration" for s in lines) == len(report.history["iterations"])


# ----- callbacks inside the Trainer -----------------------------------------------------------------
class Batches:
    def __init__(self, x, y, b, seed):
        self.x, self.y, self.b, self.rng = x, y, b, np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.x) // self.b)

    def __iter__(self):
        p = self.rng.permutation(len(self.x))
        for i in range(0, len(p), self.b):
            yield self.x[p[i:i + self.b]], self.y[p[i:i + self.b]]


def fit(digits, callbacks, epochs=2, seed=0):
    x, y = digits
    model = net(seed)
    trainer = Trainer(model, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(model, lr=LR, momentum=0.9),
                      callbacks=callbacks)
    t = time.process_time()  # CPU time: less sensitive than wall time to other processes on the machine
    trainer.fit(Batches(x[:1150], y[:1150], 64, seed), (x[1150:], y[1150:]), epochs=epochs)
    return trainer, time.process_time() - t


def test_diagnostics_callback_records_and_writes(digits, tmp_path):
    diag = Diagnostics(tmp_path / "diagnostics.json", stats_interval=10, ratio_interval=1)
    trainer, _ = fit(digits, [History(tmp_path / "metrics.jsonl"), diag])
    snaps = diag.layers.snapshots
    assert [s["iteration"] for s in snaps] == [1] + list(range(11, trainer.iteration + 1, 10))
    assert len(diag.ratios.records) == trainer.iteration
    assert [len(e["dead"]) for e in diag.layers.epoch_dead] == [3, 3]
    first = {s.name: s for s in snaps[0]["layers"]}
    assert first["7"].dead is not None and first["8"].grad_rms > 0 and first["0"].hist
    assert not snaps[1]["layers"][0].hist  # only the first and the latest keep histograms
    assert not any("forward" in vars(m) or "backward" in vars(m) for m in trainer.model.modules())
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    checks = [v["check"] for v in saved["verdicts"]]
    assert checks[-2:] == ["update/weight ratio", "learning curves"] and all(v["status"] == PASS
                                                                               for v in saved["verdicts"])
    assert saved["diagnosis"]["cause"] == "healthy" and diag.diagnosis()[0] == "healthy"


def test_diagnostics_callback_writes_its_diagnosis(digits, tmp_path):
    """A run whose ReLUs a negative bias kills: the callback's diagnostics.json leads with dead_units."""
    x, y = digits
    model = net()
    model[6].bias.data[:] = -10.0
    diag = Diagnostics(tmp_path / "diagnostics.json", stats_interval=10, ratio_interval=1)
    trainer = Trainer(model, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(model, lr=LR, momentum=0.9),
                      callbacks=[History(), diag])
    trainer.fit(Batches(x[:600], y[:600], 64, 0), (x[1150:], y[1150:]), epochs=1)
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert saved["diagnosis"]["cause"] == "dead_units" and saved["diagnosis"]["status"] == FAIL
    assert "negative bias" in saved["diagnosis"]["advice"]
    assert {v["cause"] for v in saved["verdicts"] if v["status"] != PASS} <= {"dead_units"}


def test_callbacks_do_not_change_training(digits):
    plain, _ = fit(digits, [], epochs=1)
    watched, _ = fit(digits, [Diagnostics(None, stats_interval=5, ratio_interval=1)], epochs=1)
    for a, b in zip(plain.model.parameters(), watched.model.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_callback_overhead_is_small(digits):
    fit(digits, [], epochs=1)  # warm up
    base, with_diag = [], []
    for _ in range(3):  # interleaved, so a slow phase of the machine hits both
        base.append(fit(digits, [], epochs=4)[1])
        with_diag.append(fit(digits, [Diagnostics(None, stats_interval=50, ratio_interval=10)], epochs=4)[1])
    base, with_diag = min(base), min(with_diag)
    # measured ≈ 1–3 % on an idle machine; the bound leaves room for a shared, noisy one
    assert with_diag < 1.25 * base, (base, with_diag)


def test_doctor_takes_a_loader_and_rejects_unknown_checks(digits):
    from striate.data import DataLoader

    x, y = digits
    loader = DataLoader(x, y, 100, shuffle=True, rng=np.random.default_rng(0))
    report = doctor(net(), data=loader, checks=("initial_loss", "activations"))
    assert [v.status for v in report.verdicts] == [PASS, PASS] and report.diagnosis == "healthy"
    with pytest.raises(ValueError, match="unknown checks"):
        doctor(net(), data=digits, checks=("gradient",))
