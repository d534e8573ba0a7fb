"""Faults while writing: a full disk in the middle of a checkpoint leaves nothing behind and a retry
succeeds; leftovers of writers killed mid-write are removed (never a live writer's); SIGHUP stops training
like SIGTERM; a signal while report.html is drawn says so and summary.json tells the truth; Ctrl-C while
`striate` imports is one line, not a traceback."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from striate import atomic
from striate.train import checkpoint as checkpoint_module
from striate.train.checkpoint import CheckpointStore

SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = ["--limit", "300", "--report", "off", "--diagnostics", "0"]


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def _state(n=50_000):
    weights = {"w": np.arange(n, dtype=np.float32)}
    return weights, {"progress": {"epoch": 1}, "m": np.ones(n, dtype=np.float32)}


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def live_pid():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p.pid
    p.kill()
    p.wait()


# ----- a full disk during a checkpoint write ---------------------------------------------------------------
def _full_disk_at(monkeypatch, target: str, on_call: int):
    """Make `checkpoint.<target>` raise ENOSPC on its `on_call`-th call (1-based), as a full disk would."""
    real = getattr(checkpoint_module, target)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == on_call:
            if target == "write_synced":  # a partial file first: the disk filled up in the middle of it
                Path(args[0]).write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint_module, target, failing)


PHASES = [("write_synced", 1), ("write_synced", 2), ("write_synced", 3), ("fsync_dir", 1), ("write_atomic", 1)]


@pytest.mark.parametrize(("target", "on_call"), PHASES, ids=[f"{t}-{n}" for t, n in PHASES])
def test_a_full_disk_mid_save_leaves_nothing_behind_and_a_retry_succeeds(tmp_path, monkeypatch, target, on_call):
    store = CheckpointStore(tmp_path / "checkpoints")
    first = store.save(*_state())
    with monkeypatch.context() as m:
        _full_disk_at(m, target, on_call)
        with pytest.raises(OSError) as e:
            store.save(*_state())
        assert e.value.errno == errno.ENOSPC
    assert _leftovers(store.directory) == []
    assert store.load("last").generation == first  # the last good checkpoint still loads
    second = store.save(*_state())
    assert store.load("last").generation == second
    assert sorted(p.name for p in store.directory.iterdir()) == [second, "last"]  # and nothing else


def test_os_rename_failing_removes_the_temporary_generation(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(*_state())

    def rename(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "rename", rename)
    with pytest.raises(OSError):
        store.save(*_state())
    assert _leftovers(store.directory) == []


# ----- leftovers of writers killed mid-write -----------------------------------------------------------
def _plant(directory: Path, pid: int) -> list[Path]:
    """What a writer with process id `pid` leaves when killed mid-write: a generation directory being written
    and a pointer's temporary file (write_atomic's name)."""
    directory.mkdir(parents=True, exist_ok=True)
    gen = directory / f".tmp-gen-000099-{pid}"
    gen.mkdir()
    (gen / "weights.safetensors").write_bytes(b"\0" * 300_000)
    pointer = directory / f".last.tmp-{pid}"
    pointer.write_text('{"generation": "gen-0000')
    return [gen, pointer]


def test_the_next_save_removes_a_dead_writers_leftovers_not_a_live_ones(tmp_path, live_pid):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(*_state())
    dead = _plant(store.directory, _dead_pid())
    live = _plant(store.directory, live_pid)
    store.save(*_state())
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in live)


def test_a_save_into_a_full_store_succeeds_once_the_dead_leftover_is_gone(tmp_path, monkeypatch):
    """The issue's case: the leftover holds the space the retry needs. Here the 'disk' takes 400 KB more."""
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(*_state())
    _plant(store.directory, _dead_pid())
    real = checkpoint_module.write_synced

    def small_disk(path, data):
        used = sum(f.stat().st_size for f in store.directory.rglob("*") if f.is_file())
        if used + len(data) > 1_000_000:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(checkpoint_module, "write_synced", small_disk)
    store.save(*_state())
    assert _leftovers(store.directory) == []


def test_remove_stale_temps_covers_every_temporary_name(tmp_path, live_pid):
    dead = _dead_pid()
    names = {f".summary.json.tmp-{dead}": False, f".tmp-gen-000003-{dead}": False, f".config.toml.tmp-{dead}": False,
             f".summary.json.tmp-{live_pid}": True, f".tmp-gen-000004-{live_pid}": True,
             f".tmp-gen-000005-{os.getpid()}": True, "summary.json": True, ".lock": True, "notes.tmp-1": True}
    for name in names:
        (tmp_path / name).write_text("x")
    atomic.remove_stale_temps(tmp_path)
    assert {n: (tmp_path / n).exists() for n in names} == names


def test_write_atomic_leaves_no_temporary_file_on_a_full_disk(tmp_path, monkeypatch):
    def full(path, data):
        Path(path).write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(atomic, "write_synced", full)
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(OSError):
        atomic.write_atomic(tmp_path / "summary.json", "{\"status\": \"finished\"}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert (tmp_path / "summary.json").read_text() == "{}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "r"
    r = subprocess.run([sys.executable, "-m", "striate", "train", "--epochs", "1", "--out", str(out), *FAST],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return out


def test_a_resume_removes_dead_writers_leftovers_in_the_run_directory(trained, tmp_path, live_pid):
    import shutil

    run = tmp_path / "r"
    shutil.copytree(trained, run)
    dead = _plant(run / "checkpoints", _dead_pid()) + [run / f".summary.json.tmp-{_dead_pid()}"]
    dead[-1].write_text("{")
    live = _plant(run / "checkpoints", live_pid)
    r = subprocess.run([sys.executable, "-m", "striate", "train", "--resume", str(run), "--epochs", "1"],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr  # nothing to do: 1 epoch is trained, yet the leftovers go
    assert not any(p.exists() for p in dead)
    assert all(p.exists() for p in live)


# ----- SIGHUP: a closed terminal, a lost ssh session ----------------------------------------------------
SLOW_TRAIN = """
import sys, time
from pathlib import Path
from striate.cli import build_parser, train
from striate.train.callbacks import Callback

class Slow(Callback):
    order = 90
    def on_batch_end(self, batch, logs):
        if logs["iteration"] == 3:
            Path(sys.argv[1]).write_text("ready")
        time.sleep(0.05)

args = build_parser().parse_args(sys.argv[2:])
sys.exit(train.run(args, callbacks=[Slow()]))
"""


def _slow_train(tmp_path, out: Path, **popen):
    script, ready = tmp_path / "slow_train.py", tmp_path / "ready"
    script.write_text(SLOW_TRAIN)
    proc = subprocess.Popen([sys.executable, str(script), str(ready), "train", "--epochs", "50", "--out", str(out),
                             "--limit", "300", "--diagnostics", "0"], env=_env(), **popen)
    return proc, ready


def _wait_for_file(path: Path, proc, drain=None, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the run ended before it was ready"
        assert time.monotonic() < deadline, "timed out"
        if drain is not None:
            drain()
        time.sleep(0.02)


def _interrupted_and_resumable(out: Path, signame: str):
    progress = CheckpointStore(out / "checkpoints").load("last").state["progress"]
    assert progress["iteration"] >= 3  # the epoch so far is in the checkpoint (epoch 1 has 5 steps)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and signame in summary["stop_reason"]
    r = subprocess.run([sys.executable, "-m", "striate", "train", "--resume", str(out), "--epochs", "1"],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert CheckpointStore(out / "checkpoints").load("last").state["progress"]["epoch"] == 1


def test_sighup_finishes_the_step_saves_says_one_line_and_exits_129(tmp_path):
    out = tmp_path / "r"
    proc, ready = _slow_train(tmp_path, out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_file(ready, proc)
    proc.send_signal(signal.SIGHUP)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGHUP == 129, stderr
    assert stderr.count("SIGHUP: finishing this step and saving a checkpoint") == 1
    assert "Traceback" not in stderr and f"striate train --resume {out}" in stderr
    assert "interrupted" in stdout
    _interrupted_and_resumable(out, "SIGHUP")


def test_a_closed_terminal_saves_the_epoch_so_far_and_exits_129(tmp_path):
    """The real thing: the run's controlling terminal (a pty) is closed while the bar is drawn on it; writes
    to it fail with EIO from then on, and the kernel sends SIGHUP."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()

    def own_terminal():  # the child is a session leader whose controlling terminal is the pty
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    out = tmp_path / "r"
    proc, ready = _slow_train(tmp_path, out, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                              preexec_fn=own_terminal)
    os.close(slave)
    seen = bytearray()

    def drain():
        while select.select([master], [], [], 0)[0]:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:
                return

    try:
        _wait_for_file(ready, proc, drain)
        drain()
    finally:
        os.close(master)  # the terminal goes away: SIGHUP, and EIO on every later write
    assert proc.wait(timeout=60) == 129, seen.decode(errors="replace")[-2000:]
    _interrupted_and_resumable(out, "SIGHUP")


def test_under_nohup_sighup_is_still_ignored(tmp_path):
    out = tmp_path / "r"
    proc, ready = _slow_train(tmp_path, out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    _wait_for_file(ready, proc)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None  # nohup's promise holds: training goes on
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "SIGHUP" not in stderr


# ----- a signal after training: while the test split is evaluated or report.html drawn ------------------
SLOW_AFTER = """
import importlib, sys, time
from pathlib import Path
from striate.cli import build_parser, train

execute = importlib.import_module("striate.run.execute")

ready, step = Path(sys.argv[1]), sys.argv[2]
real = getattr(execute, step)

def slow(*args, **kwargs):
    ready.write_text("ready")
    time.sleep(30)  # a large report, a slow machine: long enough for any signal to land here
    return real(*args, **kwargs)

setattr(execute, step, slow)
args = build_parser().parse_args(sys.argv[3:])
sys.exit(train.run(args))
"""

AFTER_SIGNALS = [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)]


def _signal_after_training(tmp_path, step: str, signame: str):
    script, ready, out = tmp_path / "slow_after.py", tmp_path / "ready", tmp_path / "r"
    script.write_text(SLOW_AFTER)
    proc = subprocess.Popen([sys.executable, str(script), str(ready), step, "train", "--epochs", "1", "--out", str(out),
                             "--limit", "300", "--diagnostics", "0", "--report", "on"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for_file(ready, proc)
    start = time.monotonic()
    proc.send_signal(getattr(signal, signame))
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - start < 20  # it stopped, rather than finishing the 30 s step
    return proc.returncode, stdout, stderr, out


@pytest.mark.parametrize(("signame", "status"), AFTER_SIGNALS)
def test_a_signal_while_the_report_is_drawn_is_said_and_summary_json_tells_the_truth(tmp_path, signame, status):
    code, stdout, stderr, out = _signal_after_training(tmp_path, "draw_report", signame)
    assert code == status, stderr
    lines = [line for line in stderr.splitlines() if signame in line]
    assert len(lines) == 1 and "while drawing report.html" in lines[0] and f"striate report {out}" in lines[0]
    assert "Traceback" not in stderr and "error" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["report"] == "interrupted"
    assert summary["after_training"]["status"] == "finished" and "test" in summary
    assert not (out / "report.html").exists()
    # the command it names draws the page, and summary.json then says what the run is again
    r = subprocess.run([sys.executable, "-m", "striate", "report", str(out)], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and "report" not in summary and "after_training" not in summary


def test_a_signal_while_the_test_split_is_evaluated_says_what_was_not_done(tmp_path):
    code, _, stderr, out = _signal_after_training(tmp_path, "evaluate_test", "SIGTERM")
    assert code == 143, stderr
    assert "SIGTERM while evaluating the test split" in stderr and f"striate eval {out}" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "test" not in summary
    assert summary["after_training"]["while"] == "evaluating the test split"


# ----- Ctrl-C while `striate` loads --------------------------------------------------------------------
def _entry_point() -> str:
    """The console script's target as pyproject.toml declares it ('module:function')."""
    import tomllib

    scripts = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts["striate"]


# A slow import (a cold disk, a network file system): NumPy takes 30 s to load, announced by a file.
SLOW_IMPORT = """
import importlib, pathlib, sys, time

ready = pathlib.Path(sys.argv[1])

class SlowNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            ready.write_text("ready")
            time.sleep(30)
        return None

sys.meta_path.insert(0, SlowNumpy())
how, sys.argv = sys.argv[2], ["striate", "train", "--epochs", "1", "--out", sys.argv[3]]
if how == "-m":  # what `python -m striate` does
    import runpy
    runpy.run_module("striate", run_name="__main__", alter_sys=True)
else:  # what the console script does: `from <module> import <function>; sys.exit(<function>())`
    module, function = how.split(":")
    sys.exit(getattr(importlib.import_module(module), function)())
"""


@pytest.mark.parametrize("how", ["script", "-m"])
def test_ctrl_c_while_striate_loads_is_one_line_and_status_130(tmp_path, how):
    script, ready = tmp_path / "slow_import.py", tmp_path / "ready"
    script.write_text(SLOW_IMPORT)
    proc = subprocess.Popen([sys.executable, str(script), str(ready), _entry_point() if how == "script" else how,
                             str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    _wait_for_file(ready, proc, timeout=60)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines() == ["striate: interrupted"]
    assert not (tmp_path / "r").exists()


def test_importing_the_entry_point_loads_next_to_nothing():
    module = _entry_point().split(":")[0]
    code = f"import sys; import {module}; print(sorted(m for m in ('numpy', 'argparse') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("step", ["evaluate_test", "draw_report"])
def test_a_full_disk_after_training_is_recorded_in_summary_json(tmp_path, monkeypatch, capsys, step):
    import importlib

    from striate.cli import main

    execute = importlib.import_module("striate.run.execute")
    real = getattr(execute, step)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "plots" / "loss.png"))

    out = tmp_path / "r"
    monkeypatch.setattr(execute, step, full)
    assert main(["train", "--epochs", "1", "--out", str(out), "--limit", "300", "--diagnostics", "0",
                 "--report", "on"]) == 1
    assert "no space left on the device" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["report"].startswith("failed") and f"striate report {out}" in summary["report"]
    assert summary["after_training"]["failed_while"] in ("evaluating the test split", "drawing report.html")
    assert ("test" in summary) == (step == "draw_report")
    monkeypatch.setattr(execute, step, real)
    assert main(["report", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "report" not in summary and summary["status"] == "finished" and (out / "report.html").exists()
    assert ("after_training" in summary) == (step == "evaluate_test")  # the test split still is not evaluated


def test_a_full_disk_while_a_snapshot_is_written_leaves_no_torn_snapshot(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from striate.models.ensemble import SnapshotEnsemble

    def full(path, data):
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    snaps = SnapshotEnsemble(1, directory=tmp_path / "snapshots")
    model = SimpleNamespace(state_dict=lambda: {"w": np.ones((64, 64), dtype=np.float32)})
    snaps.set_trainer(SimpleNamespace(iteration=1, model=model))
    monkeypatch.setattr(atomic, "write_synced", full)
    with pytest.raises(OSError):
        snaps.on_batch_end(0, {})
    assert list((tmp_path / "snapshots").iterdir()) == []
