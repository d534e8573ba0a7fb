"""Exact resume at the thread counts users run: N epochs in one go and k epochs (or a mid-epoch stop) plus
a resume give bit-identical weights, with `STRIATE_NUM_THREADS` = 1, 2 and 3 and BLAS left at its default.

Every run is a separate `striate train` process with a clean environment (no OPENBLAS_NUM_THREADS), so
nothing the test session pinned leaks in. Bit equality is what the contract promises here: the same
shapes, the same thread count and the same algorithm. Where the CPU has AVX2 the matrix is repeated on
OpenBLAS's Haswell kernels, where a resumed process once computed differently from a straight one."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from striate.train.checkpoint import CheckpointStore

# a `striate train` that raises SIGTERM at iteration $STRIATE_TEST_STOP_AT, as a user's kill would
DRIVER = """
import os, signal, sys
from striate.cli import build_parser, train
from striate.train.callbacks import Callback

stop_at = int(os.environ.get("STRIATE_TEST_STOP_AT", "0"))

class StopAt(Callback):
    def on_batch_end(self, batch, logs):
        if logs["iteration"] == stop_at:
            signal.raise_signal(signal.SIGTERM)

args = build_parser().parse_args(sys.argv[1:])
sys.exit(train.run(args, callbacks=[StopAt()] if stop_at else []))
"""

BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "STRIATE_NUM_THREADS",
                  "OPENBLAS_CORETYPE")


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _env(threads: int, coretype: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARIABLES}
    env["STRIATE_NUM_THREADS"] = str(threads)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _train(driver, env, *args, stop_at=0, expect=0):
    r = subprocess.run([sys.executable, str(driver), "train", *args], env={**env, "STRIATE_TEST_STOP_AT": str(stop_at)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == expect, r.stderr[-2000:]


def _assert_same_weights(a: Path, b: Path):
    wa = CheckpointStore(a / "checkpoints").load("last")
    wb = CheckpointStore(b / "checkpoints").load("last")
    assert wa.state["progress"]["iteration"] == wb.state["progress"]["iteration"]
    differing = [k for k in wa.weights if not np.array_equal(wa.weights[k], wb.weights[k])]
    assert not differing, f"{len(differing)} of {len(wa.weights)} tensors differ after resume: {differing}"


LOOKAHEAD = ["--lookahead", "4"]
CASES = [(t, None) for t in (1, 2, 3)] + ([(2, "Haswell"), (3, "Haswell")] if _has_avx2() else [])


@pytest.mark.parametrize(("threads", "coretype"), CASES, ids=[f"{t}threads-{c or 'native'}" for t, c in CASES])
def test_epochs_in_one_go_equal_a_stop_and_a_resume(tmp_path, threads, coretype):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = _env(threads, coretype)
    common = ["--seed", "3", "--report", "off", "--limit", "600"]
    # with augmentation, stopped by SIGTERM in the middle of epoch 2 (10 steps an epoch); with the lookahead
    # average (copied back every 4 steps: its average is saved, and the last 2 of the 30 steps are dropped)
    aug = [*common, "--augment", "crop,flip", *LOOKAHEAD]
    _train(driver, env, "--epochs", "3", "--out", str(tmp_path / "a"), *aug)
    _train(driver, env, "--epochs", "3", "--out", str(tmp_path / "b"), *aug, stop_at=14, expect=128 + signal.SIGTERM)
    assert CheckpointStore(tmp_path / "b" / "checkpoints").load("last").state["progress"]["batch"] == 5
    _train(driver, env, "--resume", str(tmp_path / "b"), "--epochs", "3")
    _assert_same_weights(tmp_path / "a", tmp_path / "b")
    # without augmentation, 1 epoch then a resume to 2 (the reproduction)
    _train(driver, env, "--epochs", "2", "--out", str(tmp_path / "c"), *common)
    _train(driver, env, "--epochs", "1", "--out", str(tmp_path / "d"), *common)
    _train(driver, env, "--resume", str(tmp_path / "d"), "--epochs", "2")
    _assert_same_weights(tmp_path / "c", tmp_path / "d")


AIRBENCH_LIKE = """optimizer = "nesterov"
lr = 0.02
momentum = 0.85
weight_decay = 0.005
decoupled_weight_decay = true
loss_reduction = "sum"
label_smoothing = 0.2
schedule = "triangular"
augment = ["translate:2", "altflip"]
drop_last = true
[[param_groups]]
match = "*.bias"
lr_mult = 8
[[param_groups]]
match = "Linear.weight"
decay_mult = 0.5
"""


def test_the_fast_recipes_pieces_resume_exactly(tmp_path):
    """The CIFAR-10 recipe's pieces together: translate and altflip keyed like the other augmentations (stopped
    in odd epoch 2, altflip mirrored, resumed into even epoch 3), drop_last (8 steps an epoch) counted alike,
    parameter groups, decoupled decay, the triangular schedule and a summed loss."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    (tmp_path / "run.toml").write_text(AIRBENCH_LIKE)
    env = _env(2, None)
    common = ["--config", str(tmp_path / "run.toml"), "--seed", "3", "--report", "off", "--limit", "600",
              "--epochs", "3"]
    _train(driver, env, "--out", str(tmp_path / "a"), *common)
    _train(driver, env, "--out", str(tmp_path / "b"), *common, stop_at=11, expect=128 + signal.SIGTERM)
    state = CheckpointStore(tmp_path / "b" / "checkpoints").load("last").state
    assert state["progress"]["batch"] == 3
    assert [(g["lr_mult"], g["decay_mult"]) for g in state["optimizer"]["groups"]] == [(8, 1), (1, 0.5), (1, 1)]
    _train(driver, env, "--resume", str(tmp_path / "b"), "--epochs", "3")
    _assert_same_weights(tmp_path / "a", tmp_path / "b")
