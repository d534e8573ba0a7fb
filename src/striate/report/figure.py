"""Figures for the pages, drawn fast: a bare `matplotlib.figure.Figure` on the Agg canvas (no pyplot state,
nothing to close), margins fixed in inches (no `tight_layout`, which lays every text out twice), few ticks,
and a size in pixels equal to the size on the page (`DPI`), so that the browser never rescales the text.
Importing this module imports matplotlib (the rest of striate does not)."""

from __future__ import annotations

import io
import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullLocator

DPI = 100  # a 6.4-inch figure is 640 px: one column of the page at 1400 px
COLUMN, WIDE = 6.4, 13.0  # inches: half the page's width, and all of it
BLUE, LIGHT_BLUE, ORANGE, GREEN, RED, PURPLE = "#1565c0", "#90caf9", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a"
COLORS = ("#1565c0", "#ef6c00", "#2e7d32", "#c62828", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#546e7a",
          "#9e9d24")


def blank_figure(width: float, height: float):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def place(fig, x: float, y: float, w: float, h: float):
    """An Axes at (x, y) from the figure's bottom left, `w` × `h`, all in inches."""
    fw, fh = fig.get_size_inches()
    return fig.add_axes((x / fw, y / fh, w / fw, h / fh))


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, left: float = 0.8, right: float = 0.2,
               top: float = 0.4, bottom: float = 0.6, wspace: float = 0.3, hspace: float = 0.5, **kw):
    """(fig, axes): a `rows` × `cols` grid with margins in inches; axes as `Figure.subplots` returns them (one
    Axes, a row of them, or a grid). `wspace`/`hspace`: fractions of an axes' width/height (`subplots_adjust`)."""
    fig = blank_figure(width, height)
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace, hspace=hspace)
    axes = fig.subplots(rows, cols, **kw)
    return fig, axes


def png_bytes(fig) -> bytes:
    """The figure rendered to PNG bytes at `DPI`."""
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    return buf.getvalue()


def short_number(v: float, digits: int = 3) -> str:
    """A tick label without an offset or a multiplier, to `digits` significant digits: 0.001, 0.0005, 2500,
    1e-05, 1.2e+06."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    return f"{float(f'{v:.{digits}g}'):.6g}"


def plain_axis(axis, digits: int = 3) -> None:
    """Tick labels that state the value itself (no offset such as '+1e-3' that suggests variation)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: short_number(v, digits)))


def log_axis(axis, values=None, numticks: int = 7) -> None:
    """A log scale with labelled decades (and 2×, 5× where `values` span less than two decades), written
    plainly (0.001, 1e-05): no minor ticks and no mathtext, which would triple the axis's drawing time and
    crowd its labels. At most `numticks` labels (every other decade, or fewer, past that)."""
    (axis.axes.set_xscale if axis.axis_name == "x" else axis.axes.set_yscale)("log")
    v = [float(x) for x in values if x is not None and x > 0 and math.isfinite(x)] if values is not None else []
    narrow = bool(v) and max(v) / min(v) < 100
    axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if narrow else (1,), numticks=numticks))
    axis.set_minor_locator(NullLocator())
    plain_axis(axis, 2)


def few_ticks(axis, n: int = 3, integer: bool = False) -> None:
    axis.set_major_locator(MaxNLocator(nbins=n, integer=integer, min_n_ticks=2))


def whole_numbers(axis, lo: int, hi: int) -> None:
    """An axis of whole numbers `lo`…`hi` (epochs, trials): every one up to 15 of them, else whole steps,
    with half a step of room on either side."""
    if hi - lo < 15:
        axis.set_major_locator(FixedLocator(range(lo, hi + 1)))
    else:
        axis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10], integer=True))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
    lim = (lo - 0.5, hi + 0.5)
    axis.axes.set_xlim(*lim) if axis.axis_name == "x" else axis.axes.set_ylim(*lim)


def title(ax, text: str, size: float = 11) -> None:
    """A title at a fixed height: matplotlib's automatic placement measures every tick label to dodge
    labels at the top, which these figures never have, and costs a third of the drawing time."""
    ax.set_title(text, fontsize=size, y=1.0, pad=5)


def style(ax, text: str = "", xlabel: str = "", ylabel: str = "", grid: str = "both") -> None:
    """Title, axis labels, small tick labels, a light grid and no top or right frame."""
    title(ax, text)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    if grid:
        ax.grid(alpha=0.3, axis=grid)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
