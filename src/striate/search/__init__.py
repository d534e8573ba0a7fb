"""Hyperparameter search on Optuna: random/grid/TPE samplers, coarse-to-fine stages, early abort, SQLite
or PostgreSQL storage shared by any number of workers, and a results table plus an HTML report.

    st.search.run("search.toml")           # the same as `striate search search.toml`

Optuna is imported only when a search runs (`pip install striate[search]`).
"""

from __future__ import annotations

from .launch import run
from .space import Dim, SearchError, Space
from .spec import SearchSpec, from_dict, load
from .stages import Stage, narrow

__all__ = ["Dim", "SearchError", "SearchSpec", "Space", "Stage", "from_dict", "load", "narrow", "run"]
