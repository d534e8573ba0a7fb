"""`striate search search.toml [--storage URL] [--workers N] [--retrain-best] [--out DIR] [--max-trials K]`:
hyperparameter search on Optuna (see `striate.search`)."""

from __future__ import annotations

HELP = "hyperparameter search: random/grid/TPE sampling, coarse-to-fine stages, early abort, many workers (Optuna)"
DESCRIPTION = HELP + """

The search file is checked before any trial runs: every bound and choice, and each "model.<keyword>"
dimension against the keywords of the model builder(s) a trial may use (status 2 naming the key).
A search in which no trial completed has no best configuration: status 1 (every trial failed, diverged or
was pruned), or 2 when every trial failed on a configuration error. A study database that is corrupt or
truncated is refused with status 1, another program's SQLite database with status 2; neither is changed."""


def add_arguments(parser) -> None:
    parser.add_argument("config", metavar="SEARCH.toml", help="search file: [search], [train], [model], [space]")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage URL, e.g. postgresql://user:pw@host/db so workers on many machines "
                             "share one study (default: SQLite in the search directory)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on this machine (default: 1, in this process)")
    parser.add_argument("--retrain-best", action="store_true",
                        help="afterwards, train the best configuration for [search] retrain_epochs and test it "
                             "(default: off)")
    parser.add_argument("--out", metavar="DIR", help="search directory (default: [search] out or searches/<name>)")
    parser.add_argument("--max-trials", type=int, default=None, metavar="K",
                        help="stop each worker after K trials (resume later by running the command again; "
                             "default: no limit)")


def run(args) -> int:
    from ..search import run as search

    return search(args.config, storage=args.storage, workers=args.workers, retrain=args.retrain_best, out=args.out,
                  max_trials=args.max_trials)
