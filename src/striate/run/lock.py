"""A run directory's lock: one writer at a time, and never a stale lock.

`RunLock(directory).acquire()` takes an exclusive `flock` on `directory/.lock` and writes the holder's
process id and start time into it. The kernel drops the lock when the holder exits, however it exits
(kill -9 included), so a lock left by a dead process never blocks the next run. The file itself stays:
deleting it on release would let a waiter lock the deleted inode while a newcomer locks a new one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class RunLocked(RuntimeError):
    """The run directory is held by another live process (the message names it)."""


class RunLock:
    NAME = ".lock"

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / self.NAME
        self._fd: int | None = None

    def acquire(self, command: str = "striate") -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise self._locked(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command,
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        self._fd = fd
        return self

    def check_free(self) -> None:
        """RunLocked naming the holder when a live process holds the directory; writes nothing (a directory
        without a lock file is free)."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while a writer holds LOCK_EX
        except BlockingIOError:
            raise self._locked(self._holder(fd)) from None
        finally:
            os.close(fd)  # closing drops a lock taken here

    def _locked(self, holder: str) -> RunLocked:
        return RunLocked(f"run directory '{self.path.parent}' is in use by {holder}; wait for it to finish, "
                         "or choose another directory")

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"process {info['pid']} ({info.get('command', 'striate')}, since {info.get('since', '?')})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
