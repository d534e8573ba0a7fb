"""The files below a folder, for the commands that take a folder of images (training, `striate predict`).

Entries are read sorted by name and folders are walked depth first, so the order is the same on every
machine. Symbolic links are followed; one that dangles, or a folder link that leads back to a folder above it
(a loop), is an error naming it, never a silent skip. Hidden entries (`.ipynb_checkpoints/`, `.DS_Store`,
macOS's `._IMG_0001.jpg` copies) and the thumbnail caches Windows writes into photo folders are left out;
every other file is either an image (a READABLE name, image_file.py) or another file, so a caller uses the
one and lists the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .image_file import readable_name

SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})  # Windows' own, in any photo folder


def entry_kind(entry: os.DirEntry) -> str:
    """'dir', 'file' or 'other' for a folder entry, following symbolic links; DataError for a link that
    cannot be followed (a loop, a dangling target) or an entry that cannot be examined."""
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
        if entry.is_symlink() and not os.path.exists(entry.path):
            raise DataError(f"broken symbolic link {entry.path} -> {os.readlink(entry.path)}")
    except OSError as err:  # ELOOP: a symlink loop; EACCES
        raise DataError(f"cannot read {entry.path}: {err.strerror or err}") from None
    return "other"


def listdir(folder: Path) -> list[os.DirEntry]:
    """The entries of `folder` sorted by name (so the first bad one reported is always the same)."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot list folder {folder}: {err.strerror or err}") from None


def visible(entry: os.DirEntry) -> bool:
    """Not hidden and not a system file: an entry the walk looks at."""
    return not entry.name.startswith(".") and entry.name.lower() not in SYSTEM_FILES


def walk(folder: str | os.PathLike) -> list[tuple[str, bool]]:
    """The files below `folder` at any depth as ('/'-separated path relative to it, whether it is an image: a
    READABLE name), depth first with entries by name (sockets and FIFOs count as files that are not images)."""
    files: list[tuple[str, bool]] = []

    def visit(path: Path, prefix: str, above: frozenset[str]) -> None:
        for e in listdir(path):
            if not visible(e):
                continue
            kind = entry_kind(e)
            if kind == "dir":
                real = os.path.realpath(e.path)
                if real in above:
                    raise DataError(f"symbolic link loop: {e.path} leads back to {real}, a folder above it")
                visit(Path(e.path), f"{prefix}{e.name}/", above | {real})
            else:
                files.append((prefix + e.name, kind == "file" and readable_name(e.name)))

    visit(Path(folder), "", frozenset({os.path.realpath(folder)}))
    return files
