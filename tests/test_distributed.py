"""Data-parallel training on MPI, run for real with `mpiexec -n 2` (skipped without the `mpi` extra):
K ranks equal one process on the same global batch, rank 0 alone writes, a signal on any rank stops every rank
with a checkpoint, a run resumes under another K, a rank that hangs or fails ends the job, and `import striate`
never imports mpi4py."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from striate.distributed import launched_size, under_launcher

# the launcher installed with mpi4py's MPI (the mpi extra's mpich) first: another MPI's mpiexec on the PATH
# would start processes that cannot talk to each other
_BESIDE = Path(sys.executable).with_name("mpiexec")
MPIEXEC = str(_BESIDE) if _BESIDE.exists() else shutil.which("mpiexec") or str(_BESIDE)
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or not os.path.exists(MPIEXEC),
                               reason="the mpi extra is not installed (pip install 'striate[mpi]')")
QUICK = ["--report", "off", "--diagnostics", "0"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_", "PMIX_"))}
    return {**env, **extra}


def striate(ranks: int, *args, env=None, timeout=240) -> subprocess.CompletedProcess:
    """`mpiexec -n ranks python -m striate train …` (ranks 0: without mpiexec)."""
    cmd = [sys.executable, "-m", "striate", "train", *args]
    if ranks:
        cmd = [MPIEXEC, "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or _env(), timeout=timeout)


def start(ranks: int, *args, env=None) -> subprocess.Popen:
    cmd = [MPIEXEC, "-n", str(ranks), sys.executable, "-m", "striate", "train", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env())


def weights(run: Path) -> dict:
    from striate.run import RunDir

    return RunDir(run).store.load("last").weights


def relative_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(a[k]).max(), 1e-12)) for k in a)


def epoch_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "epoch"]


def rank_pid(out: Path, rank: int, wait: float = 60) -> int:
    """The pid of `rank` of the job writing `out` (from /proc: its command line and the launcher's PMI_RANK)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                ours = str(out).encode() in cmdline and b"striate" in cmdline
                if not ours or any(b"mpiexec" in c for c in cmdline):
                    continue
                environ = (proc / "environ").read_bytes().split(b"\0")
            except (OSError, ValueError):
                continue
            if f"PMI_RANK={rank}".encode() in environ:
                return int(proc.name)
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} found for {out}")


def wait_for_epochs(out: Path, n: int, job: subprocess.Popen, wait: float = 120) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and job.poll() is None:
        if (out / "metrics.jsonl").exists() and len(epoch_records(out)) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{out} did not reach {n} epochs")


# ----- without MPI ------------------------------------------------------------------------

def test_launchers_are_recognised_from_their_environment():
    assert launched_size({}) is None and not under_launcher({})
    assert launched_size({"PMI_RANK": "1", "PMI_SIZE": "4"}) == 4 and under_launcher({"PMI_SIZE": "4"})
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2 and launched_size({"MV2_COMM_WORLD_SIZE": "3"}) == 3
    assert not under_launcher({"PMI_SIZE": "1"})  # mpiexec -n 1: one process, nothing to share
    assert launched_size({"PMIX_RANK": "0"}) == 0 and under_launcher({"PMIX_RANK": "0"})  # size: ask MPI


def test_import_striate_never_imports_mpi4py():
    code = ("import sys, striate, striate.distributed, striate.train, striate.run, striate.cli\n"
            "from striate.distributed import world\n"
            "print(type(world()).__name__, 'mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.stdout.split() == ["Single", "False"], out.stderr


# ----- with MPI ---------------------------------------------------------------------------

@needs_mpi
def test_two_ranks_equal_one_process_and_only_rank_0_writes(tmp_path):
    args = ["--model", "three_layer", "--epochs", "3", "--seed", "1", "--batch-size", "64", *QUICK]
    one = striate(0, *args, "--out", str(tmp_path / "one"))
    two = striate(2, *args, "--out", str(tmp_path / "two"))
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert relative_difference(weights(tmp_path / "one"), weights(tmp_path / "two")) < 1e-4
    records = epoch_records(tmp_path / "two")
    assert [r["epoch"] for r in records] == [1, 2, 3]  # one writer
    assert records[-1]["val_accuracy"] >= 0.85
    assert abs(records[-1]["val_accuracy"] - epoch_records(tmp_path / "one")[-1]["val_accuracy"]) <= 0.01
    assert two.stdout.count("epoch 3/3") == 1 and two.stdout.count("run directory:") == 1  # one voice
    assert "error" not in two.stderr.lower()
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@needs_mpi
def test_every_rank_computes_with_rank_0s_convolution_algorithms(tmp_path):
    """Rank 1 told to use Winograd, rank 0 im2col: rank 1 adopts rank 0's choice (mode and table), so the run is
    the run whose ranks were both told im2col, bit for bit."""
    args = [sys.executable, "-m", "striate", "train", "--model", "digits_net", "--epochs", "1", "--limit", "400",
            *QUICK]

    def job(rank1_algo, out):
        cmd = [MPIEXEC, "-n", "1", "-env", "STRIATE_CONV_ALGO", "im2col", *args, "--out", str(out), ":",
               "-n", "1", "-env", "STRIATE_CONV_ALGO", rank1_algo, *args, "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=240)
        assert done.returncode == 0, done.stderr
        return weights(out)

    mixed, uniform = job("winograd", tmp_path / "mixed"), job("im2col", tmp_path / "uniform")
    assert all(np.array_equal(mixed[k], uniform[k]) for k in uniform)
    from striate.run import RunDir

    assert RunDir(tmp_path / "mixed").store.load("last").state["conv_algorithms"]["mode"] == "im2col"


@needs_mpi
def test_sync_bn_makes_batchnorm_nets_equal_one_process(tmp_path):
    """The global batch's statistics on every rank: 2 ranks with --sync-bn train the net one process trains,
    within 1e-4 after 3 epochs. im2col throughout (the rule picks by the local batch: Winograd for the one
    process's 64 images, im2col for the ranks' 32) and SGD with momentum: float32 rounding differs between
    a split and a whole batch, and Adam amplifies such differences in a BatchNorm net (this net under Adam,
    one process at 1 thread against 2, ends 1e-2 apart after 3 epochs; under SGD 7e-7)."""
    run_file = tmp_path / "bn.toml"
    run_file.write_text('epochs = 3\nseed = 2\nbatch_size = 64\noptimizer = "momentum"\nlr = 0.005\n'
                        '[model]\nname = "reference"\nwidths = [8, 16, 16]\nhidden = 32\ndropout = 0.0\n')
    args, env = ["--config", str(run_file), *QUICK], _env(STRIATE_CONV_ALGO="im2col")
    one = striate(0, *args, "--out", str(tmp_path / "one"), env=env)
    synced = striate(2, *args, "--sync-bn", "--out", str(tmp_path / "synced"), env=env)
    local = striate(2, *args, "--out", str(tmp_path / "local"), env=env)
    for job in (one, synced, local):
        assert job.returncode == 0, job.stderr
    assert relative_difference(weights(tmp_path / "one"), weights(tmp_path / "synced")) < 1e-4
    # each rank's own statistics (DDP's default) train a different, still sound, net
    assert relative_difference(weights(tmp_path / "one"), weights(tmp_path / "local")) > 1e-2
    assert epoch_records(tmp_path / "local")[-1]["val_accuracy"] > 0.5
    # a last batch of 2 images over 3 ranks: one rank has none and still takes part in every exchange
    three = striate(3, *args, "--sync-bn", "--batch-size", "1292", "--epochs", "1", "--out", str(tmp_path / "three"),
                    env=env)
    alone = striate(0, *args, "--batch-size", "1292", "--epochs", "1", "--out", str(tmp_path / "alone"), env=env)
    assert three.returncode == 0 and alone.returncode == 0, three.stderr + alone.stderr
    assert relative_difference(weights(tmp_path / "alone"), weights(tmp_path / "three")) < 1e-4


@needs_mpi
def test_a_short_last_batch_splits_unevenly_and_dropout_is_keyed(tmp_path):
    """1,294 training images in batches of 100: the last has 94 (32/31/31 over 3 ranks); three_layer with
    keyed augmentation (crops, input noise), a max-norm constraint and an EMA of the weights (evaluated on
    the validation split, split over the ranks): 3 ranks train what 1 process trains."""
    args = ["--model", "three_layer", "--epochs", "2", "--batch-size", "100", "--augment", "crop,noise:0.05",
            "--ema-decay", "0.9", "--max-norm", "4", "--lookahead", "3", *QUICK]
    one = striate(0, *args, "--out", str(tmp_path / "one"))
    three = striate(3, *args, "--out", str(tmp_path / "three"))
    assert one.returncode == 0 and three.returncode == 0, three.stderr
    assert relative_difference(weights(tmp_path / "one"), weights(tmp_path / "three")) < 1e-4


@needs_mpi
def test_sigterm_on_one_rank_stops_every_rank_with_a_checkpoint_and_resumes_under_another_k(tmp_path):
    out = tmp_path / "run"
    job = start(2, "--model", "three_layer", "--epochs", "400", "--batch-size", "16", "--out", str(out), *QUICK)
    try:
        wait_for_epochs(out, 2, job)
        os.kill(rank_pid(out, 1), signal.SIGTERM)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 128 + signal.SIGTERM, stderr
    assert "interrupted by SIGTERM" in stdout and f"striate train --resume {out}" in stderr
    from striate.run import RunDir

    done = RunDir(out).store.load("last").state["progress"]["epoch"]
    resumed = striate(0, "--resume", str(out), "--epochs", str(done + 1))  # one process after two
    assert resumed.returncode == 0, resumed.stderr
    again = striate(2, "--resume", str(out), "--epochs", str(done + 2))  # and two again
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == done + 2


@needs_mpi
def test_a_resume_under_another_k_continues_like_the_run_itself(tmp_path):
    args = ["--model", "three_layer", "--seed", "3", "--batch-size", "32", *QUICK]
    straight = striate(2, *args, "--epochs", "3", "--out", str(tmp_path / "straight"))
    first = striate(2, *args, "--epochs", "2", "--out", str(tmp_path / "split"))
    assert straight.returncode == 0 and first.returncode == 0, first.stderr
    rest = striate(0, "--resume", str(tmp_path / "split"), "--epochs", "3")
    assert rest.returncode == 0, rest.stderr
    assert relative_difference(weights(tmp_path / "straight"), weights(tmp_path / "split")) < 1e-4


@needs_mpi
def test_a_rank_that_hangs_ends_the_job_with_a_clear_error(tmp_path):
    out = tmp_path / "run"
    job = start(2, "--model", "three_layer", "--epochs", "400", "--batch-size", "16", "--out", str(out), *QUICK,
                env=_env(STRIATE_MPI_TIMEOUT="3"))
    stopped = None
    try:
        wait_for_epochs(out, 1, job)
        stopped = rank_pid(out, 1)
        os.kill(stopped, signal.SIGSTOP)
        begin = time.monotonic()
        _, stderr = job.communicate(timeout=60)
        waited = time.monotonic() - begin
    finally:
        job.kill()
        if stopped is not None:
            with pytest.raises(OSError):  # the launcher took the stopped rank down with the job
                for _ in range(50):
                    os.kill(stopped, signal.SIGCONT)
                    time.sleep(0.1)
    assert job.returncode != 0 and waited < 30, (job.returncode, waited, stderr)
    assert "rank 0 of 2 heard nothing from the other ranks for 3 s" in stderr


@needs_mpi
def test_an_error_during_training_aborts_every_rank(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import sys\n"
        "from striate import cli\n"
        "from striate.cli import train\n"
        "from striate.train.callbacks import Callback\n"
        "class Boom(Callback):\n"
        "    def on_batch_end(self, batch, logs):\n"
        "        if self.trainer.iteration == 30:\n"
        "            raise OSError('the disk went away')\n"
        "run = train.run\n"
        "train.run = lambda args, callbacks=(): run(args, callbacks=[Boom()])\n"
        "sys.exit(cli.main(sys.argv[1:]))\n")
    cmd = [MPIEXEC, "-n", "2", sys.executable, str(driver), "train", "--model", "three_layer", "--epochs", "50",
           "--out", str(tmp_path / "run"), *QUICK]
    begin = time.monotonic()
    job = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert job.returncode != 0 and time.monotonic() - begin < 60
    assert job.stderr.count("striate train: error: the disk went away") == 1


@needs_mpi
def test_an_error_before_training_reaches_every_rank_as_one_line(tmp_path):
    job = striate(2, "--resume", str(tmp_path / "nothing-here"))
    assert job.returncode == 2
    errors = [line for line in job.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("striate train: error:"), job.stderr
