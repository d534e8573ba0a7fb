"""report.html: one self-contained page (PNGs embedded as base64) for a run directory, and a page that
overlays several runs. The PNGs are also written to `<run>/plots/`.

Draws from a run directory's files only, never recomputing anything: the metrics (the trainer's History),
the diagnostics (the doctor or the `Diagnostics` callback: verdicts, layer statistics, update ratios, the
range test, filters, a confusion matrix, the initialisation experiment), the summary, the configuration,
the test evaluation (confusion matrix, per-class accuracy) and the first layer's weights from the best
checkpoint. `run` is a `striate.run.RunDir` (anything with its file attributes: `path`, `metrics_file`,
`diagnostics_file`, `summary_file`, `config_file`, `evaluation_file`, `plots_dir`, `report_file`,
`checkpoints_dir`): the report never spells a file name itself."""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path

import numpy as np

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
.meta{color:#666;font-size:13px} table.v{border-collapse:collapse;width:100%;font-size:13px}
table.v td,table.v th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
.s{font-weight:bold;color:white;text-align:center!important;width:48px}
.PASS{background:#2e7d32}.WARN{background:#ef6c00}.FAIL{background:#c62828}.SKIP{background:#757575}
figure{margin:10px 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:12px;color:#555}
div.grid{display:grid;grid-template-columns:1fr 1fr;gap:8px 16px}
figure.wide{grid-column:1 / span 2}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow-x:auto}
.headline{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.headline .n{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:110px}
.headline .k{display:block;font-size:11px;color:#666;text-transform:uppercase;letter-spacing:.04em}
.headline .v{display:block;font-size:20px;font-weight:600}
"""


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


_WIDE = ("activations_", "gradients_", "scale_", "confusion", "init_", "verdicts", "overlay")


def _figure(name: str, png: bytes, caption: str, plots_dir: Path | None) -> str:
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        (plots_dir / f"{name}.png").write_bytes(png)
    data = base64.b64encode(png).decode("ascii")
    wide = " class='wide'" if name.startswith(_WIDE) else ""
    return (f'<figure id="{name}"{wide}><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def verdict_table(verdicts: list[dict]) -> str:
    rows = ["<table class='v'><tr><th>status</th><th>check</th><th>measured</th><th>expected</th>"
            "<th>advice</th></tr>"]
    for v in verdicts:
        st = html.escape(v.get("status", ""))
        rows.append(f"<tr><td class='s {st}'>{st}</td><td>{html.escape(v.get('check', ''))}</td>"
                    f"<td>{html.escape(v.get('value', ''))}</td><td>{html.escape(v.get('expected', ''))}</td>"
                    f"<td>{html.escape(v.get('advice', ''))}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _first_layer(run) -> dict | None:
    """The first convolution's (else the first matrix's) weights from the run's best checkpoint."""
    from ..train.checkpoint import CheckpointError, CheckpointStore

    store = CheckpointStore(run.checkpoints_dir)
    tag = "best" if store.has("best") else "last"
    if not store.has(tag):
        return None
    try:
        weights = store.load(tag).weights
    except CheckpointError:
        return None
    for ndim in (4, 2):
        for name, w in weights.items():
            if w.ndim == ndim and name.endswith("weight"):
                return {"name": name, "weight": w}
    return None


def write_report(run, out: str | os.PathLike | None = None, title: str | None = None,
                 log_loss: bool | None = None) -> Path:
    """Write `out` (default the run's report file) and the plots as PNG files; returns the page's path."""
    from ..diagnose.curves import diagnose_curves, load_history
    from . import plots as P

    out = Path(out) if out is not None else run.report_file
    plots_dir = run.plots_dir
    iters, epochs = load_history(run.metrics_file)
    diag = _read_json(run.diagnostics_file) or {}
    summary = _read_json(run.summary_file)
    config = _read_json(run.config_file)
    evaluation = _read_json(run.evaluation_file)
    parts: list[str] = []
    notes: list[str] = []

    verdicts = list(diag.get("verdicts") or [])
    if not any(v.get("check", "").startswith("learning curves") for v in verdicts) and (iters or epochs):
        verdicts.append(diagnose_curves([*iters, *epochs],
                                        num_classes=diag.get("num_classes")).to_dict())
    if verdicts:
        parts.append("<h2>Diagnosis</h2>" + verdict_table(verdicts))

    figs: list[tuple[str, object, str]] = []
    if iters:
        losses = np.array([r.get("loss") if r.get("loss") is not None else np.nan for r in iters], dtype=float)
        finite = losses[np.isfinite(losses) & (losses > 0)]
        wide = finite.size > 1 and finite.max() / finite.min() > 30
        figs.append(("loss", P.plot_loss(iters, epochs, log=bool(log_loss) if log_loss is not None else False),
                     "Training loss per iteration, raw and smoothed; dashed: the best epoch"))
        if log_loss or (log_loss is None and wide):
            figs.append(("loss_log", P.plot_loss(iters, epochs, log=True), "The same on a log scale"))
    if epochs:
        figs.append(("accuracy", P.plot_accuracy(epochs), "Accuracy per epoch"))
    if any(r.get("lr") is not None for r in iters):
        figs.append(("lr", P.plot_lr(iters), "Learning rate per iteration"))
    if diag.get("update_ratio"):
        figs.append(("update_ratio", P.plot_update_ratio(diag["update_ratio"]),
                     "‖ΔW‖/‖W‖ per weight tensor (green band: healthy; dashed: 1e-3)"))
    if diag.get("lr_finder"):
        lr = (diag.get("settings") or {}).get("lr")
        figs.append(("lr_finder", P.plot_lr_finder(diag["lr_finder"], lr),
                     "Learning-rate range test: loss against an exponentially growing learning rate"))
    snaps = (diag.get("layer_stats") or {}).get("snapshots") or []
    for snap, when in ((snaps[0], "start"), (snaps[-1], "latest")) if len(snaps) > 1 else (
            ((snaps[0], "start"),) if snaps else ()):
        figs.append((f"activations_{when}", P.plot_histograms(
            snap["layers"], f"Layer outputs at step {snap['iteration']} ({when})"),
            f"Histograms of every layer's output at step {snap['iteration']}"))
        if any(x.get("grad_hist") for x in snap["layers"]):
            figs.append((f"gradients_{when}", P.plot_histograms(
                snap["layers"], f"Gradients at each layer's output, step {snap['iteration']} ({when})",
                gradients=True), f"Histograms of dL/d(output) of every layer at step {snap['iteration']}"))
        figs.append((f"scale_{when}", P.plot_layer_scale(snap["layers"], f"Per-layer scale at step "
                                                         f"{snap['iteration']}"),
                     "Activation mean/std and gradient RMS per layer"))
    filters, confusion = diag.get("filters") or _first_layer(run), diag.get("confusion")
    if evaluation is not None:
        confusion = {"matrix": evaluation["confusion_matrix"], "classes": evaluation["classes"],
                     "split": evaluation.get("split", "test")}
    if filters is not None:
        figs.append(("filters", P.plot_filters(np.asarray(filters["weight"]), filters.get("name", "first layer")),
                     "The first layer's filters, each scaled to its own range"))
    if confusion is not None:
        figs.append(("confusion", P.plot_confusion(confusion["matrix"], confusion.get("classes")),
                     f"Confusion matrix and per-class accuracy ({confusion.get('split', '')} split)"))
    for case in diag.get("init_experiment") or []:
        slug = "init_" + "".join(ch if ch.isalnum() else "_" for ch in case["name"]).strip("_")
        figs.append((slug, P.plot_init_case(case), f"Initialisation experiment: {case['name']} — "
                     + "; ".join(f"{v['status']} {v['check']}: {v['advice']}" for v in case.get("verdicts", []))))
    if verdicts:
        figs.append(("verdicts", P.plot_verdicts(verdicts), "The verdict table as an image"))
    if figs:
        parts.append("<h2>Plots</h2><div class='grid'>")
        parts += [_figure(name, P.png_bytes(fig), caption, plots_dir) for name, fig, caption in figs]
        parts.append("</div>")
    if not parts:
        parts.append("<p>Nothing to show yet: no metrics.jsonl or diagnostics.json in this directory.</p>")
    meta = [f"run directory: {html.escape(str(run.path))}", f"written {time.strftime('%Y-%m-%d %H:%M:%S')}"]
    if summary:
        meta.append("status: " + html.escape(str(summary.get("status"))))
        if summary.get("stop_reason"):
            meta.append(html.escape(str(summary["stop_reason"])))
    head = [f"<h1>{html.escape(title or 'striate report: ' + run.path.name)}</h1>",
            "<div class='meta'>" + " · ".join(meta) + "</div>"]
    if summary:
        head.append(headline(summary))
    if config:
        head.append("<details><summary>configuration</summary><pre>" + html.escape(json.dumps(config, indent=1))
                    + "</pre></details>")
    if diag.get("settings"):
        settings = ", ".join(f"{k}={v}" for k, v in diag["settings"].items())
        head.append(f"<p class='meta'>settings: {html.escape(settings)}</p>")
    head += [f"<p class='meta'>{html.escape(n)}</p>" for n in notes]
    _write_page(out, title or f"striate report: {run.path.name}", head + parts)
    return out


def write_comparison(run_dirs: list, out: str | os.PathLike, title: str = "striate: runs compared") -> Path:
    """One page overlaying the loss and validation-accuracy curves of several runs (`RunDir`s), with a table
    of their final numbers."""
    from ..diagnose.curves import load_history
    from . import plots as P

    runs, rows = {}, []
    for run in run_dirs:
        d = run.path
        if not run.metrics_file.is_file():
            raise FileNotFoundError(f"report: {str(d)!r} has no metrics")
        name = d.name if d.name not in runs else str(d)
        iters, epochs = load_history(run.metrics_file)
        runs[name] = (iters, epochs)
        last = epochs[-1] if epochs else {}
        best = P.best_epoch(epochs) if epochs else None
        cells = [name, len(iters), len(epochs), last.get("loss"), last.get("accuracy"), last.get("val_accuracy"),
                 None if best is None else best.get("val_accuracy")]
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    fig = P.plot_overlay(runs)
    table = ("<table class='v'><tr><th>run</th><th>iterations</th><th>epochs</th><th>last loss</th>"
             "<th>last train acc</th><th>last val acc</th><th>best val acc</th></tr>" + "".join(rows) + "</table>")
    out = Path(out)
    _write_page(out, title, [f"<h1>{html.escape(title)}</h1>", table,
                             _figure("overlay", P.png_bytes(fig), "Curves of every run on shared axes", None)])
    return out


def _percent(v) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _count(n) -> str:
    if n is None:
        return "–"
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= div:
            return f"{n / div:.2f}{suffix}"
    return str(n)


def headline(summary: dict) -> str:
    """The numbers a person looks for first: status, test accuracy, best validation accuracy and its epoch,
    parameters, MACs per image, epochs and wall time."""
    test = (summary.get("test") or {}).get("accuracy")
    best = summary.get("best_val_accuracy")
    best_label = "best val accuracy"
    if best is None and summary.get("best_train_accuracy") is not None:
        best, best_label = summary["best_train_accuracy"], "best train accuracy"
    epoch = summary.get("best_epoch")
    seconds = summary.get("seconds")
    cells = [("status", summary.get("status", "–")), ("test accuracy", _percent(test)),
             (best_label, _percent(best) + (f" (epoch {epoch})" if epoch is not None else "")),
             ("parameters", _count(summary.get("parameters"))), ("MACs / image", _count(summary.get("macs"))),
             ("epochs", summary.get("epochs_completed", "–")),
             ("wall time", "–" if seconds is None else f"{seconds:.1f} s")]
    items = "".join(f"<div class='n'><span class='k'>{html.escape(k)}</span><span class='v' id='{k.split()[0]}'>"
                    f"{html.escape(str(v))}</span></div>" for k, v in cells)
    return f"<div class='headline'>{items}</div>"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape("" if v is None else str(v))


def _write_page(path: Path, title: str, body: list[str]) -> None:
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
