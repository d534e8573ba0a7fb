import numpy as np
import pytest

import striate as st
from striate.models.ensemble import (
    Ensemble,
    SnapshotEnsemble,
    average_weights,
    cycle_ends,
    ema_model,
    evaluate_with_ema,
    predict_proba,
    snapshot_ensemble,
)
from striate.nn.activation import ReLU
from striate.optim.schedules import CosineRestarts
from striate.train import Trainer
from tests.zoo_helpers import digits, train


def small(rng):
    return st.nn.Sequential(st.nn.Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), st.nn.MaxPool2d(2), st.nn.Flatten(),
                            st.nn.Linear(64, 10, rng=rng))


@pytest.fixture(scope="module")
def data():
    x, y = digits("train")
    xt, yt = digits("test")
    return x, y, xt, yt


@pytest.fixture(scope="module")
def members(data):
    x, y, _, _ = data
    return [train(small(np.random.default_rng(s)), x, y, 40, np.random.default_rng(s + 10), lr=0.05) for s in range(3)]


def test_ensemble_averages_probabilities(members, data):
    _, _, xt, yt = data
    ens = Ensemble(members)
    probs = ens.predict_proba(xt, batch_size=100)
    each = [predict_proba(m, xt) for m in members]
    # batches of 100 vs one of 500: BLAS sums the float32 scores differently by shape (a few ulps of scores
    # up to ~10, so probabilities agree to ~1e-5 relative), never bit for bit across CPUs
    np.testing.assert_allclose(probs, np.mean(each, axis=0), rtol=2e-5, atol=1e-7)
    same_batches = [predict_proba(m, xt, batch_size=100) for m in members]
    np.testing.assert_allclose(probs, np.mean(same_batches, axis=0), rtol=1e-12)  # same shapes: the mean itself
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-12)
    result = ens.evaluate(xt, yt)
    assert len(result["members"]) == 3 and result["count"] == len(yt)
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == yt))
    # averaging helps: at least as good as the average member, and lower loss than the mean member loss
    assert result["accuracy"] >= np.mean(result["members"]) - 1e-9
    assert result["loss"] <= np.mean(result["member_losses"])
    assert (ens.predict(xt) == probs.argmax(1)).all()
    weighted = Ensemble(members, weights=[1, 0, 0]).predict_proba(xt)
    np.testing.assert_allclose(weighted, each[0], rtol=1e-12)
    with pytest.raises(ValueError, match="weights"):
        Ensemble(members, weights=[1, -1, 0])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    assert all(m.training is False for m in members)


def test_cycle_ends():
    assert cycle_ends(10, 1, total_steps=35) == [10, 20, 30]
    assert cycle_ends(10, 2, total_steps=100) == [10, 30, 70]
    assert cycle_ends(5, 3, cycles=3) == [5, 20, 65]
    sched = CosineRestarts(0.1, 10, 2)
    for end in cycle_ends(10, 2, cycles=3):  # the learning rate restarts right after each end
        assert sched(end) == pytest.approx(0.1) and sched(end - 1) < 0.01


def test_snapshot_ensemble_with_trainer(data, tmp_path):
    x, y, xt, yt = data
    model = small(np.random.default_rng(0))
    snaps = SnapshotEnsemble(20, directory=tmp_path / "snaps")
    trainer = Trainer(model, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(model, lr=0.1, momentum=0.9),
                      schedule=CosineRestarts(0.1, 20), callbacks=[snaps])
    batches = [(x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]) for i in range(10)]
    trainer.fit(batches, epochs=6)
    assert snaps.taken_at == [20, 40, 60] and len(snaps.snapshots) == 3
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [f"snapshot-{k}.safetensors" for k in (1, 2, 3)]
    for k, v in model.state_dict().items():  # the last snapshot is the final model
        np.testing.assert_array_equal(snaps.snapshots[-1][k], v)
    assert not np.array_equal(snaps.snapshots[0]["4.weight"], snaps.snapshots[1]["4.weight"])
    ens = snaps.ensemble(model)
    from_files = snapshot_ensemble(model, sorted((tmp_path / "snaps").iterdir()))
    np.testing.assert_allclose(ens.predict_proba(xt), from_files.predict_proba(xt), rtol=1e-12)
    result = ens.evaluate(xt, yt)
    assert result["accuracy"] > 0.5 and len(result["members"]) == 3
    assert snaps.state_dict() == {"taken_at": [20, 40, 60]}


def test_average_weights(rng):
    a, b = small(np.random.default_rng(1)).state_dict(), small(np.random.default_rng(2)).state_dict()
    avg = average_weights([a, b])
    np.testing.assert_allclose(avg["0.weight"], (a["0.weight"] + b["0.weight"]) / 2, rtol=1e-6)
    assert avg["0.weight"].dtype == np.float32
    bn = [{"n": np.array(3), "w": np.ones(2, np.float32)}, {"n": np.array(5), "w": np.zeros(2, np.float32)}]
    out = average_weights(bn)
    assert int(out["n"]) == 5 and out["w"].tolist() == [0.5, 0.5]
    with pytest.raises(KeyError):
        average_weights([a, {"x": np.zeros(1)}])


def test_evaluate_with_ema(data):
    x, y, xt, yt = data
    model = small(np.random.default_rng(0))
    ema = st.optim.EMA(model, decay=0.9)
    opt = st.optim.SGD(model, lr=0.1, momentum=0.9)
    loss = st.nn.SoftmaxCrossEntropy()
    for i in range(40):
        opt.zero_grad()
        loss(model.forward(x[i * 32:(i + 1) * 32]), y[i * 32:(i + 1) * 32])
        model.backward(loss.backward())
        opt.step()
        ema.update()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    averaged = ema_model(model, ema)
    for p, shadow in zip(averaged.parameters(), ema.shadow, strict=True):
        np.testing.assert_array_equal(p.data, shadow)
    result = evaluate_with_ema(model, ema, xt, yt)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert set(result) >= {"accuracy", "loss", "raw_accuracy", "raw_loss"}
    assert result["raw_accuracy"] == pytest.approx(np.mean(predict_proba(model, xt).argmax(1) == yt))
    assert result["accuracy"] > 0.5
