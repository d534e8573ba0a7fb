"""The report's figures, drawn with matplotlib's non-interactive Agg backend. Each `plot_*` takes plain
data (lists, dicts as stored in metrics.jsonl / diagnostics.json, arrays) and returns a Figure;
`png_bytes(fig)` renders it and closes it. Importing this module imports matplotlib (the rest of
striate does not)."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..diagnose.curves import smooth  # noqa: E402

_STATUS_COLORS = {"PASS": "#2e7d32", "WARN": "#ef6c00", "FAIL": "#c62828", "SKIP": "#757575"}


def png_bytes(fig, dpi: int = 90) -> bytes:
    """Render `fig` to PNG bytes (and close it). Layout by `tight_layout` rather than bbox_inches='tight',
    which would draw every figure twice."""
    buf = io.BytesIO()
    if not fig.get_tight_layout():
        try:
            fig.tight_layout()
        except (ValueError, RuntimeError):  # e.g. a table that cannot be fitted: keep the default layout
            pass
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _num(v) -> float:
    return math.nan if v is None else float(v)


def best_epoch(epochs: list[dict]) -> dict | None:
    """The epoch record with the highest val_accuracy (else the lowest val_loss, else the lowest loss)."""
    for key, sign in (("val_accuracy", -1), ("val_loss", 1), ("loss", 1)):
        vals = [(sign * _num(e.get(key)), i) for i, e in enumerate(epochs) if e.get(key) is not None]
        vals = [v for v in vals if math.isfinite(v[0])]
        if vals:
            return epochs[min(vals)[1]]
    return None


def plot_loss(iterations: list[dict], epochs: list[dict] | None = None, log: bool = False, beta: float = 0.9):
    """Training loss per iteration, raw and smoothed; the best epoch's end marked."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    it = np.array([r["iteration"] for r in iterations])
    loss = np.array([_num(r.get("loss")) for r in iterations])
    if len(it):
        ax.plot(it, loss, color="#90caf9", lw=0.8, label="loss (raw)")
        ax.plot(it, smooth(loss, beta), color="#1565c0", lw=1.8, label=f"smoothed (EMA {beta})")
    if epochs:
        val = [(e["iteration"], _num(e.get("val_loss"))) for e in epochs if e.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val, strict=True), "o-", color="#ef6c00", ms=3, lw=1.2, label="validation loss (per epoch)")
        best = best_epoch(epochs)
        if best is not None:
            ax.axvline(best["iteration"], color="#2e7d32", ls="--", lw=1.2, label=f"best epoch ({best['epoch'] + 1})")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel="loss", title="Loss per iteration")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_accuracy(epochs: list[dict]):
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ep = [e["epoch"] + 1 for e in epochs]
    for key, label, color in (("accuracy", "train", "#1565c0"), ("val_accuracy", "validation", "#ef6c00")):
        vals = [100 * _num(e.get(key)) for e in epochs]
        if any(math.isfinite(v) for v in vals):
            ax.plot(ep, vals, "o-", ms=3, color=color, label=label)
    best = best_epoch(epochs)
    if best is not None:
        ax.axvline(best["epoch"] + 1, color="#2e7d32", ls="--", lw=1.2, label="best epoch")
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Train and validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_lr(iterations: list[dict]):
    fig, ax = plt.subplots(figsize=(7, 2.8))
    pts = [(r["iteration"], r["lr"]) for r in iterations if r.get("lr") is not None]
    if pts:
        ax.plot(*zip(*pts, strict=True), color="#6a1b9a")
    ax.set(xlabel="iteration", ylabel="learning rate", title="Learning rate")
    ax.grid(alpha=0.3)
    return fig


def plot_update_ratio(records: list[dict]):
    """‖ΔW‖/‖W‖ per weight tensor over time (log scale), with the notes' 1e-3 marked."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(records[0]["ratios"]) if records else []
    it = [r["iteration"] for r in records]
    for n in names:
        v = np.array([_num(r["ratios"].get(n)) for r in records])
        ax.plot(it, np.where(v > 0, v, np.nan), lw=1, label=n)
    ax.axhline(1e-3, color="k", ls="--", lw=1, label="1e-3 (notes)")
    ax.axhspan(1e-4, 3e-2, color="#c8e6c9", alpha=0.3, lw=0)
    ax.set_yscale("log")
    ax.set(xlabel="iteration", ylabel="‖ΔW‖ / ‖W‖", title="Update-to-weight ratio per layer")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_histograms(layers: list[dict], title: str, max_layers: int = 12, gradients: bool = False):
    """One small histogram per layer (from stored counts/edges) with its mean and std; with `gradients`,
    of the gradient at each layer's output (with its RMS)."""
    hk, ek = ("grad_hist", "grad_edges") if gradients else ("hist", "edges")
    layers = [s for s in layers if s.get(hk)][:max_layers]
    n = max(len(layers), 1)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 1.9 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, s in zip(axes.flat, layers, strict=False):
        ax.set_visible(True)
        edges, counts = np.asarray(s[ek]), np.asarray(s[hk])
        ax.stairs(counts, edges, fill=True, color="#c62828" if gradients else "#1565c0")
        stat = f"rms {s['grad_rms']:.2g}" if gradients else f"μ {s['mean']:.2g} σ {s['std']:.2g}"
        ax.set_title(f"{s['name']} {s['layer'].split('(')[0]}\n{stat}", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_layer_scale(layers: list[dict], title: str = "Activation and gradient scale per layer"):
    """Per layer: activation mean/std, and the RMS of the gradient at its output (log), in forward order."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [s["name"] for s in layers]
    x = np.arange(len(layers))
    a1.plot(x, [s["mean"] for s in layers], "o-", ms=3, label="mean")
    a1.plot(x, [s["std"] for s in layers], "s-", ms=3, label="std")
    a1.set(title="activations", xlabel="layer")
    a1.legend(fontsize=7)
    g = [s.get("grad_rms") for s in layers]
    if any(v for v in g):
        a2.semilogy(x, [v if v else np.nan for v in g], "o-", ms=3, color="#c62828")
    a2.set(title="gradient RMS at the output", xlabel="layer")
    for ax in (a1, a2):
        ax.set_xticks(x, names, fontsize=6, rotation=90 if len(x) > 12 else 0)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def filter_grid(weight: np.ndarray) -> np.ndarray | None:
    """First-layer filters as one image: a conv weight (KH, KW, C, F) → tiles of F filters (RGB when C
    = 3, else channel 0), each scaled to [0, 1]; a Linear weight (D, F) with D a square → D-pixel tiles."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 2:
        side = int(round(math.sqrt(w.shape[0])))
        if side * side != w.shape[0]:
            return None
        w = w.reshape(side, side, 1, w.shape[1])
    if w.ndim != 4:
        return None
    kh, kw, c, f = w.shape
    tiles = w[:, :, :3, :] if c == 3 else w[:, :, :1, :]
    lo = tiles.min(axis=(0, 1, 2), keepdims=True)
    hi = tiles.max(axis=(0, 1, 2), keepdims=True)
    tiles = (tiles - lo) / np.where(hi > lo, hi - lo, 1)
    cols = int(math.ceil(math.sqrt(f)))
    rows = -(-f // cols)
    ch = tiles.shape[2]
    grid = np.ones(((kh + 1) * rows + 1, (kw + 1) * cols + 1, ch))
    for i in range(f):
        r, q = divmod(i, cols)
        grid[1 + r * (kh + 1):1 + r * (kh + 1) + kh, 1 + q * (kw + 1):1 + q * (kw + 1) + kw] = tiles[:, :, :, i]
    return grid if ch == 3 else grid[:, :, 0]


def plot_filters(weight: np.ndarray, name: str = "first layer"):
    grid = filter_grid(weight)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if grid is None:
        ax.text(0.5, 0.5, f"cannot draw a weight of shape {np.shape(weight)}", ha="center")
    else:
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"Filters of {name} {tuple(np.shape(weight))}", fontsize=9)
    return fig


def plot_lr_finder(result: dict, lr: float | None = None):
    """Loss against learning rate (log x) from the range test; suggestion and search range marked."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    lrs, raw, sm = (np.asarray(result.get(k) or [], dtype=np.float64) for k in ("lrs", "losses", "smoothed"))
    raw = np.where(np.isfinite(raw), raw, np.nan)
    if len(lrs):
        ax.semilogx(lrs, raw, color="#90caf9", lw=0.8, label="loss")
        ax.semilogx(lrs[:len(sm)], sm, color="#1565c0", lw=1.8, label="smoothed")
        finite = sm[np.isfinite(sm)]
        if finite.size:
            ax.set_ylim(max(0.0, finite.min() * 0.8), min(finite.max(), 4 * finite[0]) * 1.1)
    s = result.get("suggestion")
    if s:
        ax.axvline(s, color="#2e7d32", ls="--", label=f"suggestion {s:.2g}")
    rng = result.get("search_range")
    if rng and all(v for v in rng):
        ax.axvspan(rng[0], rng[1], color="#c8e6c9", alpha=0.4, label="coarse search range")
    if lr:
        ax.axvline(lr, color="#c62828", ls=":", label=f"your lr {lr:.2g}")
    ax.set(xlabel="learning rate", ylabel="loss", title="Learning-rate range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def plot_confusion(matrix, classes: list[str] | None = None):
    """Confusion matrix (row = true class) with counts, and per-class accuracy bars."""
    cm = np.asarray(matrix)
    c = cm.shape[0]
    names = [str(n) for n in (classes or range(c))]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    a1.imshow(cm, cmap="Blues")
    if c <= 20:
        thresh = cm.max() / 2 if cm.size else 0
        for i in range(c):
            for j in range(c):
                a1.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > thresh else "black")
    a1.set_xticks(range(c), names, fontsize=7, rotation=90 if c > 10 else 0)
    a1.set_yticks(range(c), names, fontsize=7)
    a1.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    totals = cm.sum(axis=1)
    acc = np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)
    a2.barh(range(c), 100 * acc, color="#1565c0")
    a2.set_yticks(range(c), names, fontsize=7)
    a2.invert_yaxis()
    a2.set(xlim=(0, 100), xlabel="accuracy (%)", title="Per-class accuracy")
    a2.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_init_case(case: dict):
    """One case of the initialisation experiment: mean/std per layer and the histograms of each layer."""
    layers = case["activations"]
    n = len(layers)
    fig = plt.figure(figsize=(min(2 + 1.5 * n, 17), 3.2))
    gs = fig.add_gridspec(1, n + 2)
    ax = fig.add_subplot(gs[0, :2])
    ax.plot(range(1, n + 1), [s["mean"] for s in layers], "o-", ms=3, label="mean")
    ax.plot(range(1, n + 1), [s["std"] for s in layers], "s-", ms=3, label="std")
    ax.set(xlabel="layer", title="mean / std per layer")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    for i, s in enumerate(layers):
        a = fig.add_subplot(gs[0, i + 2])
        edges, counts = np.asarray(s["edges"]), np.asarray(s["hist"])
        a.stairs(counts, edges, fill=True, color="#1565c0")
        a.set_title(f"layer {i + 1}\nσ {s['std']:.2g}", fontsize=7)
        a.set_yticks([])
        a.tick_params(labelsize=5)
    fig.suptitle(case["name"], fontsize=11)
    fig.tight_layout()
    return fig


def plot_overlay(runs: dict[str, tuple[list[dict], list[dict]]]):
    """Several runs' smoothed training loss (per iteration) and validation accuracy (per epoch)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (name, (iters, epochs)) in enumerate(runs.items()):
        color = plt.cm.tab10(i % 10)
        if iters:
            loss = np.array([_num(r.get("loss")) for r in iters])
            a1.plot([r["iteration"] for r in iters], smooth(loss), color=color, label=name)
        acc = [(e["epoch"] + 1, 100 * _num(e.get("val_accuracy", e.get("accuracy")))) for e in epochs]
        if acc:
            a2.plot(*zip(*acc, strict=True), "o-", ms=3, color=color, label=name)
    a1.set(xlabel="iteration", ylabel="loss (smoothed)", title="Training loss")
    a2.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy (train if none)")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_verdicts(verdicts: list[dict]):
    """The verdict table as a figure (the HTML report also has it as a real table)."""
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(verdicts) + 0.6))
    ax.set_axis_off()
    rows = [[v["status"], v["check"], v["value"][:60]] for v in verdicts]
    table = ax.table(cellText=rows or [["", "", ""]], colLabels=["status", "check", "measured"], loc="center",
                     cellLoc="left", colWidths=[0.1, 0.35, 0.55])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for i, v in enumerate(verdicts, start=1):
        table[i, 0].set_facecolor(_STATUS_COLORS.get(v["status"], "#ffffff"))
        table[i, 0].get_text().set_color("white")
    return fig
