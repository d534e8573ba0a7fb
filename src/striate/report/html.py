"""report.html: one self-contained page (PNGs embedded as base64) for a run directory, top to bottom: the
headline numbers (status, test accuracy, best validation accuracy, parameters, MACs, wall time), the
doctor's diagnosis and verdicts, the training curves, the network's inside, and the test set (confusion
matrix and per-class accuracy, the top losses, the most-confused classes). The PNGs are also written to
`<run>/plots/`.

Draws from a run directory's files only, never recomputing anything: the metrics (the trainer's History),
the diagnostics (the doctor or the `Diagnostics` callback: verdicts, diagnosis, layer statistics, update
ratios, the range test, filters, a confusion matrix, the initialisation experiment), the summary, the
configuration, the test evaluation (confusion matrix, per-class accuracy, top losses, most-confused pairs)
and the first layer's weights from the best checkpoint. `run` is a `striate.run.RunDir` (anything with its
file attributes: `path`, `metrics_file`, `diagnostics_file`, `summary_file`, `config_file`,
`evaluation_file`, `plots_dir`, `report_file`, `checkpoints_dir`, optionally `skipped_file`): the report never
spells a file name."""

from __future__ import annotations

import html
import os
import re
import time
from pathlib import Path

import numpy as np

from . import evaluation as E
from . import header as H
from .inputs import draw_without_damage, read_inputs
from .skipped import skipped_files
from .style import figure, write_page

verdict_table = H.verdict_table


def _natural(name: str) -> list:
    """'10.weight' after '2.weight': module paths in forward order."""
    return [int(p) if p.isdigit() else p for p in re.split(r"[.]", name)]


def _first_layer(run) -> dict | None:
    """The first convolution's (else the first matrix's) weights from the run's best checkpoint."""
    from ..train.checkpoint import CheckpointError, CheckpointStore

    store = CheckpointStore(run.checkpoints_dir)
    try:  # a damaged checkpoint only leaves the filters out of the page
        tag = "best" if store.has("best") else "last"
        if not store.has(tag):
            return None
        weights = store.load(tag).weights
    except CheckpointError:
        return None
    names = sorted(weights, key=_natural)
    for ndim in (4, 2):
        for name in names:
            if weights[name].ndim == ndim and name.endswith("weight"):
                return {"name": name, "weight": weights[name]}
    return None


def _training(iters, epochs, diag, log_loss):
    """(name, figure, caption, wide) of the training curves."""
    from . import plots as P

    figs = []
    if iters:
        losses = np.array([r.get("loss") if r.get("loss") is not None else np.nan for r in iters], dtype=float)
        finite = losses[np.isfinite(losses) & (losses > 0)]
        spans = finite.size > 1 and finite.max() / finite.min() > 30
        figs.append(("loss", P.plot_loss(iters, epochs),
                     "Training loss per iteration (light: each batch; dark: smoothed), the validation loss at each "
                     "epoch's end, and the best epoch (dashed)", False))
        if log_loss or (log_loss is None and spans):
            figs.append(("loss_log", P.plot_loss(iters, epochs, log=True), "The same on a log scale", False))
    if epochs:
        figs.append(("accuracy", P.plot_accuracy(epochs), "Training and validation accuracy at each epoch's end",
                     False))
    if any(r.get("lr") is not None for r in iters):
        figs.append(("lr", P.plot_lr(iters), "The learning rate at each iteration", False))
    if diag.get("update_ratio"):
        figs.append(("update_ratio", P.plot_update_ratio(diag["update_ratio"]),
                     "‖ΔW‖/‖W‖ per weight tensor: the size of each update relative to the weights (green band: "
                     "healthy; dashed: the rule of thumb 1e-3)", False))
    if diag.get("lr_finder"):
        lr = (diag.get("settings") or {}).get("lr")
        figs.append(("lr_finder", P.plot_lr_finder(diag["lr_finder"], lr),
                     "Learning-rate range test: the loss against an exponentially growing learning rate", False))
    return figs


def _inside(run, diag):
    """(name, figure, caption, wide) of the network's inside: histograms, scale, filters, init experiment."""
    from . import layer_plots as L

    figs = []
    snaps = (diag.get("layer_stats") or {}).get("snapshots") or []
    if snaps:
        first, last = snaps[0], (snaps[-1] if len(snaps) > 1 else None)
        steps = (first["iteration"], None if last is None else last["iteration"])
        latest = None if last is None else last["layers"]
        when = f"at step {steps[0]}" + ("" if last is None else f" (outline) and step {steps[1]} (filled)")
        figs.append(("activations", L.plot_histograms(first["layers"], latest, "Layer outputs", steps=steps),
                     f"Histograms of every layer's output {when}; σ: standard deviation", True))
        if any(x.get("grad_hist") for x in first["layers"]):
            figs.append(("gradients", L.plot_histograms(first["layers"], latest, "Gradients at each layer's output",
                                                        gradients=True, steps=steps),
                         f"Histograms of dL/d(output) of every layer {when}; rms: root mean square", True))
        figs.append(("layer_scale", L.plot_layer_scale(first["layers"], latest, steps),
                     "The output's standard deviation and the gradient's RMS per layer, in forward order", True))
    filters = diag.get("filters") or _first_layer(run)
    if filters is not None:
        figs.append(("filters", L.plot_filters(np.asarray(filters["weight"]), filters.get("name", "first layer")),
                     "The first layer's filters, each scaled to its own range", False))
    for case in diag.get("init_experiment") or []:
        slug = "init_" + "".join(ch if ch.isalnum() else "_" for ch in case["name"]).strip("_")
        figs.append((slug, L.plot_init_case(case), f"Initialisation experiment: {case['name']} — "
                     + "; ".join(f"{v['status']} {v['check']}: {v['advice']}" for v in case.get("verdicts", [])),
                     True))
    return figs


def _evaluation(diag, evaluation):
    """(name, figure, caption, wide) of the confusion matrix: the test evaluation's, else the doctor's (of
    its validation split)."""
    confusion = diag.get("confusion")
    if evaluation is not None and evaluation.get("confusion_matrix"):
        confusion = {"matrix": evaluation["confusion_matrix"], "classes": evaluation.get("classes"),
                     "split": evaluation.get("split", "test")}
    if confusion is None:
        return []
    from . import plots as P

    return [("confusion", P.plot_confusion(confusion["matrix"], confusion.get("classes")),
             f"Confusion matrix and per-class accuracy on the {confusion.get('split') or ''} split", True)]


def _embed(figs, pngs: dict[str, bytes]) -> list[str]:
    """Render each figure to PNG (into `pngs`, file name → bytes) and return the <figure> elements."""
    from .figure import png_bytes

    out = []
    for name, fig, caption, wide in figs:
        png = png_bytes(fig)
        pngs[f"{name}.png"] = png
        out.append(figure(name, png, caption, wide))
    return out


def _prune(plots_dir: Path, written: set[str]) -> None:
    """Remove the PNGs of figures this page no longer has (drawn by an earlier version of the page)."""
    if plots_dir.is_dir():
        for p in plots_dir.glob("*.png"):
            if p.name not in written:
                p.unlink(missing_ok=True)


def write_report(run, out: str | os.PathLike | None = None, title: str | None = None,
                 log_loss: bool | None = None) -> Path:
    """Write `out` (default the run's report file) and the plots as PNG files; returns the page's path.
    `log_loss`: True adds the loss on a log scale, None adds it when the loss spans more than 30×. The page
    is drawn in memory first, so a failure writes nothing; a damaged optional file is left out (`inputs`)."""
    out = Path(out) if out is not None else run.report_file
    title = title or f"striate report: {run.path.name}"
    body, pngs = report_body(run, title, log_loss)
    if run.plots_dir is not None:
        from ..atomic import write_atomic

        for name, png in pngs.items():  # atomically, as every file striate writes: a kill leaves a whole PNG
            run.plots_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(run.plots_dir / name, png)
        _prune(run.plots_dir, set(pngs))
    return write_page(out, title, body)


def report_body(run, title: str | None = None, log_loss: bool | None = None) -> tuple[list[str], dict[str, bytes]]:
    """The page's HTML parts (its PNGs embedded) and the PNGs (file name → bytes), drawn from the run's files:
    what report.html holds, and what `inline.show` displays in a notebook."""
    title = title or f"striate report: {run.path.name}"
    return draw_without_damage(lambda inputs: _page(run, inputs, title, log_loss), read_inputs(run))


def _page(run, inputs: dict, title: str, log_loss: bool | None) -> tuple[list[str], dict[str, bytes]]:
    """The page's HTML parts and its PNGs (file name → bytes), from the run's files read by `read_inputs`."""
    from ..diagnose.checks import learning_curves

    iters, epochs = inputs["metrics"]
    diag, summary, evaluation = inputs["diagnostics"] or {}, inputs["summary"], inputs["evaluation"]
    config = H.effective_config(inputs["config"])

    meta = [f"run directory {html.escape(str(run.path))}", f"page written {time.strftime('%Y-%m-%d %H:%M:%S')}"]
    if summary and summary.get("stop_reason"):
        meta.append(f"stopped: {html.escape(str(summary['stop_reason']))}")
    body = [f"<h1>{html.escape(title)}</h1>", H.subtitle(config), "<p class='meta'>" + " · ".join(meta) + "</p>"]
    if summary or config:  # a training run's directory (the doctor's has neither)
        body.append(H.headline(summary, config, epochs))
    if config:
        body.append(H.config_table(config))
    body.append(skipped_files(run))
    if diag.get("settings"):
        settings = ", ".join(f"{k}={v}" for k, v in diag["settings"].items())
        body.append(f"<p class='meta'>doctor settings: {html.escape(settings)}</p>")

    content: list[str] = []
    verdicts = list(diag.get("verdicts") or [])
    if not any(v.get("check", "").startswith(learning_curves.CHECK) for v in verdicts) and (iters or epochs):
        verdicts.append(learning_curves.judge([*iters, *epochs], num_classes=diag.get("num_classes")).to_dict())
    if verdicts or diag.get("diagnosis"):
        content.append("<h2>Diagnosis</h2>")
        if diag.get("diagnosis"):
            content.append(H.diagnosis(diag["diagnosis"]))
        if verdicts:
            content += [H.verdict_counts(verdicts), H.verdict_table(verdicts)]

    pngs: dict[str, bytes] = {}
    test_figs, examples = _evaluation(diag, evaluation), ""
    if evaluation is not None:
        examples = E.top_losses(evaluation, run.path) + E.most_confused(evaluation)
    for heading, figs, extra in (("Training", _training(iters, epochs, diag, log_loss), ""),
                                 ("Inside the network", _inside(run, diag), ""),
                                 ("Test set" if evaluation is not None else "Evaluation", test_figs, examples)):
        if figs or extra:
            content.append(f"<h2>{heading}</h2>")
            if figs:
                content += ["<div class='grid'>", *_embed(figs, pngs), "</div>"]
            content.append(extra)
    if not content:
        content.append("<p>Nothing to show yet: no metrics.jsonl or diagnostics.json in this directory.</p>")
    return body + content, pngs

