"""The pages' one look: the page frame around the style sheet every striate page shares (run report,
comparison, search report) and a figure with its caption. The style sheet, the headline cards and how numbers
are written (percentages, counts, durations) live in `striate.markup`, shared with the notebook displays.
The plots are drawn at the size they are shown (`figure.DPI`): a column is 640 px, a wide figure 1300 px."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from ..markup import CSS, card, cell, count, duration, headline_row, percent  # noqa: F401 (the pages' names)


def page(title: str, body: list[str]) -> str:
    """A self-contained HTML page (no script, no external resource)."""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_page(path: str | os.PathLike, title: str, body: list[str]) -> Path:
    """Write the page atomically (a reader never sees half a page); returns its path."""
    from ..atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page(title, body))
    return path


def png_src(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(name: str, png: bytes, caption: str, wide: bool = False) -> str:
    """A figure with its PNG embedded and its caption; `wide` spans both columns of the grid."""
    cls = " class='wide'" if wide else ""
    return (f'<figure id="{name}"{cls}><img alt="{html.escape(caption)}" src="{png_src(png)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
