"""Where a search's studies live: one storage URL (SQLite in the search directory by default, or any RDB
URL, PostgreSQL for workers on several machines), checked before Optuna opens it (`check_storage`: a
corrupt, truncated or foreign SQLite file is refused and left as it was), and the lock under which a worker
claims a trial slot (a file lock next to a SQLite database, a PostgreSQL advisory lock)."""

from __future__ import annotations

import contextlib
import os
import time
import warnings
import zlib
from pathlib import Path

from .space import SearchError
from .spec import SearchSpec


def default_storage(directory: str | os.PathLike) -> str:
    return f"sqlite:///{Path(directory).resolve() / 'study.db'}"


def driver_url(url: str) -> str:
    """`postgresql://...` with the PostgreSQL driver that is installed: SQLAlchemy 2.1 defaults to psycopg
    (3), older versions to psycopg2; either may be what pip installed."""
    import importlib.util

    if url.startswith("postgresql://") or url.startswith("postgres://"):
        rest = url.split("://", 1)[1]
        for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return f"postgresql+{dialect}://{rest}"
        raise SearchError(f"storage {url.split('@')[-1]!r}: no PostgreSQL driver; pip install 'psycopg[binary]'")
    return url


class StorageError(ValueError):
    """The study's storage cannot be read (an SQLite file that is corrupt or truncated): the exit table's 1,
    one line naming the file, and the file left as it was."""


def sqlite_file(url: str) -> Path | None:
    """The file of an `sqlite:///…` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    db = make_url(url).database
    return Path(db) if db and db != ":memory:" else None


def check_storage(url: str) -> None:
    """Refuse an existing SQLite file before Optuna opens it (which would write its tables into any file that
    SQLite can read): StorageError when it is not a readable database (garbage bytes, a truncated copy),
    SearchError when it is a database without Optuna's tables, another program's. Only reads the file."""
    import sqlite3
    from urllib.parse import quote

    path = sqlite_file(url)
    if path is None or not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return  # Optuna creates a new study database (an empty file is an empty database)
    try:  # mode=rw: never creates the file; a hot journal of a killed worker is rolled back as Optuna would
        with contextlib.closing(sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True,
                                                timeout=300)) as db:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as e:
        raise StorageError(f"{path}: not a readable SQLite study database ({e}); restore it from a copy, or "
                           "move it away to start the search afresh") from None
    if problems != ["ok"]:
        lines = [line for p in problems for line in str(p).splitlines() if not line.startswith("***")]
        raise StorageError(f"{path}: the SQLite study database is damaged ({(lines or ['?'])[0]}); restore it "
                           "from a copy, or move it away to start the search afresh")
    if tables and "studies" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise SearchError(f"{path}: an SQLite database of another program (tables {shown}), not an Optuna study; "
                          "refusing to add a study to it: give the search another --out directory or --storage")


def open_storage(url: str, spec: SearchSpec):
    """An Optuna RDBStorage with heartbeats. SQLite waits for locks instead of failing at once. An SQLite
    file is checked first (`check_storage`)."""
    import optuna

    check_storage(url)
    url = driver_url(url)
    kw = {"connect_args": {"timeout": 300}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=kw, heartbeat_interval=spec.heartbeat,
                                                  grace_period=spec.grace)
        except ImportError:
            raise
        except Exception:  # workers creating the tables of an empty database at the same moment
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)


@contextlib.contextmanager
def claim_lock(storage, name: str):
    """Serialise "count the trials, then ask for one" across workers of one study."""
    url = str(storage.url)
    if url.startswith("sqlite"):
        import fcntl

        db = sqlite_file(url)
        if db is None:
            yield
            return
        with open(f"{db}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    elif url.startswith("postgresql"):
        from sqlalchemy import text

        key = zlib.crc32(name.encode())
        with storage.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    else:  # other databases: at most (workers − 1) trials past the stage's count
        yield
