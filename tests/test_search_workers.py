"""Search workers as separate processes: two on one SQLite study, a worker killed mid-trial (heartbeat),
and two on a real PostgreSQL server on loopback (.ci/postgres.sh; STRIATE_TEST_POSTGRES=URL uses a
running one instead)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from striate.cli.search import add_arguments as add_search_arguments  # noqa: E402
from striate.cli.search import run as run_search  # noqa: E402
from striate.search import load  # noqa: E402
from striate.search.launch import _blas_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PG_SCRIPT = ROOT / ".ci" / "postgres.sh"

SEARCH = """
[search]
trials = {trials}
heartbeat = 1
grace = 3
stages = [{{epochs = {epochs}}}]
[train]
data = "digits"
limit = 400
[space]
lr = {{log_uniform = [1e-3, 3e-2]}}
reg = {{log_uniform = [1e-6, 1e-3]}}
"""


def search(tmp_path, text: str, *flags: str, name: str = "w") -> tuple[int, Path]:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    out = tmp_path / name
    parser = argparse.ArgumentParser()
    add_search_arguments(parser)
    args = parser.parse_args([str(path), "--out", str(out), *flags])
    return run_search(args), out


def study_trials(storage: str, name: str = "w"):
    return optuna.load_study(study_name=f"{name}/stage1", storage=storage).get_trials()


def assert_exactly_once(ts, n: int, out: Path | None = None):
    assert sorted(t.number for t in ts) == list(range(n))  # none lost, none extra
    assert len({(t.params["lr"], t.params["reg"]) for t in ts}) == n  # no configuration run twice
    if out is not None:
        assert sorted(p.name for p in (out / "trials").iterdir()) == [f"stage1-{k:04d}" for k in range(n)]


def test_two_worker_processes_share_one_sqlite_study(tmp_path):
    status, out = search(tmp_path, SEARCH.format(trials=8, epochs=2), "--workers", "2")
    assert status == 0
    ts = study_trials(f"sqlite:///{out / 'study.db'}")
    assert all(t.state.name == "COMPLETE" for t in ts)
    assert_exactly_once(ts, 8, out)
    workers = {t.user_attrs["worker"] for t in ts}
    assert len(workers) == 2, workers  # both processes took trials
    assert len((out / "results.txt").read_text().splitlines()) == 1 + 8


def test_killed_worker_leaves_its_trial_failed_and_the_search_carries_on(tmp_path):
    text = SEARCH.format(trials=2, epochs=10)
    path = tmp_path / "w.toml"
    path.write_text(text)
    out = tmp_path / "w"
    out.mkdir()
    (out / "search.json").write_text(load(path).to_json() + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "striate.search.worker", str(out)], env=_blas_env(2),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "trials" / "stage1-0000" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (metrics.exists() and metrics.stat().st_size > 0):  # trial 0 has finished its first epoch
        assert proc.poll() is None, "the worker exited before it was killed"
        assert time.monotonic() < deadline, "trial 0 never got through an epoch"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    storage = f"sqlite:///{out / 'study.db'}"
    assert [t.state.name for t in study_trials(storage)] == ["RUNNING"]  # as the dead worker left it

    # `striate search` again on the directory: trial 1 runs, trial 0 is failed once its heartbeat is
    # `grace` (3 s) old, and the report says why
    started = time.monotonic()
    status, out = search(tmp_path, text)
    assert status == 0 and time.monotonic() - started < 60
    ts = study_trials(storage)
    assert [t.number for t in ts] == [0, 1]
    assert ts[0].state.name == "FAIL" and "status" not in ts[0].user_attrs  # failed by the heartbeat check
    assert ts[1].state.name == "COMPLETE"
    rows = [line.split() for line in (out / "results.txt").read_text().splitlines()[1:]]
    assert rows[0][1] == "1" and rows[0][-1] == "complete"
    assert rows[1][1] == "0" and rows[1][-1] == "died"
    assert "stopped sending heartbeats" in (out / "search_report.html").read_text()


@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("STRIATE_TEST_POSTGRES")
    if url:
        yield url
        return
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        pytest.skip("the PostgreSQL test needs a driver: pip install 'striate[search]' (psycopg)")
    directory = tempfile.mkdtemp(prefix="striate-pg-")
    try:
        proc = subprocess.run(["bash", str(PG_SCRIPT), "start", directory], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        proc = None
        why = str(e)
    if proc is None or proc.returncode != 0:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", directory], capture_output=True)
        why = why if proc is None else (proc.stderr.strip() or f"exit status {proc.returncode}")
        pytest.skip(f"no PostgreSQL server could be started on loopback by .ci/postgres.sh: {why}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", directory], capture_output=True, timeout=60)


def test_two_workers_share_one_postgresql_study(tmp_path, postgres_url):
    name = f"pg{os.getpid()}"  # a fresh study on a server that may be shared
    text = SEARCH.format(trials=6, epochs=1).replace("[search]", f'[search]\nname = "{name}"')
    status, out = search(tmp_path, text, "--workers", "2", "--storage", postgres_url, name=name)
    assert status == 0
    assert not (out / "study.db").exists()  # the study lives in PostgreSQL
    ts = study_trials(postgres_url, name=name)
    assert all(t.state.name == "COMPLETE" for t in ts)
    assert_exactly_once(ts, 6, out)
    assert len({t.user_attrs["worker"] for t in ts}) == 2
    assert "postgresql" not in (out / "search.json").read_text()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker processes through /proc")
def test_a_worker_killed_under_striate_search_exits_1_and_the_study_completes(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text(SEARCH.format(trials=4, epochs=4))
    out = tmp_path / "k"
    proc = subprocess.Popen([sys.executable, "-m", "striate", "search", str(path), "--out", str(out),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while len(_children(proc.pid)) < 2 or not any((out / "trials").glob("*/metrics.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline, "the workers never started a trial"
        time.sleep(0.05)
    os.kill(_children(proc.pid)[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 1, stderr
    assert "killed by signal 9" in stderr and "Traceback" not in stderr
    ts = study_trials(f"sqlite:///{out / 'study.db'}", name="k")
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in ts)  # completed: the dead worker's trial failed
    assert "died" in (out / "results.txt").read_text() or all(t.state.name == "COMPLETE" for t in ts)


def test_the_report_shows_the_stored_state_of_a_trial_whose_worker_died_after_recording_it(tmp_path):
    """A worker that set its trial's status to complete and died before telling the study: Optuna holds FAIL
    (the heartbeat check), and that is what the results say, not "complete" with a blank value."""
    from striate.search import report
    from striate.search.runner import study_name
    from striate.search.storage import open_storage

    path = tmp_path / "d.toml"
    path.write_text(SEARCH.format(trials=1, epochs=1))
    spec = load(path)
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", spec)
    study = optuna.create_study(study_name=study_name(spec, 0), storage=storage, direction="maximize")
    trial = study.ask()
    trial.set_user_attr("status", "complete")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    rows, _ = report.collect(spec, storage)
    assert [(r.status, r.value) for r in rows] == [("died", None)]
    assert "stopped" in rows[0].reason


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_not_waited_for(tmp_path):
    """A worker killed between `ask` and its first heartbeat leaves a running trial without any heartbeat, which
    Optuna's stale check never fails: the others would wait for it forever. It is failed once `grace` has passed
    since it started; a trial whose live worker has recorded itself is left running."""
    from striate.search import report
    from striate.search.runner import fail_stale, study_name, wait_finished
    from striate.search.storage import open_storage

    path = tmp_path / "h.toml"
    path.write_text(SEARCH.format(trials=2, epochs=1))
    spec = load(path)
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", spec)
    study = optuna.create_study(study_name=study_name(spec, 0), storage=storage, direction="maximize")
    orphan = study.ask()  # its worker died here: no heartbeat, no 'worker' attribute
    alive = study.ask()
    storage.record_heartbeat(alive._trial_id)
    alive.set_user_attr("worker", "w1")
    fail_stale(study, grace=60)
    assert [t.state.name for t in study.get_trials()] == ["RUNNING", "RUNNING"]  # too young to judge
    time.sleep(0.3)
    fail_stale(study, grace=0.2)
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "RUNNING"]
    study.tell(alive, 0.5)
    trials = wait_finished(study, 2, poll=0.05, grace=0.2)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[0].number == orphan.number
    rows, _ = report.collect(spec, storage)
    assert rows[0].status == "died"
