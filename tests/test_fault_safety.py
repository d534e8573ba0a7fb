"""What fault injection found losing data: the metrics file rewritten in place on resume, a failed resume
rewriting the run's configuration, incomplete or tampered checkpoints resuming silently or with raw
exceptions, and two runs sharing one directory."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from striate.cli import main
from striate.train.checkpoint import CheckpointError, CheckpointStore

FAST = ["--limit", "300", "--report", "off", "--diagnostics", "0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety") / "run"
    assert main(["train", "--out", str(out), "--epochs", "2", "--seed", "2", *FAST]) == 0
    return out


@pytest.fixture
def copy(run, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


def _tamper_state(run: Path, edit) -> None:
    """Rewrite the `last` generation's state.json through `edit(doc)` (checksums cover only the arrays)."""
    store = CheckpointStore(run / "checkpoints")
    path = run / "checkpoints" / store.generation_of("last") / "state.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_resume_never_truncates_metrics_in_place(copy):
    """Records past the checkpoint are dropped on resume, by writing the kept ones to a temp file and renaming
    it: whoever holds the old file (a kill at that moment) still has every record."""
    path = copy / "metrics.jsonl"
    records = path.read_text().splitlines()
    last_iteration = json.loads(records[-1])["iteration"]
    ghost = [json.dumps({"type": "iteration", "epoch": 2, "batch": i, "iteration": last_iteration + 1 + i,
                         "loss": 1.0, "lr": 1e-3}) for i in range(5)]  # written after the checkpoint, then killed
    path.write_text("\n".join(records + ghost) + "\n")
    original = path.read_text()
    with open(path) as held:  # the inode a reader (or a crash) sees while the resume starts
        assert main(["train", "--resume", str(copy), "--epochs", "3"]) == 0
        assert held.read() == original  # the old file was replaced whole, never cut short
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["iteration"] for r in kept[:len(records)]] == [json.loads(r)["iteration"] for r in records]
    assert all(r["loss"] != 1.0 or r["iteration"] <= last_iteration for r in kept)


def test_a_failed_resume_leaves_the_configuration_alone(copy, capsys):
    before = {name: (copy / name).read_bytes() for name in ("config.json", "config.toml")}
    _tamper_state(copy, lambda doc: doc["state"].update(optimizer={"something": "else"}))  # found at restore
    assert main(["train", "--resume", str(copy), "--epochs", "9"]) == 1
    assert "'optimizer'" in capsys.readouterr().err
    assert {name: (copy / name).read_bytes() for name in before} == before
    weights = copy / "checkpoints" / CheckpointStore(copy / "checkpoints").generation_of("last") / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")  # found at load
    assert main(["train", "--resume", str(copy), "--epochs", "9"]) == 1
    assert "checksum" in capsys.readouterr().err
    assert {name: (copy / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("key", ["loader", "optimizer", "progress", "meta", "rngs"])
def test_an_incomplete_checkpoint_is_refused_with_one_message(copy, capsys, key):
    before = (copy / "config.json").read_bytes()
    _tamper_state(copy, lambda doc: doc["state"].pop(key))
    assert main(["train", "--resume", str(copy), "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("striate train: error: ") and f"'{key}'" in err
    assert "Traceback" not in err and (copy / "config.json").read_bytes() == before


def test_an_empty_loader_state_is_not_a_fresh_shuffle(copy, capsys):
    _tamper_state(copy, lambda doc: doc["state"].update(loader=None))
    assert main(["train", "--resume", str(copy), "--epochs", "3"]) == 1
    assert "fresh shuffle" in capsys.readouterr().err


def test_tampered_safetensors_with_recomputed_checksums_is_a_clear_error(copy, capsys):
    import hashlib

    store = CheckpointStore(copy / "checkpoints")
    gen = copy / "checkpoints" / store.generation_of("last")
    for name, blob in (("huge header", (1 << 40).to_bytes(8, "little") + b"{}"),
                       ("bad header", (5).to_bytes(8, "little") + b"{oops")):
        (gen / "weights.safetensors").write_bytes(blob)
        doc = json.loads((gen / "state.json").read_text())
        doc["files"]["weights.safetensors"] = hashlib.sha256(blob).hexdigest()
        (gen / "state.json").write_text(json.dumps(doc))
        with pytest.raises(CheckpointError, match="not valid safetensors"):
            store.load("last")
        assert main(["eval", str(copy), "--checkpoint", "last"]) == 1, name
        err = capsys.readouterr().err
        assert err.startswith("striate eval: error: ") and "weights.safetensors" in err and "Traceback" not in err


def test_a_run_in_progress_is_named_in_use_even_after_its_first_checkpoint(tmp_path):
    """`--out` of a directory whose run is still training: "in use" by that process, not "already holds a run"
    (which would suggest resuming a run that is running)."""
    out = tmp_path / "busy"
    cmd = [sys.executable, "-m", "striate", "train", "--out", str(out), "--epochs", "200", *FAST]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoints" / "last").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the test could start the second"
        for again in (cmd, [*cmd[:4], "--resume", str(out), "--epochs", "300"]):
            second = subprocess.run(again, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2 and "in use" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.kill()
        first.wait()


def test_two_runs_cannot_share_a_directory(tmp_path):
    """The second `striate train --out D` started while the first runs is refused, naming the holder; the
    first finishes undisturbed. A lock left by a dead process does not block the next run."""
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "striate", "train", "--out", str(out), "--epochs", "30", *FAST]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert "in use" in second.stderr and str(first.pid) in second.stderr
    first.kill()  # a dead holder: its lock goes with it
    first.wait()
    first.stderr.close()
    again = subprocess.run([sys.executable, "-m", "striate", "train", "--resume", str(out), "--epochs", "1"],
                           capture_output=True, text=True, timeout=120)
    assert "in use" not in again.stderr
