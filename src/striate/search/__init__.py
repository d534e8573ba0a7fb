"""Hyperparameter search on Optuna: random/grid/TPE samplers, coarse-to-fine stages, early abort, SQLite
or PostgreSQL storage shared by any number of workers, and a results table plus an HTML report.

    st.search.run("search.toml")           # the same as `striate search search.toml`
    st.search.results("searches/name")     # every trial, best first (a notebook shows the best trials)

Optuna is imported only when a search runs (`pip install striate[search]`).
"""

from __future__ import annotations

from .launch import run
from .report import Results, results
from .space import Dim, SearchError, Space
from .spec import SearchSpec, from_dict, load
from .stages import Stage, narrow

__all__ = ["Dim", "Results", "SearchError", "SearchSpec", "Space", "Stage", "from_dict", "load", "narrow", "results",
           "run"]
