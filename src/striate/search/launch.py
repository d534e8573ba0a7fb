"""Running a search: the workers (this process, or N local processes), the results, and retraining the
best configuration. `striate search` (cli/search.py) and `st.search.run` call `run`.

    striate search search.toml                      # SQLite study in searches/<name>/study.db; rerun to resume
    striate search search.toml --workers 2          # two local worker processes on the same study
    striate search search.toml --storage postgresql://user@db-host/striate   # run this on every machine
    striate search search.toml --retrain-best       # then train the best configuration for retrain_epochs

Writes, in the search directory: search.json (the resolved search), study.db (default storage),
trials/stage<k>-<number>/ (each trial's run directory), results.csv / results.txt (best first) and
search_report.html; with --retrain-best, best/ (a full run directory, evaluated on the test split).
Exit status (the table of `striate --help`): 0 done, 1 a worker died or failed (the results still list every
trial as the study stored it), or no trial completed (every one failed, diverged or was pruned: there is no
best configuration), or the storage is unreadable (a corrupt or truncated SQLite file), 2 bad search file
or storage that is another program's database, or every trial failed on a configuration error (a mistake
the space check could not see, e.g. a model keyword's value), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..atomic import write_atomic

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def search_directory(spec, out: str | None) -> Path:
    return Path(out or spec.out or Path("searches") / spec.name.replace("/", "_"))


def _blas_env(workers: int) -> dict:
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = dict(os.environ)
    for var in ("STRIATE_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = threads
    src = str(Path(__file__).resolve().parents[2])  # a source checkout without `pip install -e` still works
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_workers(directory: Path, storage: str | None, workers: int, max_trials: int | None) -> list:
    cmd = [sys.executable, "-m", "striate.search.worker", str(directory)]
    if storage:
        cmd += ["--storage", storage]
    if max_trials is not None:
        cmd += ["--max-trials", str(max_trials)]
    env = _blas_env(workers)
    return [subprocess.Popen(cmd, env=env) for _ in range(workers)]


def retrain_best(spec, rows, directory: Path, stream=None) -> dict | None:
    """Train the best configuration for `retrain_epochs` (default: the base config's epochs) in best/."""
    from ..run import RunDir, build, execute
    from . import report

    stream = stream if stream is not None else sys.stderr
    b = report.best(rows)
    if b is None:
        print("no completed trial to retrain", file=stream)
        return None
    config = spec.space.apply(b.params, spec.base, where=f"best trial {b.number} of stage {b.stage}")
    out, i = directory / "best", 1
    while (out / RunDir.CHECKPOINTS).exists():
        i += 1
        out = directory / f"best-{i}"
    config = {**config, "epochs": spec.retrain_epochs or spec.base["epochs"], "out": str(out)}
    run_dir = RunDir(out)
    run_dir.write_config(config)
    print(f"retraining stage {b.stage} trial {b.number} for {_epochs(config['epochs'])} in {out}", file=stream)
    summary = execute(build(config, run_dir))
    best = summary.get("best_val_accuracy")
    line = f"retrained best: {summary['status']}" + ("" if best is None else f", best val accuracy {100 * best:.2f}%")
    if "test" in summary:
        line += f", test accuracy {100 * summary['test']['accuracy']:.2f}%"
    print(line)
    return summary


def _no_trial_completed(rows) -> int:
    """The one line and status of a search that could not find a best configuration: 2 when every trial
    failed on a configuration error (the search file is wrong), else 1."""
    if rows and all(r.config_error for r in rows):
        reason = rows[0].reason.split(": ", 1)[-1]
        print(f"striate search: error: every trial failed on a configuration error: {reason}", file=sys.stderr)
        return EXIT_USAGE
    failed = ", ".join(f"{n} {s}" for s in ("error", "diverged", "pruned", "died", "interrupted")
                       if (n := sum(r.status == s for r in rows)))
    print(f"striate search: error: no trial completed ({failed or 'no trial ran'}); there is no best configuration "
          "(see results.txt for each trial's reason)", file=sys.stderr)
    return EXIT_ERROR


def run(path: str | os.PathLike, storage: str | None = None, workers: int = 1, retrain: bool = False,
        out: str | None = None, max_trials: int | None = None) -> int:
    """Run the search in the file `path`; returns the exit status of `striate search` (0 done, 1 a worker
    died or failed or no trial completed, 2 every trial failed on a configuration error, 130 interrupted). Bad
    search files and arguments raise SearchError; an unreadable storage file raises StorageError."""
    import importlib.util

    from . import report
    from . import spec as spec_mod
    from .runner import work
    from .space import SearchError
    from .storage import check_storage, default_storage, open_storage

    if importlib.util.find_spec("optuna") is None:
        raise SearchError("striate search needs Optuna: pip install 'striate[search]'")
    spec = spec_mod.load(path)
    if workers < 1:
        raise SearchError(f"--workers {workers}: must be ≥ 1")
    if max_trials is not None and max_trials < 1:
        raise SearchError(f"--max-trials {max_trials}: must be ≥ 1")
    directory = search_directory(spec, out)
    if not any((directory / own).is_file() for own in ("search.json", "study.db")):  # a search's own directory
        # (its spec, or the default study of one that stopped before writing it) is run again to resume it
        from ..run import RunDir

        directory = RunDir(directory).claim("striate search", "--out" if out else "[search] out").path
    url = storage or default_storage(directory)
    check_storage(url)  # a corrupt or foreign study database: refused before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "search.json", spec.to_json() + "\n")
    stages = "; ".join(f"stage {i + 1}: {s.trials} trials × {_epochs(s.epochs)}" + (f", {s.narrow}" if s.narrow else "")
                       for i, s in enumerate(spec.stages))
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    print(f"search {spec.name!r} in {directory} ({stages}); storage {shown}; {workers} worker(s)",
          file=sys.stderr)
    open_storage(url, spec)  # creates the database tables once, before any worker starts
    status = 0
    if workers == 1:
        result = work(spec, directory, url, max_trials=max_trials)
        status = EXIT_INTERRUPTED if result.interrupted else 0
    else:
        status = _run_workers(directory, storage, workers, max_trials)
    rows, text = report.write_all(spec, open_storage(url, spec), directory)
    print(text)
    b = report.best(rows)
    if b is not None:
        print(f"best: stage {b.stage} trial {b.number}, val accuracy {100 * b.value:.2f}% "
              f"({', '.join(f'{k} = {report._fmt(v)}' for k, v in b.params.items())})")
    print(f"report: {directory / 'search_report.html'}")
    if status == 0 and b is None:
        status = _no_trial_completed(rows)
    if retrain and status == 0:
        retrain_best(spec, rows, directory)
    return status


def _run_workers(directory: Path, storage: str | None, workers: int, max_trials: int | None) -> int:
    """Start `workers` processes on the study and wait for them: 0, EXIT_INTERRUPTED (Ctrl-C) or EXIT_ERROR
    (a worker killed or failed, named on stderr)."""
    status = 0
    procs = start_workers(directory, storage, workers, max_trials)
    interrupted = False
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:  # the workers got the same Ctrl-C; let them record their trials
        interrupted = True
        codes = [p.wait() for p in procs]
    if interrupted:
        status = EXIT_INTERRUPTED
    elif any(c != 0 for c in codes):  # a worker killed (negative: by a signal) or failed: the table's 1
        died = ", ".join(f"worker {i + 1} " + (f"killed by signal {-c}" if c < 0 else f"exited {c}")
                         for i, c in enumerate(codes) if c != 0)
        print(f"striate search: error: {died}; the study holds what they stored (see results.txt)",
              file=sys.stderr)
        status = EXIT_ERROR
    return status


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"
