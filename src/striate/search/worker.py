"""A search worker process: `python -m striate.search.worker SEARCH_DIR [--storage URL] [--max-trials K]`.

It reads the search written to SEARCH_DIR/search.json by `striate search` and runs trials until every
stage has its count. `striate search --workers N` starts N of these with STRIATE_NUM_THREADS and
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS set in their environment (read when striate and
NumPy load), so N workers share the cores instead of oversubscribing them.
Exit status: 0 done, 1 unreadable study database, 2 bad search, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m striate.search.worker", description=__doc__.splitlines()[0])
    p.add_argument("directory", help="search directory holding search.json")
    p.add_argument("--storage", help="study storage URL (default: SQLite in the search directory)")
    p.add_argument("--max-trials", type=int, default=None, help="stop after this many trials")
    args = p.parse_args(argv)
    from .runner import work
    from .space import SearchError
    from .spec import SearchSpec
    from .storage import StorageError

    path = Path(args.directory) / "search.json"
    try:
        spec = SearchSpec.from_json(path.read_text())
        result = work(spec, args.directory, args.storage, max_trials=args.max_trials)
    except (SearchError, FileNotFoundError) as e:
        print(f"striate search worker: error: {e}", file=sys.stderr)
        return 2
    except StorageError as e:  # the study database went bad under the search
        print(f"striate search worker: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
