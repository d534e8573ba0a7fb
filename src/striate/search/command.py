"""`striate search search.toml [--storage URL] [--workers N] [--retrain-best] [--out DIR] [--max-trials K]`.

    striate search search.toml                      # SQLite study in searches/<name>/study.db; rerun to resume
    striate search search.toml --workers 2          # two local worker processes on the same study
    striate search search.toml --storage postgresql://user@db-host/striate   # run this on every machine
    striate search search.toml --retrain-best       # then train the best configuration for retrain_epochs

Writes, in the search directory: search.json (the resolved search), study.db (default storage),
trials/stage<k>-<number>/ (each trial's run directory), results.csv / results.txt (best first) and
search_report.html; with --retrain-best, best/ (a full run directory, evaluated on the test split).
Exit status (the table of `striate --help`): 0 done, 1 a worker died or failed (the results still list every
trial as the study stored it), 2 bad search file, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def add_search_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("config", metavar="SEARCH.toml", help="search file: [search], [train], [space]")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage URL, e.g. postgresql://user:pw@host/db so workers on many machines "
                             "share one study (default: sqlite in the search directory)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on this machine (default: 1, in this process)")
    parser.add_argument("--retrain-best", action="store_true",
                        help="afterwards, train the best configuration for [search] retrain_epochs and test it")
    parser.add_argument("--out", metavar="DIR", help="search directory (default: [search] out or searches/<name>)")
    parser.add_argument("--max-trials", type=int, default=None, metavar="K",
                        help="stop each worker after K trials (resume later by running the command again)")
    return parser


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
    from ..train import experiment as ex
    from . import report
    from .runner import model_with_keywords

    stream = stream if stream is not None else sys.stderr
    b = report.best(rows)
    if b is None:
        print("no completed trial to retrain", file=stream)
        return None
    config, model_kw = spec.space.apply(b.params, spec.base, where=f"best trial {b.number} of stage {b.stage}")
    out, i = directory / "best", 1
    while (out / "checkpoints").exists():
        i += 1
        out = directory / f"best-{i}"
    config = {**config, "epochs": spec.retrain_epochs or spec.base["epochs"], "out": str(out)}
    config, base_model = model_with_keywords(config, model_kw)
    ex.write_config(out, {**config, "model": base_model})
    run = ex.build(config, out)
    if model_kw:
        run.model.build_config.update({"name": base_model, **model_kw})
    print(f"retraining stage {b.stage} trial {b.number} for {config['epochs']} epochs in {out}", file=stream)
    summary = ex.execute(run)
    line = f"retrained best: {summary['status']}, best val accuracy {summary['best_val_accuracy']}"
    if "test" in summary:
        line += f", test accuracy {100 * summary['test']['accuracy']:.2f}%"
    print(line)
    return summary


def run_search(args) -> int:
    import importlib.util

    from . import report
    from . import spec as spec_mod
    from .runner import default_storage, open_storage, work
    from .space import SearchError

    if importlib.util.find_spec("optuna") is None:
        raise SearchError("striate search needs Optuna: pip install 'striate[search]'")
    spec = spec_mod.load(args.config)
    if args.workers < 1:
        raise SearchError(f"--workers {args.workers}: must be ≥ 1")
    if args.max_trials is not None and args.max_trials < 1:
        raise SearchError(f"--max-trials {args.max_trials}: must be ≥ 1")
    directory = search_directory(spec, args.out)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "search.json").write_text(spec.to_json() + "\n")
    url = args.storage or default_storage(directory)
    stages = "; ".join(f"stage {i + 1}: {s.trials} trials × {s.epochs} epochs" + (f", {s.narrow}" if s.narrow else "")
                       for i, s in enumerate(spec.stages))
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    print(f"search {spec.name!r} in {directory} ({stages}); storage {shown}; {args.workers} worker(s)",
          file=sys.stderr)
    open_storage(url, spec)  # creates the database tables once, before any worker starts
    status = 0
    if args.workers == 1:
        result = work(spec, directory, url, max_trials=args.max_trials)
        status = EXIT_INTERRUPTED if result.interrupted else 0
    else:
        procs = start_workers(directory, args.storage, args.workers, args.max_trials)
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
    storage = open_storage(url, spec)
    rows, text = report.write_all(spec, storage, directory)
    print(text)
    b = report.best(rows)
    if b is not None:
        print(f"best: stage {b.stage} trial {b.number}, val accuracy {100 * b.value:.2f}% "
              f"({', '.join(f'{k} = {report._fmt(v)}' for k, v in b.params.items())})")
    print(f"report: {directory / 'search_report.html'}")
    if args.retrain_best and status == 0:
        retrain_best(spec, rows, directory)
    return status
