"""The files of an image folder a run left out (unreadable, not images), on its page: how many, the first
SHOWN with the reason, and the file that lists them all (the run's skipped_images.txt, `path<TAB>reason` a line, written
before training). Nothing when the run skipped nothing."""

from __future__ import annotations

import html

SHOWN = 20


def read_skipped(path) -> list[tuple[str, str]]:
    """(file, reason) pairs from a skipped-images list; [] when there is none or it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (OSError, AttributeError, TypeError):
        return []
    pairs = []
    for line in text.splitlines():
        if line.strip():
            name, _, reason = line.partition("\t")
            pairs.append((name, reason))
    return pairs


def skipped_files(run) -> str:
    """The page's section on the skipped files of `run` (a RunDir-like with `skipped_file`), or ''."""
    path = getattr(run, "skipped_file", None)
    pairs = read_skipped(path) if path is not None else []
    if not pairs:
        return ""
    n = len(pairs)
    files = "1 file was" if n == 1 else f"{n} files were"
    shown = f" (the first {SHOWN} below)" if n > SHOWN else ""
    intro = (f"<p class='meta'>{files} left out of the data folder: unreadable, not images, or beside the class "
             f"folders{shown}; the list is in "
             f"{html.escape(str(path))}. Fix or remove them, or give --strict to stop at the first.</p>")
    rows = ["<table class='v' style='width:auto'><tr><th>file</th><th>reason</th></tr>"]
    for name, reason in pairs[:SHOWN]:
        rows.append(f"<tr><td style='overflow-wrap:anywhere'>{html.escape(name)}</td>"
                    f"<td>{html.escape(reason)}</td></tr>")
    return "<h2 id='skipped-files'>Skipped files</h2>" + intro + "".join(rows) + "</table>"
