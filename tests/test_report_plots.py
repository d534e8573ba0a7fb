"""The report's figures, one defect each: labels that never run together or overlap, whole epochs, an
honest learning-rate axis, labelled per-class bars, plain log axes; the first layer found in forward order;
matplotlib imported only when a page is drawn."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from striate.report import layer_plots as L  # noqa: E402
from striate.report import plots as P  # noqa: E402

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def boxes(fig, texts):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]


def overlapping(bbs) -> list:
    return [(a, b) for a, b in itertools.combinations(bbs, 2) if a.overlaps(b)]


def test_confusion_labels_never_run_together_and_bars_carry_their_numbers():
    cm = np.random.default_rng(0).integers(0, 50, (10, 10)) + np.diag([500] * 10)
    fig = P.plot_confusion(cm, CIFAR)
    matrix, bars = fig.axes
    labels = matrix.get_xticklabels()
    assert [t.get_text() for t in labels] == CIFAR
    # "airplaneautomobilebird" before: upright labels must not touch; slanted ones must be a line apart,
    # measured across the slant, and inside the figure
    slant = labels[0].get_rotation()
    if slant:
        x = matrix.transData.transform([(i, 0) for i in range(10)])[:, 0]
        line = labels[0].get_fontsize() * fig.dpi / 72
        assert np.diff(x).min() * np.sin(np.radians(slant)) > 1.2 * line
    else:
        assert not overlapping(boxes(fig, labels))
    w, h = fig.canvas.get_width_height()
    assert all(0 <= b.x0 and b.x1 <= w and 0 <= b.y0 and b.y1 <= h for b in boxes(fig, labels))
    assert not overlapping(boxes(fig, matrix.get_yticklabels()))
    shown = [t.get_text() for t in bars.texts]
    acc = 100 * np.diag(cm) / cm.sum(axis=1)
    assert shown == [f"{a:.1f} %" for a in acc]
    assert all(0 <= b.x0 and b.x1 <= w and 0 <= b.y0 and b.y1 <= h for b in boxes(fig, bars.texts))


def _layers(scale: float, n: int = 9):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        g = rng.normal(0, scale * (i + 1), 2000)
        counts, edges = np.histogram(g, bins=40)
        out.append({"name": str(i), "layer": "Conv2d(3→16, 3×3)", "mean": 0.0, "std": 1.0, "grad_rms": float(g.std()),
                    "hist": counts.tolist(), "edges": edges.tolist(), "grad_hist": counts.tolist(),
                    "grad_edges": edges.tolist()})
    return out


@pytest.mark.parametrize("scale", [1e-5, 3e-3, 40.0])
def test_histogram_tick_labels_never_overlap(scale):
    first, latest = _layers(scale), _layers(scale * 3)
    fig = L.plot_histograms(first, latest, "Gradients", gradients=True, steps=(1, 50))
    texts = [t for ax in fig.axes for t in ax.texts]
    ticks = [t for t in texts if t.get_fontsize() == 7]
    assert len(ticks) >= 2 * len(first)  # at least two labelled ticks per panel
    assert not overlapping(boxes(fig, texts))  # tick labels and panel titles alike
    assert all("e" not in t.get_text() or scale < 1e-3 for t in ticks)


def test_one_epoch_is_drawn_on_whole_epochs():
    fig = P.plot_accuracy([{"epoch": 1, "iteration": 20, "accuracy": 0.43, "val_accuracy": 0.75}])
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1] and ax.get_xlim() == (0.5, 1.5)  # not 0.96 … 1.04
    fig = P.plot_accuracy([{"epoch": e, "iteration": 20 * e, "accuracy": 0.5, "val_accuracy": 0.6}
                           for e in (0, 1, 2)])  # a history written before epochs were counted from 1
    assert list(fig.axes[0].get_xticks()) == [1, 2, 3]


def test_a_constant_learning_rate_is_a_flat_line_on_a_plain_axis():
    fig = P.plot_lr([{"iteration": i, "lr": 0.001} for i in range(1, 64)])
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_ylim()[0] == 0 and ax.yaxis.get_offset_text().get_text() == ""  # no 0.00096 … 0.00104 (+1e-3)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "0.0005", "0.001"]
    assert "constant 0.001" in ax.get_title()


@pytest.mark.parametrize("log", [False, True])
def test_a_diverged_loss_is_drawn(log):
    losses = [2.3, 2.0, 1.8, 40.0, float("inf"), float("nan")]
    iters = [{"iteration": i + 1, "loss": v, "lr": 0.5} for i, v in enumerate(losses)]
    fig = P.plot_loss(iters, [{"epoch": 1, "iteration": 6, "loss": float("nan"), "val_loss": float("inf")}], log=log)
    assert len(P.png_bytes(fig)) > 1000
    assert np.isfinite(fig.axes[0].get_ylim()).all()


def test_log_axes_are_labelled_by_decades_plainly():
    records = [{"iteration": i, "ratios": {"0.weight": 1e-3 * (1 + i / 10), "2.weight": 3e-2 / (1 + i)}}
               for i in range(0, 100, 10)]
    fig = P.plot_update_ratio(records)
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_visible()]
    assert len(ax.yaxis.get_minor_locator().tick_values(1e-4, 1e-1)) == 0
    assert labels and all("$" not in t for t in labels) and "0.001" in labels
    assert not overlapping(boxes(fig, ax.get_yticklabels()))


def test_first_layer_is_found_in_forward_order(tmp_path):
    from striate.report.html import _first_layer
    from striate.run import RunDir
    from striate.train.checkpoint import CheckpointStore

    weights = {"8.weight": np.zeros((64, 10), np.float32), "10.weight": np.zeros((3, 3, 32, 32), np.float32),
               "2.weight": np.ones((3, 3, 16, 32), np.float32), "0.bias": np.zeros(16, np.float32),
               "0.weight": np.full((3, 3, 1, 16), 2, np.float32)}
    run = RunDir(tmp_path)
    CheckpointStore(run.checkpoints_dir).save(weights, {})
    assert _first_layer(run)["name"] == "0.weight"


def test_importing_the_report_package_does_not_import_matplotlib():
    code = ("import sys, striate, striate.report, striate.report.html, striate.report.compare; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
