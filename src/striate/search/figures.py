"""The search report's figures (render them with `png`): ours across every stage (val accuracy against each
hyperparameter, the history of all trials, the loss curves of the top trials), drawn like the run report's
(`report.figure`), and Optuna's own for one stage's study (optimisation history, parameter importances,
parallel coordinates, slice) through `optuna.visualization.matplotlib` on the Agg backend. Trial numbers
are whole; log axes are labelled by decades only, plainly. A figure that cannot be drawn for a study (one
trial, one parameter, nothing completed) is returned as the reason instead."""

from __future__ import annotations

import io
import math
import warnings

TOP_CURVES = 5
OPTUNA_PLOTS = (("optimization_history", "optimisation history"), ("param_importances", "parameter importances"),
                ("parallel_coordinate", "parallel coordinates"), ("slice", "slice: val accuracy against each "
                                                                           "hyperparameter"))


def png(fig) -> bytes:
    """A figure as PNG bytes: ours as laid out; Optuna's (pyplot figures) cropped to their contents and
    closed."""
    from ..report.figure import DPI, png_bytes

    if getattr(fig.canvas, "manager", None) is None:  # not pyplot's
        return png_bytes(fig)
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def scatter(rows, space, name: str):
    """Val accuracy (%) against hyperparameter `name`, one colour per stage; failed or pruned trials at 0."""
    from ..report.figure import COLORS, RED, log_axis, new_figure, style

    dim = space[name]
    fig, ax = new_figure(6.4, 3.4)
    stages = sorted({r.stage for r in rows})
    values = []
    for i, s in enumerate(stages):
        done = [r for r in rows if r.stage == s and r.value is not None and name in r.params]
        failed = [r for r in rows if r.stage == s and r.value is None and name in r.params]
        xs = [r.params[name] if dim.numeric else str(r.params[name]) for r in done]
        ax.scatter(xs, [100 * r.value for r in done], s=20, color=COLORS[i % len(COLORS)], label=f"stage {s}",
                   alpha=0.85)
        values += xs
        if failed:
            fx = [r.params[name] if dim.numeric else str(r.params[name]) for r in failed]
            ax.scatter(fx, [0.0] * len(fx), marker="x", s=20, color=RED, label="failed / pruned" if s == stages[0]
                       else None)
            values += fx
    if dim.numeric and dim.log:
        log_axis(ax.xaxis, values)
    elif not dim.numeric:
        ax.margins(x=0.25)  # the categories away from the frame
    style(ax, f"val accuracy vs {name}", name + (" (log scale)" if dim.log else ""), "val accuracy (%)")
    ax.legend(fontsize=7)
    return fig


def history(rows):
    """Every trial's val accuracy (%) in order (the stages one after the other), and the best so far."""
    from ..report.figure import COLORS, new_figure, style, whole_numbers

    fig, ax = new_figure(6.4, 3.4)
    offset, best, xs_best, ys_best = 0, -math.inf, [], []
    for i, s in enumerate(sorted({r.stage for r in rows})):
        srows = sorted((r for r in rows if r.stage == s), key=lambda r: r.number)
        done = [r for r in srows if r.value is not None]
        ax.scatter([offset + r.number for r in done], [100 * r.value for r in done], s=16,
                   color=COLORS[i % len(COLORS)], label=f"stage {s}")
        for r in srows:
            best = max(best, r.value) if r.value is not None else best
            if best > -math.inf:
                xs_best.append(offset + r.number)
                ys_best.append(100 * best)
        offset += len(srows)
    ax.step(xs_best, ys_best, where="post", color="black", lw=1, label="best so far")
    whole_numbers(ax.xaxis, 0, max(offset - 1, 0))
    style(ax, "optimisation history (all stages)", "trial (stages in order)", "val accuracy (%)")
    ax.legend(fontsize=7)
    return fig


def curves(rows, ranked):
    """The training loss of the top trials (log scale)."""
    from ..report.figure import COLORS, log_axis, new_figure, style

    fig, ax = new_figure(6.4, 3.4)
    values = []
    for i, r in enumerate([r for r in ranked if r.value is not None][:TOP_CURVES]):
        if r.curve:
            xs, ys = zip(*r.curve, strict=True)
            ax.plot(xs, ys, lw=1.2, color=COLORS[i % len(COLORS)],
                    label=f"stage {r.stage} trial {r.number} ({100 * r.value:.1f} %)")
            values += list(ys)
    log_axis(ax.yaxis, values)
    style(ax, f"loss curves of the top {TOP_CURVES} trials", "iteration", "training loss (log scale)")
    if ax.lines:
        ax.legend(fontsize=7)
    return fig


def _whole(axis, colorbar: bool) -> None:
    """Whole trial numbers on `axis`: a plot's axis spans at least one trial either side of its points (a
    single trial at 0 is not drawn on -0.045…0.045); a colour bar keeps its range."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    lo, hi = sorted(axis.get_view_interval())
    if not colorbar and math.floor(hi) - math.ceil(lo) < 1:
        lo, hi = math.floor(lo + 0.5) - 0.5, math.ceil(hi - 0.5) + 0.5
        (axis.axes.set_xlim if axis.axis_name == "x" else axis.axes.set_ylim)(lo, hi)
    ticks = range(math.ceil(lo), math.floor(hi) + 1)
    axis.set_major_locator(FixedLocator(ticks) if len(ticks) <= 12 else MaxNLocator(integer=True))


def _tidy(fig, kind: str) -> None:
    """Optuna's axes made like ours: whole trial numbers, plain decade labels on log axes, % for accuracy."""
    from matplotlib.ticker import PercentFormatter

    from ..report.figure import log_axis

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            scale = ax.get_xscale() if axis is ax.xaxis else ax.get_yscale()
            label = axis.get_label().get_text()
            if scale == "log":  # a label per 0.7 inch at most: Optuna's slice panels are narrow
                box = ax.get_position()
                inches = box.width * fig.get_figwidth() if axis is ax.xaxis else box.height * fig.get_figheight()
                log_axis(axis, numticks=max(2, int(inches / 0.7)))
            elif label.lower().startswith(("trial", "#trials")):
                _whole(axis, colorbar=getattr(ax, "_colorbar", None) is not None)
            elif label == "val accuracy" or (kind == "parallel_coordinate" and axis is fig.axes[0].yaxis):
                axis.set_major_formatter(PercentFormatter(1.0, decimals=0))


def optuna_figure(study, kind: str):
    """(figure, '') of Optuna's plot `kind` for `study` (a pyplot figure: render it with `png`), or (None,
    why it cannot be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    names = sorted({p for t in complete for p in t.params})
    if not complete:
        return None, "no trial of this stage completed"
    if kind == "param_importances" and (len(complete) < 2 or not names):
        return None, "needs at least two completed trials with a hyperparameter"
    if kind == "parallel_coordinate" and not names:
        return None, "needs a hyperparameter"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        # rc_context: Optuna switches pyplot to its ggplot style; that must not outlive its figures
        with warnings.catch_warnings(), matplotlib.rc_context({"figure.figsize": (6.4, 3.8), "font.size": 9}):
            warnings.simplefilter("ignore")  # ExperimentalWarning: the matplotlib backend is "experimental"
            ax = getattr(ovm, f"plot_{kind}")(study, target_name="val accuracy")
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            _tidy(fig, kind)
        return fig, ""
    except (ValueError, RuntimeError, ZeroDivisionError, IndexError, KeyError) as e:
        plt.close("all")
        return None, f"Optuna could not draw it: {e}"
    finally:
        optuna.logging.set_verbosity(verbosity)
