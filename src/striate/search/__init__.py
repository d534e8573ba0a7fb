"""Hyperparameter search on Optuna: random/grid/TPE samplers, coarse-to-fine stages, early abort, SQLite
or PostgreSQL storage shared by any number of workers, and a results table plus an HTML report.

    st.search.run("search.toml")           # the same as `striate search search.toml`

Optuna is imported only when a search runs (`pip install striate[search]`).
"""

from __future__ import annotations

from .space import Dim, SearchError, Space
from .spec import SearchSpec, from_dict, load
from .stages import Stage, narrow


def run(path: str, storage: str | None = None, workers: int = 1, retrain_best: bool = False,
        out: str | None = None, max_trials: int | None = None) -> int:
    """Run the search in `path` (see `striate search --help`); returns the command's exit status."""
    import argparse

    from .command import run_search

    return run_search(argparse.Namespace(config=str(path), storage=storage, workers=workers,
                                         retrain_best=retrain_best, out=out, max_trials=max_trials))


__all__ = ["Dim", "SearchError", "SearchSpec", "Space", "Stage", "from_dict", "load", "narrow", "run"]
