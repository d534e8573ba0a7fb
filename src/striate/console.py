"""What a person sees while striate works: one home for the console.

- `line(text)`: a line on stdout, the stream a person pipes to a file (`striate train > log.txt` keeps every
  epoch line); a closed pipe (`| head`) or terminal stops the printing, never the work.
- `note(text)`: a line on stderr (warnings, announcements of long steps).
- `steps(total, what)`: a long step with a length (decoding images, evaluating a split): a tqdm bar on a
  terminal, otherwise a start line, a progress line at most every 30 s, and an end line.
- `terminal_width(stream)`: the columns of the terminal behind `stream`, None when there is no usable one
  (a pipe, or a terminal that reports 0 columns).
- `silence()`: nothing from here on (the ranks other than 0 of a data-parallel run: one voice per run).
- `in_notebook()`: True inside a Jupyter kernel (where progress is drawn as HTML updated in place);
  `STRIATE_NOTEBOOK=1` / `=0` forces the answer either way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time

EVERY = 30.0  # seconds between progress lines when there is no terminal
_closed: set[int] = set()  # streams whose reader went away
_silent = False


def silence() -> None:
    """Print nothing more: `line`, `note` and `steps` say nothing from now on."""
    global _silent
    _silent = True


def in_notebook() -> bool:
    """True inside a Jupyter/IPython kernel: IPython is already imported and its shell is a kernel's
    (`ZMQInteractiveShell`, or any shell with a `kernel`; a terminal IPython is not a notebook). IPython is
    never imported here: a script that did not import it is not in a kernel. The environment variable
    STRIATE_NOTEBOOK=1 (or 0) forces the answer, for tests and for front ends this test misses."""
    forced = os.environ.get("STRIATE_NOTEBOOK", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        shell = get_ipython()
    except Exception:  # a half-initialised or stubbed IPython: not a kernel we can draw in
        return False
    if shell is None:
        return False
    kinds = {c.__name__ for c in type(shell).__mro__}
    return "ZMQInteractiveShell" in kinds or getattr(shell, "kernel", None) is not None


def terminal_width(stream) -> int | None:
    """Columns of the terminal `stream` writes to; None for a pipe or file, or a terminal reporting fewer
    than 20 columns (a bar cannot be drawn there)."""
    try:
        if not stream.isatty():
            return None
        columns = shutil.get_terminal_size(fallback=(0, 0)).columns
    except (AttributeError, ValueError, OSError):
        return None
    return columns if columns >= 20 else None


def _write(stream, text: str) -> None:
    if _silent or id(stream) in _closed:
        return
    try:
        print(text, file=stream, flush=True)
    except OSError:  # the reader is gone (`| head`, EPIPE; a closed terminal, EIO): keep working, stop talking
        _closed.add(id(stream))
        _discard(stream)


def _discard(stream) -> None:
    """Point `stream`'s descriptor at /dev/null: what is still buffered in it, and the interpreter's flush at
    exit, must not fail again (a failed final flush would turn the exit status into 120)."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def line(text: str, stream=None) -> None:
    _write(stream if stream is not None else sys.stdout, text)


def note(text: str) -> None:
    _write(sys.stderr, text)


def duration(seconds: float) -> str:
    """'42s', '3m05s', '1h02m'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Lines:
    """The bar of a pipe: a start line, a progress line at most every `EVERY` seconds, an end line."""

    def __init__(self, total: int | None, what: str):
        self.total, self.what, self.n = total, what, 0
        self.start = self.last = time.monotonic()
        note(f"{what} …")

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= EVERY:
            self.last = now
            done = f"{self.n}/{self.total}" if self.total else str(self.n)
            note(f"{self.what}: {done} ({duration(now - self.start)})")

    def close(self) -> None:
        note(f"{self.what}: done in {duration(time.monotonic() - self.start)}")


class _Quiet:
    def update(self, k: int = 1) -> None:
        pass


@contextlib.contextmanager
def steps(total: int | None, what: str, unit: str = "it"):
    """A progress display for a long step of `total` units; yields an object with `update(k)`."""
    bar = None
    if _silent:
        yield _Quiet()
        return
    if terminal_width(sys.stderr) is not None:
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
    shown = bar if bar is not None else _Lines(total, what)
    try:
        yield shown
    finally:
        shown.close()
