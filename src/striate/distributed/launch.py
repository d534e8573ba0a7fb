"""Is this process one of several started by an MPI launcher? Answered from the launcher's environment, so
that `mpi4py` — whose import initialises MPI — is imported only when it is needed.

`mpiexec -n K` sets, per process: MPICH's Hydra and Intel MPI `PMI_RANK`/`PMI_SIZE`, Open MPI
`OMPI_COMM_WORLD_RANK`/`OMPI_COMM_WORLD_SIZE`, MVAPICH `MV2_COMM_WORLD_RANK`/`MV2_COMM_WORLD_SIZE`; a PMIx
launcher `PMIX_RANK` (the size is then asked of MPI).
"""

from __future__ import annotations

import os

_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


def launched_size(environ=None) -> int | None:
    """The number of processes the launcher announces (1 for `mpiexec -n 1`); None when no launcher started
    this process, 0 when one did without saying how many (PMIx: ask MPI)."""
    env = os.environ if environ is None else environ
    for name in _SIZE_VARIABLES:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0 if any(env.get(name, "").strip().isdigit() for name in _RANK_VARIABLES) else None


def under_launcher(environ=None) -> bool:
    """True when an MPI launcher started this process as one of several (or could not say how many)."""
    size = launched_size(environ)
    return size is not None and size != 1
