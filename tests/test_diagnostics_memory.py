"""Memory over long runs, the diagnostics' part: the Diagnostics callback (on by default in `striate train`)
keeps its activation snapshots and update-ratio records as a bounded, evenly spaced downsample — the first
and the latest always among them, every epoch's dead-unit record kept — so its memory and the
diagnostics.json it rewrites at every epoch end stay bounded however long the run. The downsampling is the
History's (`train.callbacks.downsample`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import striate as st
from striate.diagnose.callbacks import Diagnostics
from striate.train import History, Trainer
from striate.train.callbacks.downsample import Downsample

STATS, RATIO = 100, 10  # `striate train`'s defaults: diagnostics = 100, ratios every 100 // 10 steps


def tiny(seed=0):
    rng = np.random.default_rng(seed)
    return st.nn.Sequential(st.nn.Linear(4, 8, rng=rng), st.nn.ReLU(), st.nn.Linear(8, 3, rng=rng))


def drive(diag: Diagnostics, stop: int, steps_per_epoch: int, start: int = 0, on_epoch=None):
    """Iterations start+1 … stop through the callback as the trainer calls it. Only the steps the stats
    monitor taps (the first, and the one after every multiple of its interval) run a forward and backward
    pass of the tiny model, and only the steps the ratio monitor measures change its weights: the rest cost
    nothing, so 10^5 steps take seconds."""
    trainer = diag.trainer
    model, loss = trainer.model, st.nn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    trainer.iteration, trainer.epoch, trainer.batch = start, start // steps_per_epoch, start % steps_per_epoch
    diag.on_train_begin()
    for it in range(start + 1, stop + 1):
        trainer.iteration, trainer.epoch, trainer.batch = it, (it - 1) // steps_per_epoch, (it - 1) % steps_per_epoch
        if (it - 1) % STATS == 0:
            model.zero_grad()
            loss(model.forward(x), y)
            model.backward(loss.backward())
        if (it - 1) % RATIO == 0:
            for p in model.parameters():
                p.data -= 0.01 * p.grad
        diag.on_batch_end(trainer.batch, {"iteration": it, "loss": 1.0, "accuracy": 0.5, "lr": 0.01, "size": 16})
        if it % steps_per_epoch == 0:
            trainer.epoch, trainer.batch = it // steps_per_epoch, 0
            diag.on_epoch_end(it // steps_per_epoch - 1, {"loss": 1.0, "accuracy": 0.5})
            if on_epoch is not None:
                on_epoch(it)


def started(path=None, model=None, **kw) -> Diagnostics:
    model = tiny() if model is None else model
    diag = Diagnostics(path, stats_interval=STATS, ratio_interval=RATIO, **kw)
    Trainer(model, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(model, lr=0.01), callbacks=[diag])
    return diag


def test_a_long_run_holds_a_bounded_downsample_and_a_bounded_file(tmp_path):
    n, per_epoch = 100_000, 2000
    diag = started(tmp_path / "diagnostics.json")
    held, sizes = [], []

    def at_epoch_end(it):
        snaps, ratios = diag.layers.snapshots, diag.ratios.records
        held.append((len(snaps), len(ratios)))
        assert snaps[0]["iteration"] == 1 and ratios[0]["iteration"] == 1  # the first always kept
        assert snaps[-1]["iteration"] == it - STATS + 1 and ratios[-1]["iteration"] == it - RATIO + 1  # and the latest
        sizes.append((tmp_path / "diagnostics.json").stat().st_size)

    drive(diag, n, per_epoch, on_epoch=at_epoch_end)
    diag.on_train_end({})
    snaps, ratios = diag.layers.snapshots, diag.ratios.records
    limit_s, limit_r = diag.layers.MAX_SNAPSHOTS, diag.ratios.MAX_RECORDS
    assert n // STATS > 4 * limit_s and n // RATIO > 4 * limit_r  # the run is long enough to matter
    assert max(h[0] for h in held) <= limit_s + 2 and max(h[1] for h in held) <= limit_r + 2
    assert len(snaps) >= limit_s // 2 and len(ratios) >= limit_r // 2  # never a thin sample
    for recs in (snaps, ratios):  # evenly spaced between the first and the latest
        its = [r["iteration"] for r in recs]
        assert its == sorted(its) and len({b - a for a, b in zip(its[:-2], its[1:-1], strict=True)}) == 1
    # histograms (the report's first-vs-latest figure) on the first and the latest snapshot only
    assert snaps[0]["layers"][0].hist and snaps[-1]["layers"][0].hist
    assert not any(s.hist or s.grad_hist for snap in snaps[1:-1] for s in snap["layers"])
    assert [e["epoch"] for e in diag.layers.epoch_dead] == list(range(n // per_epoch))  # every epoch kept
    # the file: bounded once the samples are full (only the per-epoch records still grow, a few bytes each)
    saved = json.loads((tmp_path / "diagnostics.json").read_text())
    assert len(saved["layer_stats"]["snapshots"]) == len(snaps) and len(saved["update_ratio"]) == len(ratios)
    # both samples fill and halve twice in the first third of the run; unbounded, the file would then triple
    cycle = sizes[:n // per_epoch // 3]
    assert 4 * limit_s * STATS < n // 3 and 4 * limit_r * RATIO < n // 3
    assert max(sizes) < 1.3 * max(cycle), (max(cycle), max(sizes))
    assert saved["diagnosis"]["cause"] and {v["check"] for v in saved["verdicts"]} >= {"update/weight ratio"}


def test_unbounded_on_request_and_short_runs_keep_everything():
    diag = started()
    drive(diag, 3000, 300)
    assert len(diag.layers.snapshots) == 30 and len(diag.ratios.records) == 300  # under the bounds: all
    everything = started(max_snapshots=None, max_records=None)
    drive(everything, 20_000, 1000)
    assert len(everything.layers.snapshots) == 200 and len(everything.ratios.records) == 2000


def as_saved(diag: Diagnostics) -> str:
    return json.dumps({"layers": diag.layers.to_dict(), "ratios": diag.ratios.records})


@pytest.mark.parametrize("epochs_done", [1, 12])
def test_a_resumed_run_takes_up_its_diagnostics_and_samples_as_a_straight_run(tmp_path, epochs_done):
    """Resumed from a checkpoint at an epoch end (diagnostics.json is written at the same moments), the
    callback holds what a straight run holds — the snapshot at initialisation first — and samples the same
    steps (1013 steps an epoch: a resume off the 1 + k·interval grids takes no extra sample)."""
    n, per_epoch, done = 16 * 1013, 1013, epochs_done * 1013
    straight = started(tmp_path / "straight.json")
    drive(straight, n, per_epoch)
    first = started(tmp_path / "diagnostics.json")
    drive(first, done, per_epoch)  # then killed; the checkpoint is the one of epoch `epochs_done`
    resumed = started(tmp_path / "diagnostics.json", model=first.trainer.model)
    drive(resumed, n, per_epoch, start=done)
    assert resumed.layers.snapshots[0]["iteration"] == 1
    assert as_saved(resumed) == as_saved(straight)
    assert (tmp_path / "diagnostics.json").read_text() == (tmp_path / "straight.json").read_text()


@pytest.mark.parametrize("damage", [
    "not json", "[]", "{}", '{"layer_stats": [], "update_ratio": []}', "null",
    '{"layer_stats": {"interval": "x", "snapshots": [], "epoch_dead": []}, "update_ratio": []}',
    '{"layer_stats": {"interval": 100, "snapshots": [{"iteration": 1, "layers": [{"name": 1}], "params": {}}], '
    '"epoch_dead": []}, "update_ratio": []}',
    '{"layer_stats": {"interval": 100, "snapshots": [], "epoch_dead": [{"epoch": 0, "dead": {"1": "x"}}]}, '
    '"update_ratio": []}',
    '{"layer_stats": {"interval": 100, "snapshots": [], "epoch_dead": []}, '
    '"update_ratio": [{"iteration": 1, "ratios": {"0.weight": [1]}}]}',
])
def test_a_damaged_diagnostics_file_is_ignored_on_resume_and_rewritten(tmp_path, damage):
    path = tmp_path / "diagnostics.json"
    first = started(path)
    drive(first, 2000, 1000)
    saved = json.loads(path.read_text())
    path.write_text(damage)
    resumed = started(path, model=first.trainer.model)
    drive(resumed, 3000, 1000, start=2000)  # no exception: the diagnostics start again with the resume
    assert [s["iteration"] for s in resumed.layers.snapshots] == list(range(2001, 3000, STATS))
    assert json.loads(path.read_text())["layer_stats"]["interval"] == saved["layer_stats"]["interval"]
    # a bad value deep in an otherwise good file fails the whole file, never a later check
    saved["layer_stats"]["snapshots"][-1]["layers"][0]["mean"] = "x"
    path.write_text(json.dumps(saved))
    again = started(path, model=first.trainer.model)
    drive(again, 3000, 1000, start=2000)
    assert again.layers.snapshots[0]["iteration"] == 2001


@pytest.mark.parametrize("limit", [2, 3, 8, 64])
@pytest.mark.parametrize("step, origin", [(1, 1), (10, 1), (100, 1), (7, 3)])
def test_downsample_bounded_even_first_latest_and_independent_of_when_it_was_taken(limit, step, origin):
    sample = Downsample(limit, step=step, origin=origin)
    keys = [origin + k * step for k in range(20 * limit)]
    for i, k in enumerate(keys):
        sample.add({"iteration": k})
        held = [r["iteration"] for r in sample.records]
        assert len(held) <= limit + 2 and held[0] == origin and held[-1] == k and held == sorted(held)
        on = [h for h in held if (h - origin) % sample.stride == 0]
        assert on == list(range(origin, k + 1, sample.stride)) and len(on) <= limit  # evenly spaced, all of them
        assert len(on) > limit // 2 or i < limit  # once full, never below half
        if i % 17 == 0 or i > 3 * limit and i % limit in (0, 1, limit - 1):  # around the doublings, and between
            again = Downsample(limit, step=step, origin=origin)
            again.reset({"iteration": j} for j in keys[:i + 1])
            assert again.records == sample.records and again.stride == sample.stride


def test_downsample_keeps_a_first_record_off_the_grid():
    """A monitor started part-way (a resumed run) takes its first sample off the 1 + k·interval grid: that
    first record stays (the report compares it with the latest), the grid's records are sampled as usual."""
    sample = Downsample(4, step=10)
    for k in [6, *range(11, 1000, 10)]:
        sample.add({"iteration": k})
    held = [r["iteration"] for r in sample.records]
    assert held[0] == 6 and held[-1] == 991 and len(held) <= 6
    assert all((h - 1) % sample.stride == 0 for h in held[1:-1])


@pytest.mark.parametrize("bad", [{"limit": 1}, {"limit": 0}, {"limit": 4, "step": 0}])
def test_downsample_refuses_a_limit_or_step_that_cannot_work(bad):
    limit = bad.pop("limit")
    with pytest.raises(ValueError, match="Downsample"):
        Downsample(limit, **bad)


def test_history_uses_the_same_downsample():
    history = History(max_iterations=64)
    assert isinstance(history._sample, Downsample) and history._sample.limit == 64


def test_layer_stats_read_back_from_json_or_refused():
    """The reader behind the resume: a snapshot's statistics survive the JSON round trip, and a value of the
    wrong type is refused when read, not later in a check."""
    from striate.diagnose.stats import LayerStats, param_gradients, param_gradients_from_dict, summarize

    model = tiny()
    y = model.forward(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    s = summarize("1", model[1], y)
    back = LayerStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.to_dict() == s.to_dict()
    params = json.loads(json.dumps(param_gradients(model)))
    assert {n: param_gradients_from_dict(p) for n, p in params.items()} == params
    for key, bad in [("mean", "x"), ("dead", [1]), ("hist", ["a"]), ("name", 3), ("edges", {"a": 1}), ("std", True)]:
        with pytest.raises((TypeError, ValueError)):
            LayerStats.from_dict({**s.to_dict(), key: bad})
    with pytest.raises((TypeError, KeyError)):
        param_gradients_from_dict({**params["0.weight"], "finite": "yes"})
