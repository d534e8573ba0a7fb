"""The pages' one look: the style sheet every striate page shares (run report, comparison, search report),
the page frame (and `fragment`, the same body with its style scoped, for a notebook's output), a figure with
its caption, and how numbers are written (percentages, counts, durations).
The plots are drawn at the size they are shown (`figure.DPI`): a column is 640 px, a wide figure 1300 px."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;padding:20px 10px 40px;
 max-width:1340px;color:#1f2328;background:#fff;line-height:1.4}
h1{font-size:24px;margin:0 0 2px}
h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin:30px 0 12px}
h3{font-size:15px;margin:18px 0 8px}
.sub{color:#444;font-size:15px;margin:0 0 4px} .meta{color:#656d76;font-size:13px;margin:2px 0}
.headline{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px;margin:16px 0 8px}
.headline .n{border:1px solid #d0d7de;border-radius:8px;padding:8px 12px;background:#f6f8fa}
.headline .k{display:block;font-size:11px;color:#656d76;text-transform:uppercase;letter-spacing:.05em}
.headline .v{display:block;font-size:24px;font-weight:650;white-space:nowrap}
.headline .d{display:block;font-size:12px;color:#656d76}
.headline .n.finished,.headline .n.stopped_early{border-color:#2e7d32;background:#e8f5e9}
.headline .n.diverged{border-color:#c62828;background:#ffebee}
.headline .n.interrupted,.headline .n.running{border-color:#ef6c00;background:#fff3e0}
table.v{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
table.v td,table.v th{border:1px solid #d0d7de;padding:4px 8px;vertical-align:top;text-align:left}
table.v th{background:#f6f8fa} table.v th.cfg{background:#eef3fb}
table.v td.num{text-align:right;font-variant-numeric:tabular-nums}
table.v tr.best td{background:#e8f5e9}
.s{font-weight:bold;color:#fff;text-align:center!important;width:52px}
.PASS{background:#2e7d32}.WARN{background:#ef6c00}.FAIL{background:#c62828}.SKIP{background:#757575}
.dx{border:1px solid #d0d7de;border-left:6px solid #757575;border-radius:6px;padding:10px 14px;margin:8px 0 14px}
.dx.PASS{border-left-color:#2e7d32;background:#f1f8f2}.dx.WARN{border-left-color:#ef6c00;background:#fff8ef}
.dx.FAIL{border-left-color:#c62828;background:#fdf0f0}
.dx .cause{font-size:18px;font-weight:650} .dx .advice{font-size:15px;margin:4px 0}
.dx ul{margin:4px 0 4px 20px;padding:0;font-size:13px} .dx .lbl{font-size:12px;color:#656d76;margin-top:6px}
.badge{display:inline-block;border-radius:4px;color:#fff;font-size:12px;font-weight:700;padding:1px 7px;
 margin-right:8px;vertical-align:3px}
figure{margin:0} figure img{display:block;max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:13px;color:#444;margin:4px 2px 0}
div.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:22px 20px;align-items:start}
figure.wide{grid-column:1 / span 2}
.losses{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:12px}
.losses figure{border:1px solid #d0d7de;border-radius:6px;padding:6px;text-align:center;background:#fafbfc}
.losses img{margin:0 auto;image-rendering:pixelated;image-rendering:crisp-edges;border:0}
.losses figcaption{font-size:12px;line-height:1.35;text-align:left}
.losses figcaption>span{display:block}
.losses .t{color:#2e7d32;font-weight:650} .losses .p{color:#c62828;font-weight:650}
details{margin:8px 0} summary{cursor:pointer;color:#0969da;font-size:14px}
pre{background:#f6f8fa;padding:8px;font-size:12px;overflow-x:auto}
"""


def page(title: str, body: list[str]) -> str:
    """A self-contained HTML page (no script, no external resource)."""
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}"
            f"</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def scoped_css(root: str) -> str:
    """`CSS` with every rule confined to the elements inside `.root` (`body` becomes `.root` itself), so that
    a page shown inside another one (a notebook's output) restyles nothing around it."""
    rules = []
    for rule in CSS.split("}"):
        if "{" not in rule:
            continue
        selectors, declarations = rule.split("{", 1)
        scoped = [f".{root}" if sel.strip() == "body" else f".{root} {sel.strip()}" for sel in selectors.split(",")]
        rules.append(",".join(scoped) + "{" + declarations.strip() + "}")
    return "\n".join(rules)


def fragment(body: list[str], root: str = "striate-report") -> str:
    """The page's body as one `<div class=root>` with its own scoped style sheet: HTML to place inside another
    page (a notebook's output) without an iframe. The host's rules for text colours and table rows (a dark
    theme's, JupyterLab's striped rows) are undone inside it first, so the page reads as it does on its own."""
    reset = (f".{root} :is(h1,h2,h3,p,li,td,th,figcaption,span,div){{color:inherit}}"
             f".{root} table.v tbody tr:nth-child(n){{background:transparent}}")
    return f"<div class='{root}'><style>{reset}\n{scoped_css(root)}</style>\n" + "\n".join(body) + "\n</div>"


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


def card(key: str, label: str, value, detail: str = "", cls: str = "") -> str:
    """One headline number; its value alone in a span with id `key` (tests and scripts read it)."""
    d = f"<span class='d'>{html.escape(detail)}</span>" if detail else ""
    return (f"<div class='n {html.escape(cls)}'><span class='k'>{html.escape(label)}</span><span class='v' "
            f"id='{key}'>{html.escape(str(value))}</span>{d}</div>")


def headline_row(cards: list[str]) -> str:
    return "<div class='headline'>" + "".join(cards) + "</div>"


def percent(v, digits: int = 2) -> str:
    return "–" if v is None else f"{100 * v:.{digits}f} %"


def count(n) -> str:
    """Three significant digits: 12.3 M, 338 k, 950."""
    if n is None:
        return "–"
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= div:
            x = n / div
            return (f"{x:.3g}" if x < 999.5 else f"{x:.0f}") + suffix
    return str(n)


def duration(seconds) -> str:
    """0.6 s, 42.3 s, 3 min 12 s, 1 h 05 min."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def cell(v) -> str:
    """A table cell's text: floats to 4 significant digits, None as –."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return "–" if v is None else html.escape(str(v))
