"""Durable, atomic file writes: readers see the old content or the new, never a mix, even after a kill or
a power cut (temp file in the same directory, flush, fsync, `os.replace`, fsync the directory).

Temporary names carry their writer's process id: `.<name>.tmp-<pid>` (`write_atomic`) and
`.tmp-<name>-<pid>` (a checkpoint generation being written). A failed write removes its own; a writer
killed mid-way (kill -9, power loss) cannot, so `remove_stale_temps` removes those whose process is gone,
never a live one's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

_TEMP = re.compile(r"^\.(?:.+\.tmp|tmp-.+)-(\d+)$")  # .<name>.tmp-<pid> or .tmp-<name>-<pid>


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or creation inside `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` and fsync it (no rename: for files inside a directory renamed as a whole)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a mix:
    temp file in the same directory, flush, fsync, `os.replace`, fsync the directory."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def pid_alive(pid: int) -> bool:
    """True unless process `pid` certainly does not exist on this host (signal 0 probes without sending)."""
    if pid < 1:
        return False  # not a process id; os.kill(0, ...) would address our own process group
    if pid == os.getpid() or os.name == "nt":  # on Windows, os.kill would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files and directories directly in `folder` whose writer process is gone (see the
    module docstring); returns what was removed. A missing or unreadable folder removes nothing."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        m = _TEMP.match(path.name)
        if m is None or pid_alive(int(m.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed
