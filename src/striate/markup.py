"""The HTML pieces every striate display shares, at the bottom of the package so that anything may use them:
the style sheet of the pages (report.html, the comparison, the search report), how numbers are written
(percentages, counts, durations), the headline cards, tables, the doctor's diagnosis box and verdict table,
and `fragment`: a notebook display (`_repr_html_`) with the style sheet inlined and scoped under
`.striate`, so that it styles its own output and nothing else of the notebook.

`Displayed` gives a class the three displays from two methods: `_text()` (a few lines with the headline
numbers: `repr`, and IPython's pretty printer) and `_html()` (the HTML parts of `_repr_html_`)."""

from __future__ import annotations

import html
import re
from functools import lru_cache

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

SCOPE = "striate"  # the class of a notebook display's outer <div>: the scoped style sheet applies inside it only


@lru_cache(maxsize=1)
def scoped_css() -> str:
    """CSS with every selector prefixed by `.striate` (`body` becomes the display's own box, without the
    page's margins and width), so a notebook output styles itself and not the notebook. The host's own rules
    that would reach inside (a dark theme's text colour, JupyterLab's striped table rows) are undone first, and
    the box is white, so a display reads as the page does (a whole report too: `report.show`)."""
    text = ("h1", "h2", "h3", "p", "li", "td", "th", "figcaption", "span", "div")
    rules = [",".join(f".{SCOPE} {t}" for t in text) + "{color:inherit}",
             f".{SCOPE} table.v tbody tr:nth-child(n){{background:transparent}}"]
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", CSS):
        scoped, body = [], " ".join(body.split())  # one rule a line
        for s in selectors.split(","):
            s = s.strip()
            if s == "body":
                scoped.append(f".{SCOPE}")
                body = ("font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;"
                        "background:#fff;line-height:1.4")
            else:
                scoped.append(f".{SCOPE} {s}")
        rules.append(",".join(scoped) + "{" + body + "}")
    rules.append(f".{SCOPE} table.v{{width:auto;min-width:40%}}")  # in a notebook's cell, a table as wide as it needs
    return "\n".join(rules)


def fragment(parts: list[str]) -> str:
    """A notebook display: the parts inside `<div class='striate'>`, with the scoped style sheet."""
    return f"<div class='{SCOPE}'><style>{scoped_css()}</style>" + "".join(parts) + "</div>"


class Displayed:
    """Rich displays from `_text()` (str) and `_html()` (list of HTML parts): `repr`, IPython's pretty
    printer (the same text) and `_repr_html_` (Jupyter's HTML output)."""

    def _text(self) -> str:
        raise NotImplementedError

    def _html(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._text()

    def _repr_pretty_(self, p, cycle: bool) -> None:
        p.text(f"{type(self).__name__}(...)" if cycle else self._text())

    def _repr_html_(self) -> str:
        return fragment(self._html())


# ----- numbers ---------------------------------------------------------------------------------------------
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


# ----- headline cards and tables ---------------------------------------------------------------------------
def card(key: str, label: str, value, detail: str = "", cls: str = "") -> str:
    """One headline number; its value alone in a span with id `key` (tests and scripts read it)."""
    d = f"<span class='d'>{html.escape(detail)}</span>" if detail else ""
    return (f"<div class='n {html.escape(cls)}'><span class='k'>{html.escape(label)}</span><span class='v' "
            f"id='{key}'>{html.escape(str(value))}</span>{d}</div>")


def headline_row(cards: list[str]) -> str:
    return "<div class='headline'>" + "".join(cards) + "</div>"


def table(header: list[str], rows: list[list], numeric: set[int] = frozenset(), row_classes: list[str] | None = None,
          attrs: str = "") -> str:
    """`<table class='v'>`: the header, then the rows (each cell's text is escaped; columns whose index is in
    `numeric` are right-aligned); `row_classes`: a class per row ('best' shades it)."""
    out = [f"<table class='v'{attrs}><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = row_classes[i] if row_classes else ""
        tds = "".join(f"<td{' class=num' if j in numeric else ''}>{html.escape(str(c))}</td>"
                      for j, c in enumerate(row))
        out.append((f"<tr class='{html.escape(cls)}'>" if cls else "<tr>") + tds + "</tr>")
    return "".join(out) + "</table>"


def badge(status: str) -> str:
    st = html.escape(str(status))
    return f"<span class='badge {st}'>{st}</span>"


# ----- the doctor's diagnosis and verdicts -----------------------------------------------------------------
def _item(x) -> str:
    """One piece of evidence, consequence or other finding: a string, or a verdict-like dict."""
    if isinstance(x, dict):
        head = x.get("check") or str(x.get("cause", "")).replace("_", " ")
        value = x.get("value") or x.get("measured") or ""
        advice = x.get("advice") or ""
        st = x.get("status")
        text = html.escape(head) + (f": {html.escape(str(value))}" if value else "")
        return (badge(st) if st else "") + text + (f" — {html.escape(str(advice))}" if advice else "")
    return html.escape(str(x))


def _items(label: str, xs) -> str:
    if not xs:
        return ""
    xs = xs if isinstance(xs, list | tuple) else [xs]
    return f"<div class='lbl'>{html.escape(label)}</div><ul>" + "".join(f"<li>{_item(x)}</li>" for x in xs) + "</ul>"


def diagnosis(d: dict | str) -> str:
    """The doctor's diagnosis (diagnostics.json "diagnosis": cause, status, advice, evidence, consequences,
    also; or the cause alone): the root cause first, with its advice, then what supports it and what it
    explains."""
    if not isinstance(d, dict):
        d = {"cause": str(d)}
    status = html.escape(str(d.get("status") or ""))
    cause = str(d.get("cause") or "").replace("_", " ")
    parts = [f"<div class='dx {status}' id='diagnosis'><div>"
             + (f"<span class='badge {status}'>{status}</span>" if status else "")
             + f"<span class='cause'>{html.escape(cause)}</span></div>"]
    if d.get("advice"):
        parts.append(f"<p class='advice'>{html.escape(str(d['advice']))}</p>")
    parts += [_items("evidence", d.get("evidence")), _items("this explains", d.get("consequences")),
              _items("also found", d.get("also"))]
    return "".join(parts) + "</div>"


def verdict_table(verdicts: list[dict]) -> str:
    """The verdicts (dicts: status, check, value, expected, advice), one row each, the status coloured."""
    rows = ["<table class='v'><tr><th>status</th><th>check</th><th>measured</th><th>expected</th>"
            "<th>advice</th></tr>"]
    for v in verdicts:
        st = html.escape(v.get("status", ""))
        rows.append(f"<tr><td class='s {st}'>{st}</td><td>{html.escape(v.get('check', ''))}</td>"
                    f"<td>{html.escape(v.get('value', ''))}</td><td>{html.escape(v.get('expected', ''))}</td>"
                    f"<td>{html.escape(v.get('advice', ''))}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def verdict_counts(verdicts: list[dict]) -> str:
    """'11 checks: 9 PASS, 2 WARN'."""
    n = {s: sum(v.get("status") == s for v in verdicts) for s in ("FAIL", "WARN", "PASS", "SKIP")}
    text = ", ".join(f"{k} {s}" for s, k in n.items() if k)
    return f"<p class='meta'>{len(verdicts)} check{'s' if len(verdicts) != 1 else ''}: {text}</p>"
