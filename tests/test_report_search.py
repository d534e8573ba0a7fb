"""search_report.html's figures: Optuna's own (optimisation history, parameter importances, parallel
coordinates, slice) on Agg with whole trial numbers and plain log axes, drawn or explained for a study of one
trial; ours with whole trial numbers; Optuna's style kept to its own figures."""

import itertools

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from striate.search import figures as F  # noqa: E402
from striate.search.report import Row  # noqa: E402

KINDS = [k for k, _ in F.OPTUNA_PLOTS]


def study_of(n: int):
    """An in-memory study of `n` completed trials over a log-uniform lr and a choice."""
    study = optuna.create_study(direction="maximize")
    dists = {"lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
             "optimizer": optuna.distributions.CategoricalDistribution(["sgd", "adam"])}
    rng = np.random.default_rng(0)
    for i in range(n):
        lr = float(10 ** rng.uniform(-5, 0))
        study.add_trial(optuna.trial.create_trial(params={"lr": lr, "optimizer": ["sgd", "adam"][i % 2]},
                                                  distributions=dists, value=float(rng.uniform(0.1, 0.9))))
    return study


def labels(fig, ax, axis):
    fig.canvas.draw()
    ticks = (ax.get_xticklabels() if axis == "x" else ax.get_yticklabels())
    return [t for t in ticks if t.get_visible() and t.get_text()]


def whole(values) -> bool:
    return all(float(v).is_integer() for v in values)


def test_a_study_of_one_trial_is_drawn_or_explained():
    import matplotlib

    style = matplotlib.rcParams["axes.facecolor"]
    study = study_of(1)
    drawn = {}
    for kind in KINDS:
        fig, why = F.optuna_figure(study, kind)
        assert (fig is None) == bool(why)
        drawn[kind] = fig
        if fig is not None:
            assert len(F.png(fig)) > 1000
    assert drawn["param_importances"] is None and drawn["optimization_history"] is not None
    assert matplotlib.rcParams["axes.facecolor"] == style  # Optuna's ggplot style did not leak out


def test_optuna_history_has_whole_trial_numbers_and_slice_plain_log_ticks():
    for n in (1, 7):
        fig, _ = F.optuna_figure(study_of(n), "optimization_history")
        ax = fig.axes[0]
        shown = [float(t.get_text().replace("−", "-")) for t in labels(fig, ax, "x")]
        assert shown and whole(shown), shown  # not -0.045 … 0.045 for one trial, nor 2.5 for seven
        assert ax.get_xlim()[0] <= 0 - 0.5 + 1e-9 or n > 1
        F.png(fig)
    fig, _ = F.optuna_figure(study_of(7), "slice")
    log_axes = [ax for ax in fig.axes if ax.get_xscale() == "log"]
    assert log_axes
    for ax in log_axes:
        texts = labels(fig, ax, "x")
        assert texts and all("$" not in t.get_text() for t in texts)  # plain decades, no mathtext
        bbs = [t.get_window_extent() for t in texts]
        assert not any(a.overlaps(b) for a, b in itertools.combinations(bbs, 2))
    F.png(fig)


def test_our_history_has_whole_trial_numbers():
    rows = [Row(stage=1, number=i, params={"lr": 0.01}, value=0.5 + 0.01 * i, epochs=1, seconds=0.1,
                status="complete", reason=None) for i in range(3)]
    fig = F.history(rows)
    ax = fig.axes[0]
    shown = [t.get_text() for t in labels(fig, ax, "x")]
    assert shown == ["0", "1", "2"]
