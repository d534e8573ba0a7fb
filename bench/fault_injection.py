"""Fault injection: kill -9 `striate train` while it writes checkpoints and while a resume starts, then check
that nothing was lost. A script, not a test (it runs for a minute or two).

    python bench/fault_injection.py [--kills 30] [--out /tmp/striate-faults]

Phase 1, checkpoint writes: a run on the embedded digits with short epochs (a checkpoint every ~0.1 s) is
killed the moment a generation is being written (a `.tmp-gen-*` directory exists), or, if none is caught
within a while, at a random moment. After each kill: `last` must load and verify, metrics.jsonl must parse
(a torn last line is allowed), and a resume must start from `last` and carry on.
Phase 2, resume start-up: `striate train --resume` is killed at a random moment of its first second (reading
the checkpoint, rebuilding the run, taking the lock, rewriting metrics.jsonl, the first steps). After each
kill: config.json/config.toml unchanged, every metrics record up to the checkpoint still there, `last`
loadable, and the lock gone with its process.
At the end the killed-and-resumed run is finished and its weights compared, bit for bit, with a run of the
same configuration that was never interrupted: the exactness promise, through every kill.

Faults while writing (each class counts its tries and those that held; a failed check is printed, not fatal):
- full disk: a run on a small tmpfs (mounted here, as root; the class is skipped with a note where mounting
  is not allowed) whose free space is cut, try by try, to points spread over everything a run writes
  (config, metrics, checkpoints, diagnostics, summary, evaluation, report). Held: status 0, or 1 with one
  `error:` line and no traceback; no temporary file left; `last` loads; summary.json claims no report that
  is missing; and, the space freed, a retry (a resume, or the same command) finishes.
- SIGHUP during training, sent with kill or by closing the run's terminal (a pty): held: status 129, one
  line (kill), a checkpoint of the epoch so far, and the next resume carries on.
- a signal (SIGTERM, SIGHUP, Ctrl-C) while the test split is evaluated or report.html drawn: held: status
  128 + signal (or 0 when the step ended first), one line, no traceback, summary.json true to report.html.
- kill -9 of one rank of `mpiexec -n 2 striate train` (skipped without mpiexec and mpi4py): held: the job
  ends within 10 s, non-zero, no rank left running, `last` loads, and the next resume carries on.

    python bench/fault_injection.py --classes full-disk,sighup,after-training,mpi-kill --tries 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from striate.train.checkpoint import CheckpointStore  # noqa: E402

EPOCHS = 400
COMMON = ["--limit", "300", "--batch-size", "64", "--seed", "7", "--report", "off", "--diagnostics", "0",
          "--augment", "crop,flip"]


def striate(*args: str) -> list[str]:
    return [sys.executable, "-m", "striate", *args]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def records(run: Path) -> list[dict]:
    out = []
    path = run / "metrics.jsonl"
    if not path.exists():
        return out
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            if i != len(lines) - 1:
                raise AssertionError(f"metrics.jsonl line {i + 1} of {len(lines)} is torn") from None
    return out


def check_run(run: Path) -> dict:
    """What a kill left: the last checkpoint's progress (or None), after verifying it loads."""
    store = CheckpointStore(run / "checkpoints")
    if not store.has("last"):
        return {}
    ck = store.load("last")  # verifies the checksums; raises on a torn generation
    return ck.state["progress"]


def _tmp_generations(ck: Path) -> set[str]:
    try:
        return {n for n in os.listdir(ck) if n.startswith(".tmp-gen-")}
    except FileNotFoundError:
        return set()


def kill_during_write(run: Path, patience: float, writes: int) -> tuple[str, dict]:
    """Resume the run and kill it the moment it starts writing its `writes`-th new generation."""
    ck = run / "checkpoints"
    stale = _tmp_generations(ck)  # left by earlier kills, removed before the next save
    proc = subprocess.Popen(striate("train", "--resume", str(run), "--epochs", str(EPOCHS)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    deadline = time.monotonic() + patience
    landed = "random moment"
    seen: set[str] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        seen |= _tmp_generations(ck) - stale
        if len(seen) >= writes:
            landed = "checkpoint write"
            break
    if proc.poll() is not None:
        return "finished before the kill", check_run(run)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return landed, check_run(run)


def kill_during_resume(run: Path, rng: random.Random) -> tuple[str, float]:
    config = {n: (run / n).read_bytes() for n in ("config.json", "config.toml")}
    done = check_run(run)["iteration"]
    before = [r for r in records(run) if r["iteration"] <= done]
    delay = rng.uniform(0.0, 1.2)
    proc = subprocess.Popen(striate("train", "--resume", str(run), "--epochs", str(EPOCHS)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    time.sleep(delay)
    if proc.poll() is not None:
        return "finished before the kill", delay
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    check_run(run)
    now = records(run)
    kept = [r for r in now if r["iteration"] <= done]
    assert kept == before, f"metrics records lost: {len(before)} before the resume, {len(kept)} after the kill"
    for name, data in config.items():
        assert (run / name).read_bytes() == data, f"{name} changed by a killed resume"
    return "resume start-up", delay


def finish(run: Path, epochs: int) -> None:
    r = subprocess.run(striate("train", "--resume", str(run), "--epochs", str(epochs)), capture_output=True,
                       text=True, env=env())
    if r.returncode != 0:  # a lock left behind, a refused checkpoint...
        raise AssertionError(f"resume failed ({r.returncode}): {r.stderr.strip()[-500:]}")


# ----- faults while writing -------------------------------------------------------------------------------
def _leftovers(run: Path) -> list[str]:
    """Temporary files and directories a failed or killed writer left (write_atomic's, checkpoints', .part)."""
    return [str(p.relative_to(run)) for p in run.rglob("*") if ".tmp" in p.name or p.name.endswith(".part")]


def _one_error_line(stderr: str) -> str | None:
    """None when stderr is what a failure must look like (one `error:` line, no traceback), else what is wrong."""
    if "Traceback" in stderr or "internal error" in stderr:
        return "a traceback or an internal error"
    errors = [line for line in stderr.splitlines() if ": error: " in line]
    return None if len(errors) == 1 else f"{len(errors)} error lines"


def _truthful_summary(run: Path) -> str | None:
    """None when summary.json (if any) is true to report.html: 'finished' without a `report` note only with the
    page there."""
    try:
        summary = json.loads((run / "summary.json").read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return "summary.json is torn"
    if summary.get("status") == "finished" and "report" not in summary and not (run / "report.html").exists():
        return "summary.json says finished, report.html is missing"
    return None


def _mount_tmpfs(where: Path, size: int) -> str | None:
    """Mount a tmpfs of `size` bytes at `where`; None when mounted, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root"
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                       text=True)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def full_disk(base: Path, tries: int, rng: random.Random) -> tuple[int, int, str]:
    mnt = base / "tmpfs"
    why = _mount_tmpfs(mnt, 64 << 20)
    if why is not None:
        return 0, 0, f"skipped: cannot mount a tmpfs here ({why})"
    args = ["--epochs", "2", "--limit", "300", "--seed", "7", "--diagnostics", "5", "--report", "on"]
    held = 0
    try:
        r = subprocess.run(striate("train", "--out", str(mnt / "baseline"), *args), capture_output=True, text=True,
                           env=env())
        assert r.returncode == 0, r.stderr
        total = sum(-(-f.stat().st_size // 4096) * 4096 for f in (mnt / "baseline").rglob("*") if f.is_file())
        shutil.rmtree(mnt / "baseline")
        for k in range(tries):
            # free bytes when the run starts, denser where the early writes are (config, metrics, the first
            # checkpoint), up to more than the run keeps (a checkpoint's old and new generations coexist)
            budget = int(total * 1.3 * ((k + rng.random()) / tries) ** 1.5)
            run, filler = mnt / f"run{k}", mnt / "filler"
            with open(filler, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, max(_free(mnt) - budget, 1))
            r = subprocess.run(striate("train", "--out", str(run), *args), capture_output=True, text=True, env=env())
            filler.unlink()
            said = [line for line in (r.stdout + r.stderr).splitlines() if line.strip() and ": error: " not in line]
            where = f"after '{said[-1].strip()[:40]}'" if r.returncode and said else ""
            problems = [p for p in (
                None if r.returncode in (0, 1) else f"status {r.returncode}",
                _one_error_line(r.stderr) if r.returncode else None,
                f"left behind: {_leftovers(run)}" if run.exists() and _leftovers(run) else None,
                _truthful_summary(run) if run.exists() else None) if p]
            if not problems and run.exists():
                try:
                    check_run(run)
                except Exception as e:  # noqa: BLE001 - any failure to load is what this counts
                    problems.append(f"last does not load: {e}")
            if r.returncode == 1 and not problems:  # the space freed, the retry finishes
                saved = (run / "checkpoints" / "last").exists()
                retry = (["report", str(run)] if saved and check_run(run).get("epoch") == 2  # resume: nothing to do
                         else ["train", "--resume", str(run), "--epochs", "2"] if saved
                         else ["train", "--out", str(run), *args])
                again = subprocess.run(striate(*retry), capture_output=True, text=True, env=env())
                if again.returncode != 0:
                    problems.append(f"the retry failed ({again.returncode}): {again.stderr.strip()[-300:]}")
                elif _truthful_summary(run) or not (run / "report.html").exists():
                    problems.append("after the retry: no report.html")
            held += not problems
            print(f"  try {k + 1:2d}: {budget / 1024:7.0f} KB free: status {r.returncode} {where}"
                  + (f"  NOT HELD: {'; '.join(problems)}" if problems else ""), flush=True)
            shutil.rmtree(run, ignore_errors=True)
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
    return tries, held, f"a 64 MB tmpfs, runs writing {total / 1024:.0f} KB"


def _last_iteration(run: Path) -> int:
    return max((r.get("iteration", 0) for r in records(run)), default=0)


def _wait_for_training(run: Path, after: int, proc, timeout: float = 120.0) -> bool:
    """Wait until the run records an iteration past `after` (training under way); False if it ended first.
    `after` must count the records a kill left past the checkpoint (stale until the resume drops them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r.get("iteration", 0) > after for r in records(run)[-3:]):
            return True
        time.sleep(0.05)
    return False


def _in_a_terminal(cmd: list[str]):
    """Start `cmd` with a new pty as its controlling terminal; returns (process, master fd)."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env(), start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    return proc, master


def sighup(base: Path, tries: int, rng: random.Random) -> tuple[int, int, str]:
    import select

    run = base / "hup"
    r = subprocess.run(striate("train", "--out", str(run), "--epochs", "1", *COMMON), capture_output=True, text=True,
                       env=env())
    assert r.returncode == 0, r.stderr
    held = 0
    for k in range(tries):
        before = check_run(run)["iteration"]
        cmd = striate("train", "--resume", str(run), "--epochs", str(EPOCHS))
        by_terminal = k % 2 == 1
        if by_terminal:
            proc, master = _in_a_terminal(cmd)
        else:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        started = _wait_for_training(run, max(before, _last_iteration(run)), proc) if not by_terminal else None
        if by_terminal:  # drain the terminal while waiting, or the run blocks on a full pty
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None and not started:
                while select.select([master], [], [], 0.05)[0]:
                    try:
                        os.read(master, 65536)
                    except OSError:
                        break
                started = any(r.get("iteration", 0) > before for r in records(run)[-3:])
        time.sleep(rng.uniform(0.0, 1.5))
        if by_terminal:
            os.close(master)  # the terminal goes away: the kernel sends SIGHUP, writes fail with EIO
            stderr = ""
            code = proc.wait(timeout=120)
        else:
            proc.send_signal(signal.SIGHUP)
            _, stderr = proc.communicate(timeout=120)
            code = proc.returncode
        problems = [p for p in (
            None if started else "training did not start",
            None if code == 129 else f"status {code}",
            None if by_terminal or stderr.count("SIGHUP: finishing this step") == 1 else "not one SIGHUP line",
            "a traceback" if "Traceback" in stderr else None) if p]
        try:
            after = check_run(run)["iteration"]
            if after <= before:
                problems.append(f"no checkpoint of the epoch so far (iteration {after})")
        except Exception as e:  # noqa: BLE001
            problems.append(f"last does not load: {e}")
            after = None
        held += not problems
        print(f"  try {k + 1:2d}: {'closed terminal' if by_terminal else 'kill -HUP':15s} status {code}, "
              f"last = iteration {before} → {after}" + (f"  NOT HELD: {'; '.join(problems)}" if problems else ""),
              flush=True)
    return tries, held, "half by kill -HUP, half by closing the pty (every try resumes the last)"


def after_training(base: Path, tries: int, rng: random.Random) -> tuple[int, int, str]:
    import threading

    cases = [(sig, step) for step in ("drawing report.html", "evaluating the test split")
             for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)]
    held = landed = 0
    for k in range(tries):
        sig, step = cases[k % len(cases)]
        run = base / f"after{k}"
        proc = subprocess.Popen(striate("train", "--out", str(run), "--epochs", "1", "--limit", "300", "--diagnostics",
                                        "5", "--report", "on"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env())
        lines: list[str] = []

        def read(p=proc, out=lines):
            for line in p.stderr:
                out.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while proc.poll() is None and not any(step in line for line in lines):
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(sig)
        stdout = proc.stdout.read()
        code = proc.wait(timeout=120)
        reader.join(timeout=10)
        stderr = "".join(lines)
        said = [line for line in stderr.splitlines() if f"{sig.name} while" in line]
        hit = code == 128 + sig
        landed += hit
        problems = [p for p in (
            None if code in (0, 128 + sig) else f"status {code}",
            None if not hit or len(said) == 1 else f"{len(said)} lines name the signal",
            "a traceback" if "Traceback" in stderr + stdout else None, _truthful_summary(run)) if p]
        held += not problems
        print(f"  try {k + 1:2d}: {sig.name:7s} aimed at {step:26s} status {code}"
              + (f": {said[0].strip()[:100]}" if said else " (the step ended first)")
              + (f"  NOT HELD: {'; '.join(problems)}" if problems else ""), flush=True)
        shutil.rmtree(run, ignore_errors=True)
    return tries, held, f"{landed} landed in the step, the rest after it"


def _rank_pids(run: Path) -> dict[int, int]:
    """rank → pid of the ranks of the MPI job writing `run` (from /proc: command line and PMI_RANK)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if str(run).encode() not in cmdline or any(b"mpiexec" in c or b"hydra" in c for c in cmdline):
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        for item in environ:
            if item.startswith(b"PMI_RANK="):
                found[int(item.split(b"=")[1])] = int(proc.name)
    return found


def mpi_kill(base: Path, tries: int, rng: random.Random) -> tuple[int, int, str]:
    import importlib.util

    beside = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(beside) if beside.exists() else shutil.which("mpiexec")
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        return 0, 0, "skipped: no mpiexec or mpi4py (pip install 'striate[mpi]')"
    run = base / "mpi"
    mpi_env = {k: v for k, v in env().items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    r = subprocess.run([mpiexec, "-n", "2", *striate("train", "--out", str(run), "--epochs", "1", *COMMON)],
                       capture_output=True, text=True, env=mpi_env)
    assert r.returncode == 0, r.stderr
    held, ends = 0, []
    for k in range(tries):
        before = check_run(run)["iteration"]
        stale = _last_iteration(run)  # records past the checkpoint, written before the last kill
        job = subprocess.Popen([mpiexec, "-n", "2", *striate("train", "--resume", str(run), "--epochs", str(EPOCHS))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=mpi_env)
        started = _wait_for_training(run, max(before, stale), job)
        time.sleep(rng.uniform(0.0, 1.0))
        rank = rng.randint(0, 1)
        pid = _rank_pids(run).get(rank)
        problems = [] if started and pid else ["training did not start or the rank was not found"]
        end = None
        if pid:
            t = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            try:
                job.wait(timeout=120)
                end = time.monotonic() - t
            except subprocess.TimeoutExpired:
                job.kill()
                job.wait()
        stderr = job.stderr.read()
        job.stderr.close()
        if end is None or end > 10:
            problems.append(f"the job did not end within 10 s ({end})")
        else:
            ends.append(end)
        if job.returncode == 0:
            problems.append("status 0")
        time.sleep(0.2)
        if _rank_pids(run):
            problems.append(f"ranks left running: {_rank_pids(run)}")
        if "Traceback" in stderr:
            problems.append("a traceback")
        try:
            after = check_run(run)["iteration"]
        except Exception as e:  # noqa: BLE001
            problems.append(f"last does not load: {e}")
            after = None
        held += not problems
        print(f"  try {k + 1:2d}: kill -9 rank {rank}: the job ended in {end if end is None else round(end, 2)} s, "
              f"status {job.returncode}, last = iteration {before} → {after}"
              + (f"  NOT HELD: {'; '.join(problems)}" if problems else ""), flush=True)
    finished = subprocess.run(striate("train", "--resume", str(run), "--epochs", str(check_run(run)["epoch"] + 1)),
                              capture_output=True, text=True, env=env())
    if finished.returncode != 0:
        print(f"  the last resume, on one process, failed: {finished.stderr.strip()[-300:]}")
        held = min(held, tries - 1)
    return tries, held, (f"2 ranks; the job ended at most {max(ends):.2f} s after the kill" if ends else "2 ranks")


CLASSES = {"full-disk": ("full disk at each write phase", full_disk),
           "sighup": ("SIGHUP during training", sighup),
           "after-training": ("a signal while evaluating / drawing", after_training),
           "mpi-kill": ("kill -9 of an MPI rank", mpi_kill)}


def writing_faults(base: Path, names: list[str], tries: int, rng: random.Random) -> list[tuple[str, int, int, str]]:
    rows = []
    for name in names:
        title, attempt = CLASSES[name]
        print(f"{title}: {tries} tries", flush=True)
        rows.append((title, *attempt(base, tries, rng)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=30, help="kills per phase of the kill -9 classes (default 30)")
    ap.add_argument("--tries", type=int, default=12, help="tries per class of faults while writing (default 12)")
    ap.add_argument("--classes", default="kill-write,kill-resume," + ",".join(CLASSES),
                    help="which classes, comma-separated (default: all): kill-write, kill-resume, "
                         + ", ".join(CLASSES))
    ap.add_argument("--out", default="/tmp/striate-faults")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    names = [c.strip() for c in args.classes.split(",") if c.strip()]
    unknown = [c for c in names if c not in CLASSES and c not in ("kill-write", "kill-resume")]
    if unknown:
        ap.error(f"unknown class {unknown[0]!r}")
    rng = random.Random(args.seed)
    base = Path(args.out)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    rows = []
    status = 0
    if "kill-write" in names or "kill-resume" in names:
        status = kill_nine(base, args.kills, rng, names, rows)
    rows += writing_faults(base, [n for n in names if n in CLASSES], args.tries, rng)
    print("\nclass                                    tries  held")
    for title, tries, held, note in rows:
        print(f"{title:40s} {tries:5d} {held:5d}  {note}")
        status = status or int(held < tries)
    return status


def kill_nine(base: Path, kills: int, rng: random.Random, names: list[str], rows: list) -> int:
    """The kill -9 classes: during checkpoint writes, during resume start-up (every check is an assertion), then
    the exactness of the killed-and-resumed run."""
    run = base / "killed"
    tally: dict[str, int] = {}
    t0 = time.monotonic()

    r = subprocess.run(striate("train", "--out", str(run), "--epochs", "2", *COMMON), capture_output=True, text=True,
                       env=env())
    assert r.returncode == 0, r.stderr
    if "kill-write" in names:
        print(f"phase 1: {kills} kills -9 aimed at checkpoint writes", flush=True)
        for k in range(kills):
            landed, progress = kill_during_write(run, patience=rng.uniform(2.0, 4.0), writes=rng.randint(1, 6))
            tally[landed] = tally.get(landed, 0) + 1
            print(f"  kill {k + 1:2d}: {landed:16s} last = epoch {progress.get('epoch')}, "
                  f"iteration {progress.get('iteration')}", flush=True)
        rows.append(("kill -9 during checkpoint writes", kills, kills, "every check is an assertion"))

    if "kill-resume" in names:
        print(f"phase 2: {kills} kills -9 during resume start-up", flush=True)
        for k in range(kills):
            landed, delay = kill_during_resume(run, rng)
            tally[landed] = tally.get(landed, 0) + 1
            print(f"  kill {k + 1:2d}: {landed} after {delay:.2f} s, last = iteration {check_run(run)['iteration']}",
                  flush=True)
        rows.append(("kill -9 during resume start-up", kills, kills, "every check is an assertion"))

    epochs = check_run(run)["epoch"] + 2
    finish(run, epochs)
    reference = base / "reference"
    r = subprocess.run(striate("train", "--out", str(reference), "--epochs", str(epochs), *COMMON),
                       capture_output=True, text=True, env=env())
    assert r.returncode == 0, r.stderr
    a = CheckpointStore(run / "checkpoints").load("last").weights
    b = CheckpointStore(reference / "checkpoints").load("last").weights
    identical = sum(np.array_equal(a[k], b[k]) for k in a)
    print(f"\nkills: {sum(tally.values())} ({', '.join(f'{v} {k}' for k, v in sorted(tally.items()))}) "
          f"in {time.monotonic() - t0:.0f} s")
    print("unloadable checkpoints: 0; lost metrics records: 0; configs changed by a killed resume: 0; "
          "stale locks: 0 (every check above passed)")
    print(f"after {epochs} epochs the killed-and-resumed run equals an uninterrupted one: {identical} of {len(a)} "
          "weight tensors bit-identical")
    return 0 if identical == len(a) else 1


if __name__ == "__main__":
    sys.exit(main())
