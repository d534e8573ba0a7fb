"""The run report's training figures. Each `plot_*` takes plain data (records as stored in metrics.jsonl /
diagnostics.json, arrays) and returns a Figure (see `figure.py`); `png_bytes(fig)` renders it. The curves
a run draws while it trains (`live.LiveCurves`) are the same drawings on the Axes of one figure: `draw_*`. Epochs are
drawn as whole numbers counted from 1; percentages as %. The figures of the network's inside (histograms,
filters, the initialisation experiment) are in `layer_plots.py`."""

from __future__ import annotations

import math

import numpy as np

from ..diagnose.curves import smooth
from .figure import (
    BLUE,
    COLORS,
    COLUMN,
    GREEN,
    LIGHT_BLUE,
    ORANGE,
    PURPLE,
    RED,
    WIDE,
    blank_figure,
    few_ticks,
    log_axis,
    new_figure,
    place,
    plain_axis,
    png_bytes,
    short_number,
    style,
    title,
    whole_numbers,
)
from .history import best_epoch, epoch_number
from .history import num as _num

__all__ = ["draw_accuracy", "draw_loss", "draw_update_ratio", "plot_accuracy", "plot_confusion", "plot_loss",
           "plot_lr", "plot_lr_finder", "plot_overlay", "plot_update_ratio", "png_bytes"]


def _iterations(ax, iterations) -> None:
    """An x axis of whole iterations."""
    if len(iterations):
        whole_numbers(ax.xaxis, int(min(iterations)), int(max(iterations)))


def _percent_limits(ax, values) -> None:
    """y limits for accuracies in %: a margin around the data on whole multiples of 5, within 0…100."""
    v = [x for x in values if math.isfinite(x)]
    if v:
        lo, hi = max(0.0, 5 * math.floor((min(v) - 2) / 5)), min(100.0, 5 * math.ceil((max(v) + 2) / 5))
        ax.set_ylim(lo, hi + (1.5 if hi >= 100 else 0))


def plot_loss(iterations: list[dict], epochs: list[dict] | None = None, log: bool = False, beta: float = 0.9):
    """Training loss per iteration, raw and smoothed, the validation loss at each epoch's end, and the best
    epoch's end marked (`draw_loss` on a figure of its own)."""
    fig, ax = new_figure(COLUMN, 3.4)
    draw_loss(ax, iterations, epochs, log, beta)
    return fig


def draw_loss(ax, iterations: list[dict], epochs: list[dict] | None = None, log: bool = False,
              beta: float = 0.9) -> None:
    """`plot_loss` on the Axes `ax` (the report's figure and the live curves share it)."""
    it = np.array([r["iteration"] for r in iterations])
    loss = np.array([_num(r.get("loss")) for r in iterations])
    tops = []
    if len(it):
        sm = smooth(loss, beta)
        ax.plot(it, loss, color=LIGHT_BLUE, lw=0.8, label="training loss")
        ax.plot(it, sm, color=BLUE, lw=1.8, label=f"smoothed (EMA {beta})")
        finite = loss[np.isfinite(loss)]
        if finite.size:  # a few spikes must not flatten the curve: the top is the 99th percentile
            tops += [float(np.percentile(finite, 99)), float(np.max(sm, initial=-np.inf, where=np.isfinite(sm)))]
    if epochs:
        number = epoch_number(epochs)
        val = [(e["iteration"], _num(e.get("val_loss"))) for e in epochs if e.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val, strict=True), "o-", color=ORANGE, ms=4, lw=1.2, label="validation loss")
            tops += [v for _, v in val if math.isfinite(v)]
        best = best_epoch(epochs)
        if best is not None:
            ax.axvline(best["iteration"], color=GREEN, ls="--", lw=1.2, label=f"best epoch ({number(best)})")
    tops = [t for t in tops if math.isfinite(t)]  # a diverged run's inf/NaN are not drawn
    if log:
        log_axis(ax.yaxis, loss)
    elif tops:
        ax.set_ylim(0, 1.05 * max(tops))
    _iterations(ax, it)
    style(ax, "Loss", "iteration", "loss" + (" (log scale)" if log else ""))
    ax.legend(fontsize=8, loc="upper right")


def plot_accuracy(epochs: list[dict]):
    """Train and validation accuracy (%) per epoch, on whole epochs; the best epoch marked and labelled."""
    fig, ax = new_figure(COLUMN, 3.4)
    draw_accuracy(ax, epochs)
    return fig


def draw_accuracy(ax, epochs: list[dict]) -> None:
    """`plot_accuracy` on the Axes `ax`."""
    number = epoch_number(epochs)
    ep = [number(e) for e in epochs]
    shown = []
    for key, label, color in (("accuracy", "train", BLUE), ("val_accuracy", "validation", ORANGE)):
        vals = [100 * _num(e.get(key)) for e in epochs]
        if any(math.isfinite(v) for v in vals):
            ax.plot(ep, vals, "o-", ms=4, color=color, label=label)
            shown += vals
    best = best_epoch(epochs)
    if best is not None:
        key = "val_accuracy" if best.get("val_accuracy") is not None else "accuracy"
        ax.axvline(number(best), color=GREEN, ls="--", lw=1.2, label=f"best epoch ({number(best)})")
        if best.get(key) is not None:
            ax.annotate(f"{100 * best[key]:.2f} %", (number(best), 100 * best[key]), xytext=(4, -12),
                        textcoords="offset points", fontsize=8, color=GREEN)
    if ep:
        whole_numbers(ax.xaxis, min(ep), max(ep))
    _percent_limits(ax, shown)
    style(ax, "Accuracy", "epoch", "accuracy (%)")
    ax.legend(fontsize=8, loc="lower right")


def plot_lr(iterations: list[dict]):
    """The learning rate per iteration on an axis from 0 that states the values (no offset, so a constant
    rate is a flat line and not noise around 1e-3)."""
    fig, ax = new_figure(COLUMN, 2.6)
    pts = [(r["iteration"], float(r["lr"])) for r in iterations if r.get("lr") is not None]
    heading = "Learning rate"
    if pts:
        lrs = np.array([p[1] for p in pts])
        ax.plot(*zip(*pts, strict=True), color=PURPLE, lw=1.5)
        top = float(lrs.max()) if lrs.max() > 0 else 1.0
        ax.set_ylim(0, 1.3 * top)
        if np.all(lrs == lrs[0]):
            heading += f": constant {short_number(lrs[0])}"
            ax.set_yticks([0, top / 2, top])  # the value itself is a tick
        else:
            few_ticks(ax.yaxis, 4)
    plain_axis(ax.yaxis)
    _iterations(ax, [p[0] for p in pts])
    style(ax, heading, "iteration", "learning rate")
    return fig


def plot_update_ratio(records: list[dict]):
    """‖ΔW‖/‖W‖ per weight tensor over time (log scale), with the notes' 1e-3 and the healthy band."""
    fig, ax = new_figure(COLUMN, 3.4)
    draw_update_ratio(ax, records)
    return fig


def draw_update_ratio(ax, records: list[dict]) -> None:
    """`plot_update_ratio` on the Axes `ax` (records as `UpdateRatioMonitor.records`: {"iteration", "ratios"})."""
    names = list(records[0]["ratios"]) if records else []
    it = [r["iteration"] for r in records]
    for i, n in enumerate(names):
        v = np.array([_num(r["ratios"].get(n)) for r in records])
        ax.plot(it, np.where(v > 0, v, np.nan), "o-" if len(it) <= 20 else "-", ms=3, lw=1.2,
                color=COLORS[i % len(COLORS)], label=n)
    ax.axhline(1e-3, color="k", ls="--", lw=1, label="1e-3")
    ax.axhspan(1e-4, 3e-2, color="#c8e6c9", alpha=0.35, lw=0, label="healthy 1e-4…3e-2")
    log_axis(ax.yaxis)
    _iterations(ax, it)
    style(ax, "Update-to-weight ratio per tensor", "iteration", "‖ΔW‖ / ‖W‖")
    ax.legend(fontsize=7, ncol=2 if len(names) > 4 else 1, loc="upper right")


def plot_lr_finder(result: dict, lr: float | None = None):
    """Loss against learning rate (log x) from the range test; suggestion and search range marked."""
    fig, ax = new_figure(COLUMN, 3.4)
    lrs, raw, sm = (np.asarray(result.get(k) or [], dtype=np.float64) for k in ("lrs", "losses", "smoothed"))
    raw = np.where(np.isfinite(raw), raw, np.nan)
    if len(lrs):
        ax.plot(lrs, raw, color=LIGHT_BLUE, lw=0.8, label="loss")
        ax.plot(lrs[:len(sm)], sm, color=BLUE, lw=1.8, label="smoothed")
        log_axis(ax.xaxis)
        finite = sm[np.isfinite(sm)]
        if finite.size:
            ax.set_ylim(max(0.0, finite.min() * 0.8), min(finite.max(), 4 * finite[0]) * 1.1)
    s = result.get("suggestion")
    if s:
        ax.axvline(s, color=GREEN, ls="--", label=f"suggestion {s:.2g}")
    rng = result.get("search_range")
    if rng and all(v for v in rng):
        ax.axvspan(rng[0], rng[1], color="#c8e6c9", alpha=0.4, label="coarse search range")
    if lr:
        ax.axvline(lr, color=RED, ls=":", label=f"your lr {lr:.2g}")
    style(ax, "Learning-rate range test", "learning rate (log scale)", "loss")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_confusion(matrix, classes: list[str] | None = None):
    """The confusion matrix (row: true class) with its counts, and each class's accuracy as a labelled bar.
    The figure grows with the number of classes; long names are slanted so that they never run together."""
    cm = np.asarray(matrix)
    c = cm.shape[0]
    names = [str(n) for n in (classes or range(c))]
    longest = max((len(n) for n in names), default=1)
    slant = longest > 2 and c > 1
    label_size = 9 if c <= 12 else 7 if c <= 30 else 5
    side = min(max(0.45 * c, 3.0), 7.5)  # inches of the matrix
    name_in = 0.08 + 0.075 * longest * label_size / 9  # inches a name takes at its font size
    bottom = 0.5 + (0.72 * name_in if slant else 0.15)
    left, gap, bars = 0.5 + name_in, 0.7 + name_in, 5.0
    fig = blank_figure(left + side + gap + bars + 0.3, side + bottom + 0.4)
    a1, a2 = place(fig, left, bottom, side, side), place(fig, left + side + gap, bottom, bars, side)
    a1.imshow(cm, cmap="Blues", aspect="equal")
    if c <= 20:
        thresh = cm.max() / 2 if cm.size else 0
        for i in range(c):
            for j in range(c):
                if cm[i, j] or i == j:
                    a1.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8 if c <= 12 else 6,
                            color="white" if cm[i, j] > thresh else "black")
    ticks = range(c) if c <= 40 else range(0, c, 5)
    shown = [names[i] for i in ticks]
    if slant:
        a1.set_xticks(list(ticks), shown, fontsize=label_size, rotation=45, ha="right", rotation_mode="anchor")
    else:
        a1.set_xticks(list(ticks), shown, fontsize=label_size)
    a1.set_yticks(list(ticks), shown, fontsize=label_size)
    a1.set_xlabel("predicted class", fontsize=9)
    a1.set_ylabel("true class", fontsize=9)
    title(a1, "Confusion matrix (rows: true class)")
    totals = cm.sum(axis=1)
    acc = 100 * np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)
    a2.barh(range(c), np.nan_to_num(acc), color=BLUE, height=0.7)
    if c <= 40:
        for i, a in enumerate(acc):
            text = "–" if not math.isfinite(a) else f"{a:.1f} %"
            inside = math.isfinite(a) and a > 80
            a2.text(a - 1.5 if inside else (a if math.isfinite(a) else 0) + 1.5, i, text, va="center",
                    ha="right" if inside else "left", fontsize=label_size - 1, color="white" if inside else "black")
    a2.set_yticks(list(ticks), shown, fontsize=label_size)
    a2.set_ylim(c - 0.5, -0.5)
    a2.set_xlim(0, 100)
    style(a2, "Per-class accuracy", "accuracy (%)", "", grid="x")
    return fig


def plot_overlay(runs: dict[str, tuple[list[dict], list[dict]]]):
    """Several runs on shared axes of epochs: the smoothed training loss, and the validation accuracy (%)
    (the training accuracy for a run without validation). One legend below, a colour per run."""
    fig, (a1, a2) = new_figure(WIDE, 4.4, 1, 2, left=0.8, right=0.3, bottom=0.9 + 0.25 * ((len(runs) - 1) // 3),
                               wspace=0.22)
    last = 1
    for i, (name, (iters, epochs)) in enumerate(runs.items()):
        color = COLORS[i % len(COLORS)]
        number = epoch_number(epochs)
        ends = [0] + [e["iteration"] for e in epochs]
        if iters:
            it = np.array([r["iteration"] for r in iters], dtype=np.float64)
            loss = np.array([_num(r.get("loss")) for r in iters])
            # iterations → epochs through each epoch's last iteration (runs with other batch sizes line up)
            per = (ends[-1] / len(epochs)) if epochs else max(it.max(), 1)
            x = np.interp(it, ends, range(len(ends))) if epochs else it / per
            beyond = it > ends[-1]
            x[beyond] = len(epochs) + (it[beyond] - ends[-1]) / per
            a1.plot(x, smooth(loss), color=color, lw=1.5, label=name)
        acc = [(number(e), 100 * _num(e.get("val_accuracy", e.get("accuracy")))) for e in epochs]
        if acc:
            a2.plot(*zip(*acc, strict=True), "o-", ms=4, color=color, label=name)
            last = max(last, max(a[0] for a in acc))
    style(a1, "Training loss (smoothed)", "epoch", "loss")
    style(a2, "Validation accuracy (training accuracy where there is none)", "epoch", "accuracy (%)")
    whole_numbers(a2.xaxis, 1, last)
    a1.set_xlim(0, None)
    handles, labels = a2.get_legend_handles_labels() or a1.get_legend_handles_labels()
    if not handles:
        handles, labels = a1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=9, frameon=False)
    return fig
