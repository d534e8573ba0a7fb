"""The run report's figures of the network's inside: per-layer histograms of the outputs and of the
gradients (the first snapshot and the latest on the same axes), per-layer scale, the first layer's filters,
and one case of the initialisation experiment. Records as stored in diagnostics.json."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.ticker import MaxNLocator

from .figure import (
    BLUE,
    COLUMN,
    LIGHT_BLUE,
    ORANGE,
    RED,
    WIDE,
    blank_figure,
    log_axis,
    new_figure,
    place,
    short_number,
    style,
    title,
)

__all__ = ["filter_grid", "plot_filters", "plot_histograms", "plot_init_case", "plot_layer_scale"]


def _layer_name(s: dict) -> str:
    return f"{s['name']} {s['layer'].split('(')[0]}"


def _pairs(first: list[dict], latest: list[dict] | None) -> list[tuple[dict, dict | None]]:
    """Each layer of the first snapshot with the same layer (by name) of the latest one."""
    by_name = {s["name"]: s for s in latest or []}
    return [(s, by_name.get(s["name"])) for s in first]


PANEL_W, GAP_X, PANEL_H, GAP_Y = 1.0, 0.22, 1.0, 0.7  # one panel, and the room between panels (titles, ticks)


def _small_multiples(ax, panels: list, cols: int) -> None:
    """Histograms as a grid of panels, `cols` wide, drawn in the one Axes `ax` (an Axes per panel would cost
    most of the page's drawing time): each panel on its own x range with three labelled ticks, each histogram
    scaled to the panel's height. In y, a panel is one inch. panels: [(title, [(counts, edges, stairs
    keywords), ...])]."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    segs, rows = [], max(1, -(-len(panels) // cols))
    for i, (heading, hists) in enumerate(panels):
        r, c = divmod(i, cols)
        x0, y0 = c * (PANEL_W + GAP_X), -r * (PANEL_H + GAP_Y)
        lo = min(float(e[0]) for _, e, _ in hists)
        hi = max(float(e[-1]) for _, e, _ in hists)
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        scale = PANEL_W / (hi - lo)
        for counts, edges, kw in hists:
            top = counts.max() if counts.size and counts.max() > 0 else 1.0
            ax.stairs(y0 + 0.92 * PANEL_H * counts / top, x0 + (edges - lo) * scale, baseline=y0, **kw)
        segs.append([(x0, y0), (x0 + PANEL_W, y0)])
        for v in MaxNLocator(nbins=3, min_n_ticks=2).tick_values(lo, hi):
            if lo - 1e-9 * (hi - lo) <= v <= hi + 1e-9 * (hi - lo):
                x = x0 + (v - lo) * scale
                segs.append([(x, y0), (x, y0 - 0.05)])
                ax.text(x, y0 - 0.08, short_number(0.0 if abs(v) < 1e-12 * (hi - lo) else v, 2), ha="center",
                        va="top", fontsize=7)
        ax.text(x0 + PANEL_W / 2, y0 + PANEL_H + 0.04, heading, ha="center", va="bottom", fontsize=8)
    ax.add_collection(LineCollection(segs, colors="#555555", linewidths=0.8))
    ax.set_xlim(-0.04, cols * (PANEL_W + GAP_X) - GAP_X + 0.04)
    ax.set_ylim(-(rows - 1) * (PANEL_H + GAP_Y) - 0.3, PANEL_H + 0.4)
    ax.set_axis_off()


def _hist(s: dict, hk: str, ek: str):
    return np.asarray(s[hk], dtype=np.float64), np.asarray(s[ek], dtype=np.float64)


def plot_histograms(first: list[dict], latest: list[dict] | None = None, heading: str = "", *, gradients: bool = False,
                    steps: tuple[int, int | None] = (0, None), max_layers: int = 12):
    """One panel per layer: the histogram of its output (or, with `gradients`, of dL/d(output)) at the first
    snapshot, and the latest snapshot's over it; each panel's title gives the std (or RMS) at both."""
    hk, ek = ("grad_hist", "grad_edges") if gradients else ("hist", "edges")
    pairs = [(a, b if b is not None and b.get(hk) else None) for a, b in _pairs(first, latest) if a.get(hk)]
    pairs = pairs[:max_layers]
    early, late = (LIGHT_BLUE, BLUE) if not gradients else ("#ef9a9a", RED)
    stat = (lambda s: f"{s['grad_rms']:.2g}") if gradients else (lambda s: f"{s['std']:.2g}")
    panels = []
    for a, b in pairs:
        label = ("rms " if gradients else "σ ") + stat(a)
        if b is None:
            hists = [(*_hist(a, hk, ek), {"fill": True, "color": late})]
        else:
            hists = [(*_hist(b, hk, ek), {"fill": True, "color": late, "alpha": 0.8}),
                     (*_hist(a, hk, ek), {"fill": False, "color": early, "lw": 1.4})]
            label += " → " + stat(b)
        panels.append((f"{_layer_name(a)}\n{label}", hists))
    cols = 6
    rows = max(1, -(-len(panels) // cols))
    fig = blank_figure(WIDE, (rows - 1) * (PANEL_H + GAP_Y) + PANEL_H + 0.7 + 0.45)
    ax = place(fig, 0.2, 0.05, WIDE - 0.4, (rows - 1) * (PANEL_H + GAP_Y) + PANEL_H + 0.7)
    _small_multiples(ax, panels, cols)
    first_step, last_step = steps
    if last_step is not None and last_step != first_step:
        heading += f"  (outline: step {first_step}; filled: step {last_step})"
    fig.suptitle(heading, fontsize=11, y=1 - 0.08 / fig.get_size_inches()[1])
    return fig


def plot_layer_scale(first: list[dict], latest: list[dict] | None = None, steps: tuple[int, int | None] = (0, None)):
    """Per layer, in forward order: the std of its output and the RMS of the gradient at its output (log),
    at the first snapshot and at the latest."""
    fig, (a1, a2) = new_figure(WIDE, 3.1, 1, 2, left=0.8, right=0.3, bottom=0.9, wspace=0.2)
    names = [_layer_name(s) for s in first]
    x = np.arange(len(first))
    snaps = [(first, steps[0], LIGHT_BLUE if latest else BLUE, "s--" if latest else "o-")]
    if latest:
        snaps.append((latest, steps[1], BLUE, "o-"))
    for layers, step, color, fmt in snaps:
        by_name = {s["name"]: s for s in layers}
        rows = [by_name.get(s["name"], {}) for s in first]
        a1.plot(x, [_nan(r.get("std")) for r in rows], fmt, ms=4, color=color, label=f"step {step}")
        g = [_nan(r.get("grad_rms")) for r in rows]
        if any(math.isfinite(v) and v > 0 for v in g):
            a2.plot(x, [v if v > 0 else np.nan for v in g], fmt, ms=4, color=RED if color == BLUE else "#ef9a9a",
                    label=f"step {step}")
    style(a1, "Output std per layer", "", "std")
    if a2.lines:
        log_axis(a2.yaxis, [y for line in a2.lines for y in line.get_ydata()])
    style(a2, "Gradient RMS at each layer's output", "", "RMS (log scale)")
    for ax in (a1, a2):
        ax.set_xticks(x, names, fontsize=7, rotation=35 if len(x) > 4 else 0, ha="right" if len(x) > 4 else "center",
                      rotation_mode="anchor")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def _nan(v) -> float:
    return math.nan if v is None else float(v)


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
    fig, ax = new_figure(COLUMN, 3.6, left=0.2, right=0.2, top=0.45, bottom=0.15)
    if grid is None:
        ax.text(0.5, 0.5, f"cannot draw a weight of shape {np.shape(weight)}", ha="center")
    else:
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
    ax.set_axis_off()
    title(ax, f"Filters of {name} {tuple(np.shape(weight))}")
    return fig


def plot_init_case(case: dict):
    """One case of the initialisation experiment: mean/std per layer and the histograms of each layer."""
    layers = case["activations"]
    n = len(layers)
    cols = max(n, 4)
    fig = blank_figure(WIDE, 2.8)
    ax = place(fig, 0.55, 0.5, 2.4, 1.7)
    ax.plot(range(1, n + 1), [s["mean"] for s in layers], "o-", ms=3, color=BLUE, label="mean")
    ax.plot(range(1, n + 1), [s["std"] for s in layers], "s-", ms=3, color=ORANGE, label="std")
    style(ax, "mean / std per layer", "layer", "")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    panels = [(f"layer {i + 1}\nσ {s['std']:.2g}", [(*_hist(s, "hist", "edges"), {"fill": True, "color": BLUE})])
              for i, s in enumerate(layers)]
    _small_multiples(place(fig, 3.35, 0.1, WIDE - 3.55, 2.1), panels, cols)
    fig.suptitle(case["name"], fontsize=11)
    return fig
