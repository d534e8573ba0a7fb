"""The processes of one run and the few collective operations training needs.

`world()` gives a `Single` (one process: every operation is free and changes nothing) or, under an MPI
launcher, an `MpiComm` over `mpi4py`'s COMM_WORLD; callers never branch on which.

- `allreduce(buffer)`: element-wise sum over the ranks, in place, of one contiguous float32 buffer. MPICH's
  algorithm for a given size and number of ranks is fixed, so the sum is reproducible for a given K.
- `bcast(obj)`: rank 0's object on every rank (mpi4py pickles it between the run's own processes; nothing
  read from a file is ever unpickled).
- A watchdog: a collective that has not completed after `timeout` seconds (a rank died or hangs) prints one
  error line and aborts every rank through MPI, so a run never hangs.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

TIMEOUT = 45.0  # seconds a collective may wait for the other ranks; the run ends within a minute of a loss
ABORT_GRACE = 1.0  # seconds between an error line and the abort that ends every rank


def _timeout() -> float:
    value = os.environ.get("STRIATE_MPI_TIMEOUT", "").strip()
    try:
        return float(value) if value else TIMEOUT
    except ValueError:
        raise ValueError(f"STRIATE_MPI_TIMEOUT must be a number of seconds, got {value!r}") from None


class Single:
    """One process: rank 0 of 1."""

    rank, size, local_size = 0, 1, 1
    is_root, joined = True, False

    def allreduce(self, buffer: np.ndarray) -> np.ndarray:
        return buffer

    def bcast(self, obj):
        return obj

    def allgather(self, vector: np.ndarray) -> np.ndarray:
        return vector[None].copy()

    def barrier(self) -> None:
        pass

    def abort(self, status: int = 1) -> None:
        raise SystemExit(status)

    def __repr__(self) -> str:
        return "Single()"


class MpiComm:
    """COMM_WORLD of an MPI job. `program` names the command in the watchdog's error line."""

    def __init__(self, comm=None, timeout: float | None = None, program: str = "striate train"):
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        self.is_root = self.rank == 0
        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_size = node.Get_size()  # ranks on this machine
        node.Free()
        self.timeout = _timeout() if timeout is None else float(timeout)
        self.program = program
        self.joined = False  # every rank has the run: a failure from here on must end the whole job
        self._waiting: tuple[float, str] | None = None  # (deadline, what) while in a collective
        self.seconds = 0.0  # time spent in collectives (the communication share of a run)
        threading.Thread(target=self._watch, daemon=True, name="striate-mpi-watchdog").start()

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            waiting = self._waiting
            if waiting is not None and time.monotonic() > waiting[0]:
                os.write(2, (f"{self.program}: error: rank {self.rank} of {self.size} heard nothing from the other "
                             f"ranks for {self.timeout:g} s during {waiting[1]}: a rank died or hangs; stopping "
                             "every rank\n").encode())
                self.abort(1)
                os._exit(1)

    def _collective(self, what: str, call):
        self._waiting = (time.monotonic() + self.timeout, what)
        start = time.perf_counter()
        try:
            return call()
        finally:
            self._waiting = None
            self.seconds += time.perf_counter() - start

    def allreduce(self, buffer: np.ndarray) -> np.ndarray:
        """Sum `buffer` (contiguous float32 or float64) over the ranks, in place; returns it."""
        if not buffer.flags.c_contiguous:
            raise ValueError("allreduce needs a contiguous buffer")
        self._collective("a gradient sum", lambda: self._comm.Allreduce(self._mpi.IN_PLACE, buffer,
                                                                         op=self._mpi.SUM))
        return buffer

    def allgather(self, vector: np.ndarray) -> np.ndarray:
        """(size, len) float64: every rank's `vector`, row r from rank r (small exchanges, such as the
        statistics of a synchronised BatchNorm, which every rank then combines in the same order)."""
        vector = np.ascontiguousarray(vector, dtype=np.float64)
        out = np.empty((self.size, vector.size), dtype=np.float64)
        self._collective("a BatchNorm statistics exchange", lambda: self._comm.Allgather(vector, out))
        return out

    def bcast(self, obj):
        """Rank 0's `obj` on every rank."""
        return self._collective("a broadcast from rank 0", lambda: self._comm.bcast(obj, root=0))

    def barrier(self) -> None:
        self._collective("a barrier", self._comm.Barrier)

    def abort(self, status: int = 1) -> None:
        """End every rank of the job now (after an error on this one: the others would wait forever). The
        launcher forwards output asynchronously and tears the job down at once: the error line printed
        just before gets a moment to reach the terminal."""
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        time.sleep(ABORT_GRACE)
        self._comm.Abort(status)

    def __repr__(self) -> str:
        return f"MpiComm(rank={self.rank}, size={self.size}, local_size={self.local_size})"


_world = None


def end_job_after_error(status: int) -> None:
    """After this rank failed (its error printed): when every rank has the run, abort them all — the others
    would wait for this one forever. Nothing in a single process."""
    if _world is not None and _world.size > 1 and _world.joined:
        _world.abort(status)


def world(force: bool = False, program: str = "striate train"):
    """This process's communicator: an MpiComm when an MPI launcher started several processes (or `force`,
    `--distributed`), else Single. Made once; mpi4py is imported only for an MpiComm."""
    global _world
    if _world is None:
        from .launch import under_launcher

        if force or under_launcher():
            try:
                _world = MpiComm(program=program)
            except ImportError:
                raise RuntimeError("this process runs under an MPI launcher but mpi4py is not installed: "
                                   "pip install 'striate[mpi]'") from None
            if _world.size == 1:
                _world = Single()
        else:
            _world = Single()
    return _world
