"""report.html: one self-contained page (PNGs embedded as base64) for a run directory, and a page that
overlays several runs. The PNGs are also written to `<run>/plots/`.

Reads what is there: `metrics.jsonl` (the trainer's History), `diagnostics.json` (the doctor or the
`Diagnostics` callback: verdicts, layer statistics, update ratios, the range test, filters, a confusion
matrix, the initialisation experiment), `summary.json` and `config.json`; for a trained run without
stored filters / confusion matrix they are computed from the best checkpoint on the test split."""

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


def _from_checkpoint(run: Path) -> tuple[dict | None, dict | None, str]:
    """(filters, confusion, note) from the run's best checkpoint on its test split (or nothing)."""
    if not (run / "checkpoints").is_dir() or not (run / "config.json").is_file():
        return None, None, ""
    try:
        from ..nn.module import no_grad
        from ..train import experiment as ex
        from ..train.metrics import confusion_matrix

        trained = ex.load_trained(run)
        filters = None
        for name, p in trained.model.named_parameters():
            if p.data.ndim in (2, 4):
                filters = {"name": name, "weight": p.data}
                break
        confusion = None
        data = ex.load_data(trained.config)
        split, images, labels = ("test", data.test.images, data.test.labels) if data.test is not None else (
            "validation", data.val_x, data.val_y)
        if images is not None:
            x = ex.apply_preprocess(trained.preprocess, images)
            with no_grad():
                pred = np.concatenate([trained.model.forward(x[i:i + 500]).argmax(axis=1)
                                       for i in range(0, len(x), 500)])
            confusion = {"matrix": confusion_matrix(pred, labels, len(trained.classes)).tolist(),
                         "classes": trained.classes, "split": split}
        return filters, confusion, ""
    except Exception as e:  # a report must still be written when the checkpoint cannot be used
        return None, None, f"filters / confusion matrix unavailable: {type(e).__name__}: {e}"


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, title: str | None = None,
                 log_loss: bool | None = None, use_checkpoint: bool = True) -> Path:
    """Write `out` (default `<run_dir>/report.html`) and `<run_dir>/plots/*.png`; returns the path."""
    from ..diagnose.curves import diagnose_curves, load_history
    from . import plots as P

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"report: {str(run)!r} is not a directory")
    out = Path(out) if out is not None else run / "report.html"
    plots_dir = run / "plots"
    iters, epochs = load_history(run / "metrics.jsonl")
    diag = _read_json(run / "diagnostics.json") or {}
    summary = _read_json(run / "summary.json")
    config = _read_json(run / "config.json")
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
    filters, confusion = diag.get("filters"), diag.get("confusion")
    if use_checkpoint and (filters is None or confusion is None):
        f2, c2, note = _from_checkpoint(run)
        filters, confusion = filters or f2, confusion or c2
        if note:
            notes.append(note)
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
    meta = [f"run directory: {html.escape(str(run))}", f"written {time.strftime('%Y-%m-%d %H:%M:%S')}"]
    if summary:
        meta.append("status: " + html.escape(str(summary.get("status"))))
        if summary.get("stop_reason"):
            meta.append(html.escape(str(summary["stop_reason"])))
    head = [f"<h1>{html.escape(title or 'striate report: ' + run.name)}</h1>",
            "<div class='meta'>" + " · ".join(meta) + "</div>"]
    if config:
        head.append("<details><summary>configuration</summary><pre>" + html.escape(json.dumps(config, indent=1))
                    + "</pre></details>")
    if diag.get("settings"):
        settings = ", ".join(f"{k}={v}" for k, v in diag["settings"].items())
        head.append(f"<p class='meta'>settings: {html.escape(settings)}</p>")
    head += [f"<p class='meta'>{html.escape(n)}</p>" for n in notes]
    _write_page(out, title or f"striate report: {run.name}", head + parts)
    return out


def write_comparison(run_dirs: list[str | os.PathLike], out: str | os.PathLike,
                     title: str = "striate: runs compared") -> Path:
    """One page overlaying the loss and validation-accuracy curves of several runs, with a table of
    their final numbers."""
    from ..diagnose.curves import load_history
    from . import plots as P

    runs, rows = {}, []
    for d in run_dirs:
        d = Path(d)
        if not (d / "metrics.jsonl").is_file():
            raise FileNotFoundError(f"report: {str(d)!r} has no metrics.jsonl")
        name = d.name if d.name not in runs else str(d)
        iters, epochs = load_history(d)
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
