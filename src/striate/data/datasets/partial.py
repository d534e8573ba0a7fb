"""Partial files: work in progress (an extraction, a cache entry) written under a temporary name
that records its writer, `.<final name>.<random>~<pid>@<host>.part`, and renamed into place when complete.
(A download keeps `<final name>.part` instead, which a later download resumes: `download.py`.)

A writer killed mid-way (SIGKILL, power loss) cannot remove its partial file, so the next writer in the same
folder does: `remove_stale` deletes every partial file or folder whose writer is gone (same host, process id
no longer running). A live writer's file survives, including another thread of this process. Partial files
from another host, and untagged ones left by older versions, are removed only once untouched for a day.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from ...atomic import pid_alive

SUFFIX = ".part"
STALE_SECONDS = 24 * 3600
# The 8 random characters are tempfile's; older versions wrote `.<final name>.<random>.part`, untagged.
_TAGGED = re.compile(r"^\..+\.[a-z0-9_]{8}~(\d+)@([A-Za-z0-9-]*)\.part$")
_UNTAGGED = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63]


def tag() -> str:
    """'~<pid>@<host>.part': the suffix of this process's partial files."""
    return f"~{os.getpid()}@{_host()}{SUFFIX}"


def make_file(final: Path) -> tuple[int, str]:
    """Create a partial file beside `final` (mkstemp: fd, path)."""
    return tempfile.mkstemp(prefix=f".{final.name}.", suffix=tag(), dir=final.parent)


def make_dir(final: Path) -> Path:
    """Create a partial folder beside `final`."""
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=tag(), dir=final.parent))


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether the partial file or folder `path` has lost its writer (see the module docstring)."""
    m = _TAGGED.match(path.name)
    if m is not None and m.group(2) == _host():
        return not pid_alive(int(m.group(1)))
    if m is None and not _UNTAGGED.match(path.name):
        return False  # not a partial file at all
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_SECONDS


def remove_stale(folder: Path) -> list[Path]:
    """Delete the stale partial files and folders directly in `folder`; returns what was removed."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        if path.name.endswith(SUFFIX) and is_stale(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save(path: Path, write) -> None:
    """`write(f)` into a partial file beside `path`, flushed, fsynced and renamed into place: readers see the
    whole file or none; on any failure the partial file is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
