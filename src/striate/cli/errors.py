"""The one map from an exception to the exit-status table (`parser.EXIT_TABLE`) and the one line that
explains it; every command's failures go through `exit_status`."""

from __future__ import annotations

import errno
import os

from .parser import EXIT_ERROR, EXIT_USAGE


def exit_status(error: BaseException) -> tuple[int, str | None]:
    """(status, message) for an exception a command raised; message None: say nothing."""
    from ..data.datasets.image_folder import MixedSizes
    from ..run.config import ConfigError
    from ..train.checkpoint import CheckpointError

    if isinstance(error, ConfigError | MixedSizes):  # MixedSizes: known before work starts, fixed by a flag
        return EXIT_USAGE, str(error)
    if isinstance(error, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(error, BrokenPipeError):  # the reader went away (`| head`): nothing more to say
        return 0, None
    if isinstance(error, MemoryError):
        return EXIT_ERROR, "out of memory (try a smaller --batch-size or a smaller model)"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = f": {error.filename}" if error.filename else ""
        return EXIT_ERROR, f"no space left on the device{where} (nothing was lost: writes are atomic)"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return EXIT_ERROR, f"{error.strerror}: {error.filename}"
    if isinstance(error, CheckpointError | OSError | ValueError):  # DataError and LayerError are ValueErrors
        return EXIT_ERROR, str(error)
    if os.environ.get("STRIATE_TRACEBACK"):
        raise error
    return EXIT_ERROR, (f"internal error {type(error).__name__}: {error} (a bug in striate; run again with "
                        "STRIATE_TRACEBACK=1 to see where)")


def one_line(message: str) -> str:
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does not fail."""
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
