"""Data-parallel training on MPI: `mpiexec -n K striate train …` is one run on K processes.

- `world()`: this process's communicator — `Single` unless an MPI launcher started it (`launch.py`);
  `mpi4py` (whose import initialises MPI) is imported only then.
- `GradientAverager`: the global batch's mean gradient on every rank, in a few large buffers per step.
- `share_cores(comm)`: each rank takes its machine's cores ÷ the ranks on it.

Keyed random numbers, which make a run's augmentation and dropout independent of K, are in
`kernels.keyed_random`; the trainer (`train.Trainer(comm=…)`) and the run (`run.build(comm=…)`) use them.
"""

from __future__ import annotations

import os

from .comm import MpiComm, Single, world
from .gradients import GradientAverager
from .launch import launched_size, under_launcher

_blas_limit = None


def share_cores(comm) -> int:
    """Threads for this rank: the machine's cores ÷ the ranks on it (at least 1), for striate's threads and
    BLAS's, unless STRIATE_NUM_THREADS says otherwise. Returns the count."""
    global _blas_limit
    from ..kernels import parallel

    if os.environ.get("STRIATE_NUM_THREADS", "").strip():
        return parallel.num_threads()
    n = max(1, parallel.cores() // max(1, comm.local_size))
    parallel.set_num_threads(n)
    if n == 1 and _blas_limit is None:  # one striate thread leaves BLAS its own default: all the cores
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            _blas_limit = threadpool_limits(limits=1, user_api="blas")
    return n


__all__ = ["GradientAverager", "MpiComm", "Single", "launched_size", "share_cores", "under_launcher", "world"]
