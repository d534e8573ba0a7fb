"""The test evaluation's examples on a run's page, from evaluation.json: the top losses (the misclassified
test images with the highest loss, as fastai's `plot_top_losses`: the image, its true class, the
predicted class and its probability, and where the image came from: its file, or the dataset and position)
and the most-confused class pairs with a few of their images. The images are the PNGs the evaluation wrote
into the run directory, embedded as they are and scaled up by the browser (pixelated)."""

from __future__ import annotations

import html
import struct
from pathlib import Path

from .style import png_src

SHOWN_PX = 96  # a small image is scaled by a whole factor to about this many pixels


def _png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None for anything else."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", png[16:24])


def _image(root: Path, name) -> bytes | None:
    """The PNG `name` (relative to the run directory, and inside it), or None."""
    if not isinstance(name, str) or not name:
        return None
    root = root.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        png = path.read_bytes()
    except OSError:
        return None
    return png if _png_size(png) else None


def _img_tag(png: bytes, alt: str) -> str:
    w, h = _png_size(png)
    if max(w, h) <= SHOWN_PX:  # small images (8×8 digits, 32×32 CIFAR): a whole factor, crisp pixels
        k = max(1, round(SHOWN_PX / max(w, h)))
        size = f"width:{w * k}px;height:{h * k}px"
    else:  # a photograph: shrink to the cell, smoothly
        k = 128 / max(w, h)
        size = f"width:{round(w * k)}px;height:{round(h * k)}px;image-rendering:auto"
    return f"<img alt='{html.escape(alt)}' title='{html.escape(alt)}' style='{size}' src='{png_src(png)}'>"


_WRAP = "overflow-wrap:anywhere;font-size:smaller"  # a long path breaks anywhere rather than widen the cell


def _source(source) -> list[str]:
    """The caption line naming a top loss's image (its file, or the dataset and position), or none."""
    if not isinstance(source, str) or not source:
        return []
    return [f"<span class='src' style='{_WRAP}'>{html.escape(source)}</span>"]


def _examples(examples) -> str:
    """The table cell listing a confused pair's example images (their files), one a line."""
    names = [html.escape(str(e)) for e in examples or []]
    return f"<td style='{_WRAP}'>" + "<br>".join(names) + "</td>"


def top_losses(evaluation: dict, root: Path) -> str:
    """The grid of the top losses, or '' when evaluation.json has none recorded."""
    items = evaluation.get("top_losses")
    if items is None:
        return ""
    split = str(evaluation.get("split", "test"))
    head = "<h3 id='top-losses'>Top losses</h3>"
    if not items:
        return head + f"<p class='meta'>No {html.escape(split)} image was misclassified.</p>"
    cells = []
    for it in items:
        t, q = str(it.get("true")), str(it.get("predicted"))
        true, pred = html.escape(t), html.escape(q)
        p, pt, loss = it.get("probability"), it.get("true_probability"), it.get("loss")
        about = f"{split} image {it.get('index')}: true {t}, predicted {q}" + (
            "" if pt is None else f"; the true class's probability {100 * pt:.2g} %") + (
            f"; {it['source']}" if isinstance(it.get("source"), str) else "")
        png = _image(root, it.get("file"))
        img = _img_tag(png, about) if png else "<div class='meta'>(image not found)</div>"
        nb = "\u00a0"  # a number stays with its unit
        lines = [f"<span class='t'>true {true}</span>", f"<span class='p'>predicted {pred}</span>",
                 " · ".join(x for x in ("" if p is None else f"p{nb}{100 * p:.1f}{nb}%",
                                        "" if loss is None else f"loss{nb}{loss:.2f}") if x)]
        lines = [f"<span>{x}</span>" for x in lines if x] + _source(it.get("source"))
        cells.append(f"<figure>{img}<figcaption>{''.join(lines)}</figcaption></figure>")
    intro = (f"<p class='meta'>The {len(items)} misclassified {html.escape(split)} images with the highest loss, "
             "highest first: the true class, the predicted class, p: the probability the model gave its prediction, "
             "and the loss (−log of the probability it gave the true class); below them, the image's file (or the "
             "dataset and its position there).</p>")
    return head + intro + "<div class='losses'>" + "".join(cells) + "</div>"


def most_confused(evaluation: dict) -> str:
    """The most-confused class pairs as a table (true class, predicted as, count, share of the true class),
    or '' when evaluation.json has none recorded."""
    pairs = evaluation.get("most_confused")
    if pairs is None:
        return ""
    head = "<h3 id='most-confused'>Most-confused classes</h3>"
    if not pairs:
        return head + "<p class='meta'>No class was mistaken for another.</p>"
    classes = [str(c) for c in evaluation.get("classes") or []]
    matrix = evaluation.get("confusion_matrix") or []
    totals = {c: sum(row) for c, row in zip(classes, matrix, strict=False)}
    examples = any(p.get("examples") for p in pairs)
    rows = ["<table class='v' style='width:auto'><tr><th>true class</th><th>predicted as</th><th>images</th>"
            "<th>of the true class</th>" + ("<th>for example</th>" if examples else "") + "</tr>"]
    for p in pairs:
        n, total = p.get("count"), totals.get(str(p.get("true")))
        share = f"{100 * n / total:.1f} %" if n is not None and total else "–"
        rows.append(f"<tr><td>{html.escape(str(p.get('true')))}</td><td>{html.escape(str(p.get('predicted')))}</td>"
                    f"<td class='num'>{n}</td><td class='num'>{share}</td>"
                    + (_examples(p.get("examples")) if examples else "") + "</tr>")
    return head + "".join(rows) + "</table>"
