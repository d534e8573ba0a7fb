"""Memory over long runs: the History keeps every epoch record but a bounded downsample of the iteration
records (the latest always among them), metrics.jsonl keeps every record, and a resumed run holds the same
downsample as a straight one."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from striate.diagnose.checks import learning_curves
from striate.train.callbacks import History

STEPS = 100  # iterations per simulated epoch


def feed(history: History, start: int, stop: int) -> None:
    """Iterations start+1 … stop through the callback, as the trainer calls it (an epoch every STEPS)."""
    trainer = history.trainer
    for it in range(start + 1, stop + 1):
        trainer.iteration, trainer.epoch = it, (it - 1) // STEPS
        history.on_batch_end((it - 1) % STEPS, {"iteration": it, "loss": 2.0 / math.sqrt(it), "lr": 0.1})
        if it % STEPS == 0:
            history.on_epoch_end(trainer.epoch, {"loss": 1.0 / it, "accuracy": 0.5, "val_accuracy": 0.4})


def started(path=None, iteration: int = 0, **kw) -> History:
    history = History(path, **kw)
    history.set_trainer(SimpleNamespace(iteration=iteration, epoch=iteration // STEPS))
    history.on_train_begin()
    return history


def test_a_long_run_keeps_a_bounded_downsample_every_epoch_and_every_line(tmp_path):
    n = 100_000
    history = started(tmp_path / "metrics.jsonl")
    bound = History.MAX_ITERATIONS
    sizes = []
    for start in range(0, n, 10_000):
        feed(history, start, start + 10_000)
        sizes.append(len(history.iterations))
        assert len(history.iterations) <= bound + 1  # the downsample and the latest step
        assert history.iterations[-1]["iteration"] == start + 10_000  # the last step is always there
    history.on_train_end({})
    assert max(sizes) <= bound + 1 and min(sizes) >= bound // 2  # bounded, yet never a thin sample
    kept = [r["iteration"] for r in history.iterations]
    assert kept[0] == 1 and kept == sorted(kept)
    assert {b - a for a, b in zip(kept[:-2], kept[1:-1], strict=True)} == {history.stride}  # evenly spaced
    assert [r["epoch"] for r in history.epochs] == list(range(1, n // STEPS + 1))  # every epoch record
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["iteration"] for r in records if r["type"] == "iteration"] == list(range(1, n + 1))
    assert sum(r["type"] == "epoch" for r in records) == n // STEPS


def test_without_a_file_memory_is_bounded_too():
    history = started(max_iterations=64)
    feed(history, 0, 10_000)
    assert len(history.iterations) <= 65 and history.iterations[-1]["iteration"] == 10_000
    assert len(history.epochs) == 100
    unbounded = started(max_iterations=None)
    feed(unbounded, 0, 1000)
    assert len(unbounded.iterations) == 1000


@pytest.mark.parametrize("same_object", [False, True])
@pytest.mark.parametrize("done", [1, 63, 64, 65, 100, 128, 129, 500, 777, 1000])
def test_a_resumed_run_holds_the_downsample_of_a_straight_run(tmp_path, done, same_object):
    bound = 64
    straight = started(tmp_path / "straight.jsonl", max_iterations=bound)
    feed(straight, 0, done)
    # a run killed past `done` (its stride doubled meanwhile), resumed from a checkpoint at `done`: in a new
    # process, or by the same trainer and callback (`fit` again)
    killed = started(tmp_path / "killed.jsonl", max_iterations=bound)
    feed(killed, 0, 1200)
    killed.on_train_end({})
    if same_object:
        resumed = killed
        resumed.trainer.iteration, resumed.trainer.epoch = done, done // STEPS
        resumed.on_train_begin()
    else:
        resumed = started(tmp_path / "killed.jsonl", done, max_iterations=bound)
    assert resumed.iterations == straight.iterations
    assert resumed.epochs == straight.epochs
    assert resumed.stride == straight.stride
    feed(resumed, done, 1500)  # and they go on alike
    feed(straight, done, 1500)
    assert resumed.iterations == straight.iterations and resumed.epochs == straight.epochs


def test_the_curve_check_reads_a_downsample_by_its_own_iteration_numbers():
    history = started(max_iterations=64)
    feed(history, 0, 5000)
    trainer = history.trainer
    trainer.iteration += 1
    history.on_batch_end(0, {"iteration": trainer.iteration, "loss": math.inf, "lr": 0.1})
    verdict = learning_curves.judge(history)
    assert verdict.cause == "lr_too_high" and "iteration 5001" in verdict.symptom
