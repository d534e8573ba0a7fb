"""The page comparing runs (`striate report A B …`): a table with each run's status, test accuracy, best
and last accuracies, loss, epochs and wall time, plus a column for every configuration value that differs
between the runs; and their curves on shared axes of epochs. Accuracies in %, as on the plots."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from .header import effective_config
from .history import best_epoch, epoch_number
from .inputs import read_optional
from .style import cell, duration, figure, percent, write_page

# differ between any two runs without saying anything about them
IGNORED = ("out", "resume", "config_toml_sha256", "data_relative")  # the last two: config.json's bookkeeping


def _value(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) or "[]"
    if isinstance(v, dict):
        return json.dumps(v) if v else "{}"
    if isinstance(v, float):
        return f"{v:g}"
    return "–" if v is None else str(v)


def differing(configs: list[dict]) -> list[str]:
    """The configuration keys whose values are not the same in every run (in the first run's order). A key
    only some runs have (a fine-tuned run's `from`, `freeze`) differs where one of them sets it: its off
    value (0, empty, false) is what the others do."""
    keys = []
    for c in configs:
        keys += [k for k in c if k not in keys and k not in IGNORED]

    def values(k):
        some = any(k not in c for c in configs)
        return {json.dumps((c.get(k) or None) if some else c.get(k), sort_keys=True) for c in configs}

    return [k for k in keys if len(values(k)) > 1]


def _names(run_dirs: list) -> list[str]:
    """Each run's directory name, or more of its path where two names are the same."""
    names = [r.path.name for r in run_dirs]
    return [n if names.count(n) == 1 else str(r.path) for n, r in zip(names, run_dirs, strict=True)]


def write_comparison(run_dirs: list, out: str | os.PathLike, title: str = "striate: runs compared") -> Path:
    """One page comparing several runs (`RunDir`s); FileNotFoundError for a directory without metrics."""
    return write_page(out, title, comparison_body(run_dirs, title))


def comparison_body(run_dirs: list, title: str = "striate: runs compared") -> list[str]:
    """The comparison page's HTML parts, its figure embedded (`write_comparison`, `inline.show`)."""
    from ..diagnose.curves import load_history
    from . import plots as P
    from .figure import png_bytes

    for run in run_dirs:
        if not run.metrics_file.is_file():
            raise FileNotFoundError(f"report: {str(run.path)!r} has no metrics (metrics.jsonl)")
    names = _names(run_dirs)
    histories = [load_history(r.metrics_file) for r in run_dirs]
    summaries = [read_optional(r.summary_file) or {} for r in run_dirs]
    configs = [effective_config(read_optional(r.config_file)) for r in run_dirs]
    keys = differing(configs)
    tests = [(s.get("test") or {}).get("accuracy") for s in summaries]
    top = max((t for t in tests if t is not None), default=None)

    head = ["run", "status", "test accuracy", "best val accuracy", "last train accuracy", "last val accuracy",
            "last loss", "epochs trained", "wall time"]
    rows = []
    for name, (_, epochs), s, c, test in zip(names, histories, summaries, configs, tests, strict=True):
        last = epochs[-1] if epochs else {}
        best = best_epoch(epochs)
        best_val = s.get("best_val_accuracy", None if best is None else best.get("val_accuracy"))
        best_at = s.get("best_epoch") or (None if best is None else epoch_number(epochs)(best))
        cells = [html.escape(name), html.escape(str(s.get("status", "–"))), percent(test),
                 percent(best_val) + ("" if best_val is None or best_at is None else f" (epoch {best_at})"),
                 percent(last.get("accuracy")), percent(last.get("val_accuracy")), cell(last.get("loss")),
                 cell(s.get("epochs_completed", len(epochs))), duration(s.get("seconds")),
                 *[html.escape(_value(c.get(k))) for k in keys]]
        cls = " class='best'" if test is not None and test == top and len(run_dirs) > 1 else ""
        num = " class='num'"
        rows.append(f"<tr{cls}>" + "".join(f"<td{num if 1 < i < 9 else ''}>{v}</td>" for i, v in enumerate(cells))
                    + "</tr>")
    span = " rowspan='2'" if keys else ""
    table = ("<table class='v' id='runs'><tr>" + "".join(f"<th{span}>{html.escape(h)}</th>" for h in head)
             + (f"<th colspan='{len(keys)}' class='cfg'>configuration (the values that differ)</th></tr><tr>"
                + "".join(f"<th class='cfg'>{html.escape(k)}</th>" for k in keys) if keys else "")
             + "</tr>" + "".join(rows) + "</table>")
    note = ("<p class='meta'>" + (f"The runs differ in: {html.escape(', '.join(keys))}. " if keys else
            "The runs have the same configuration. ") + "Green: the best test accuracy.</p>")
    fig = P.plot_overlay(dict(zip(names, histories, strict=True)))
    body = [f"<h1>{html.escape(title)}</h1>",
            "<p class='meta'>" + " · ".join(html.escape(str(r.path)) for r in run_dirs) + "</p>", table, note,
            figure("overlay", png_bytes(fig), "The runs on shared axes: the smoothed training loss, and the "
                   "validation accuracy at each epoch's end", wide=True)]
    return body
