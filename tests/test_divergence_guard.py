"""The explosion guard judges divergence on evidence that a run is lost: its threshold on both sides (synthetic
losses fed to the callback), a two-class photo folder that trains with the defaults, and a truly diverging
run that still stops within a few steps."""

import json
import math
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from striate.cli import main
from striate.train import ExplosionGuard

LN10 = math.log(10)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"  # ../shared beside the repo


def guard(classes: int = 2, factor: float = 3.0, literal: bool = False) -> ExplosionGuard:
    """A run's guard on `classes` classes (or, `literal`, the notes' rule judged on every step alone)."""
    g = ExplosionGuard(factor) if literal else ExplosionGuard.for_classes(classes, factor)
    g.set_trainer(SimpleNamespace(epoch=0, batch=0, diverged=False, stop_training=False, stop_reason=None,
                                  last_batch=None, lr=lambda: 0.1))
    return g


def feed(g: ExplosionGuard, losses, start: int = 0) -> int | None:
    """The 1-based step at which `g` stopped training on `losses`, or None."""
    for i, loss in enumerate(losses, start):
        g.on_batch_end(i, {"loss": loss, "iteration": i + 1, "lr": 0.1})
        if g.trainer.stop_training:
            return i + 1
    return None


# ----- the threshold, fed directly --------------------------------------------------------------------------
def test_a_single_spike_of_6x_on_two_classes_does_not_stop():
    losses = [0.69, 6 * 0.69, 0.9, 0.8, 0.75, 0.7] + [0.7] * 20
    assert feed(guard(), losses) is None
    assert feed(guard(literal=True), losses) == 2  # the notes' rule taken literally: one noisy step stops it
    assert feed(guard(), [0.69, 1e6, 0.8, 0.8, 0.7, 0.7, 0.7]) is None  # however large, if it is one step
    assert feed(guard(), [0.69, 0.7, 0.7, 9.0, 9.0, 0.7, 0.7, 0.7, 0.7]) is None  # two of five: still noise


@pytest.mark.parametrize("classes, first", [(2, 0.6964), (10, 2.4), (10, 2.0)])
def test_the_threshold_on_both_sides(classes, first):
    """The threshold is factor × max(first loss, ln C, 1): exactly at it the run goes on; just above it,
    sustained, it stops on the third step above (once the window of 5 is full)."""
    threshold = 3 * max(first, math.log(classes), 1.0)
    assert guard(classes).reference is None
    at = [first] * 6 + [threshold] * 30
    g = guard(classes)
    assert feed(g, at) is None and g.reference == max(first, math.log(classes), 1.0)
    above = [first] * 6 + [threshold * 1.001] * 30
    assert feed(guard(classes), above) == 6 + 3
    assert feed(guard(classes), [first] + [threshold * 1.001] * 30) == 5  # from the start: the window fills


def test_the_floor_gives_two_classes_a_margin_and_a_fine_tune_its_chance_level():
    g = guard(2)
    feed(g, [0.6964])
    assert g.reference == 1.0  # not ln 2 ≈ 0.69: its threshold is 3 nats
    g = guard(10)
    feed(g, [0.05])  # a fine-tune starts low: its reference is the chance loss
    assert g.reference == pytest.approx(LN10)
    g = guard(literal=True)  # the literal rule: the first loss itself
    feed(g, [0.05])
    assert g.reference == 0.05


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("at", [1, 2, 4, 12])
def test_a_non_finite_loss_stops_at_once(bad, at):
    losses = [0.7] * (at - 1) + [bad] + [0.7] * 5
    g = guard()
    assert feed(g, losses) == at
    assert g.trainer.diverged and "is not finite" in g.trainer.stop_reason


def test_the_message_states_the_smoothed_loss_and_the_reference():
    g = guard()
    feed(g, [0.6964, 5.0, 5.5, 6.0, 7.0, 8.0])
    reason = g.trainer.stop_reason
    assert reason.startswith("training diverged at epoch 1, step 5 (iteration 5): loss 7,")
    assert "median of the last 5 steps 5.5" in reason
    assert "exceeds 3× the reference 1 = max(initial loss 0.6964, floor 1)" in reason
    assert "lower learning rate" in reason


def test_a_resumed_guard_judges_exactly_as_a_straight_one():
    """The window goes into the checkpoint (state.json): a guard restored at any step stops where an unbroken
    one does."""
    losses = [0.69, 4.2, 0.9, 2.9, 3.4, 0.8, 3.5, 3.6, 0.7, 3.2, 3.3, 3.1, 3.4, 0.7]
    straight = feed(guard(), losses)
    assert straight == 8
    for cut in range(1, straight):
        first = guard()
        assert feed(first, losses[:cut]) is None
        state = json.loads(json.dumps(first.state_dict()))
        resumed = guard()
        resumed.load_state_dict(state)
        assert feed(resumed, losses[cut:], start=cut) == straight, cut
    fresh = guard()  # without the window it would judge differently: the state matters
    fresh.load_state_dict({"initial_loss": 0.69})
    assert feed(fresh, losses[4:], start=4) != straight


def test_the_state_before_a_checkpoint_is_judged_against_the_same_reference():
    g = guard()
    feed(g, [0.6964, 0.7])
    g.check_state({"val_loss": 2.99})
    assert not g.trainer.diverged
    g.check_state({"val_loss": 3.01})
    assert g.trainer.diverged and "validation loss 3.01 exceeds 3× the reference 1" in g.trainer.stop_reason


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="factor must be > 1"):
        ExplosionGuard(1.0)
    with pytest.raises(ValueError, match="window must be"):
        ExplosionGuard(3.0, window=0)
    assert repr(guard(2)) == "ExplosionGuard(factor=3, floor=1, window=5)"


# ----- whole runs with the defaults -------------------------------------------------------------------------
def _train(data: Path, out: Path, *flags) -> tuple[int, dict]:
    rc = main(["train", "--data", str(data), "--out", str(out), "--report", "off", "--diagnostics", "0", *flags])
    return rc, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def synthetic_pair(tmp_path_factory) -> Path:
    """Two classes of noisy 32×32 colour images told apart by a tinted blob: with the defaults their second or
    third step reaches 3–6× the first loss (and recovers), as photos do."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir()
        for i in range(200):
            img = rng.uniform(60, 200, 3) + rng.normal(0, 40, (32, 32, 3))
            cy, cx, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 8)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img += (60 if c else -60) * blob[..., None] * np.array([1, 0.5, -0.5])
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def photo_pair(tmp_path_factory) -> Path:
    """200 cats and 200 dogs from the CIFAR-10 JPEGs in ../shared/data, read member by member."""
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent")
    root = tmp_path_factory.mktemp("catdog")
    counts = {"cat": 0, "dog": 0}
    with tarfile.open(SHARED) as archive:
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] == "train" and counts.get(parts[1], 200) < 200:
                (root / parts[1]).mkdir(exist_ok=True)
                (root / parts[1] / parts[2]).write_bytes(archive.extractfile(member).read())
                counts[parts[1]] += 1
                if min(counts.values()) == 200:
                    break
    assert counts == {"cat": 200, "dog": 200}
    return root


@pytest.mark.parametrize("seed", [0, 1, 2])  # each stopped at step 2 or 3 under the one-step rule
def test_two_synthetic_classes_train_with_the_defaults(synthetic_pair, tmp_path, seed, capsys):
    rc, summary = _train(synthetic_pair, tmp_path / "run", "--epochs", "1", "--seed", str(seed))
    assert "diverged" not in capsys.readouterr().out
    assert rc == 0 and summary["status"] == "finished"


@pytest.mark.parametrize("seed", [0, 3, 4])  # each stopped at step 2 under the one-step rule (2.5–3.9 from 0.7)
def test_two_classes_of_photos_train_with_the_defaults(photo_pair, tmp_path, seed, capsys):
    rc, summary = _train(photo_pair, tmp_path / "run", "--epochs", "2", "--seed", str(seed))
    assert "diverged" not in capsys.readouterr().out
    assert rc == 0 and summary["status"] == "finished" and summary["epochs_completed"] == 2


def test_a_truly_diverging_run_still_stops_within_a_few_steps(tmp_path, capsys):
    rc, summary = _train(Path("digits"), tmp_path / "run", "--lr", "1000", "--epochs", "2")
    out = capsys.readouterr().out
    assert rc == 3 and summary["status"] == "diverged"
    line = next(s for s in out.splitlines() if "training diverged" in s)
    assert "diverged at epoch 1, step " in line
    assert int(line.split("step ")[1].split(" ")[0]) <= 5
    assert "is not finite" in line or ("median of the last 5 steps" in line and "the reference" in line)


@pytest.mark.parametrize("explode_factor", [3.0, 5.0])
def test_every_run_and_search_trial_gets_the_runs_guard(explode_factor):
    """Runs and the search's trials take their callbacks from `run_callbacks`: the median of 5 steps against
    `explode_factor` × max(first loss, ln C, 1)."""
    from striate.run.callbacks import run_callbacks
    from striate.run.config import defaults

    config = {**defaults(), "explode_factor": explode_factor, "patience": 0}
    g = next(c for c in run_callbacks(config, None, {}, 2, has_val=False, steps_per_epoch=1, writers=False)
             if isinstance(c, ExplosionGuard))
    assert (g.factor, g.floor, g.window) == (explode_factor, 1.0, 5)
