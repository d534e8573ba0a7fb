"""Hyperparameter search: the space, the narrowing rule, and whole searches on the embedded digits
(single process). Multi-process, killed-worker and PostgreSQL tests are in test_search_workers.py."""

from __future__ import annotations

import argparse
import json
import math
import re

import pytest

optuna = pytest.importorskip("optuna")

from striate.cli.search import add_arguments as add_search_arguments  # noqa: E402
from striate.cli.search import run as run_search  # noqa: E402
from striate.run.config import defaults  # noqa: E402
from striate.search import SearchError, Space, from_dict, narrow, results  # noqa: E402
from striate.search.stages import parse_narrow  # noqa: E402

DIGITS = """
[train]
data = "digits"
limit = 600
"""


def search(tmp_path, text: str, *flags: str, name: str = "s") -> tuple[int, object]:
    """Write search.toml and run `striate search` on it (in this process); returns (status, directory)."""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    out = tmp_path / name
    parser = argparse.ArgumentParser()
    add_search_arguments(parser)
    args = parser.parse_args([str(path), "--out", str(out), *flags])
    return run_search(args), out


def trials(out, stage: int = 1, name: str = "s"):
    study = optuna.load_study(study_name=f"{name}/stage{stage}", storage=f"sqlite:///{out / 'study.db'}")
    return study, study.get_trials()


# ----- the space and the narrowing rule ---------------------------------------------------------
def test_space_parses_kinds_aliases_and_checks_values():
    space = Space.from_toml({"lr": {"log_uniform": [1e-5, 1e-1]}, "reg": {"log_uniform": [1e-6, 1e-2]},
                             "batch_size": {"choice": [32, 64]}, "optimizer": {"choice": ["sgd", "adam"]},
                             "momentum": {"uniform": [0.5, 0.99]}, "model.hidden": {"int_uniform": [16, 64],
                                                                                   "log": True}})
    assert space["reg"].key == "weight_decay" and space["reg"].log
    assert space["model.hidden"].kind == "int" and space["model.hidden"].log
    assert space["lr"].grid_values(5) == pytest.approx([1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert space.grid_size(3) == 3 * 3 * 2 * 2 * 3 * 3
    config = space.apply({"lr": 0.01, "reg": 1e-4, "batch_size": 32, "optimizer": "sgd",
                          "momentum": 0.9, "model.hidden": 32}, defaults())
    assert (config["lr"], config["weight_decay"], config["batch_size"], config["optimizer"]) == (0.01, 1e-4, 32, "sgd")
    assert config["model_options"] == {"hidden": 32}


@pytest.mark.parametrize("table, quoted", [
    ({"lr": {"log_uniform": [0.0, 1.0]}}, "log scale needs low > 0"),
    ({"lr": {"log_uniform": [1e-1, 1e-3]}}, "low must be < high"),
    ({"optimizer": {"choice": ["sgd", "adamm"]}}, "'adamm'"),
    ({"learning_rate": {"uniform": [0, 1]}}, "unknown key 'learning_rate'"),
    ({"lr": {"normal": [0, 1]}}, "exactly one of"),
    ({"epochs": {"choice": [1, 2]}}, "epochs cannot be searched"),
    ({"lr": 0.1}, "expected a table"),
])
def test_space_errors_quote_the_bad_entry(table, quoted):
    with pytest.raises(SearchError, match="space") as e:
        Space.from_toml(table, where="search.toml [space]")
    assert quoted in str(e.value)


def test_search_file_errors():
    with pytest.raises(SearchError, match=r"unknown key 'trails'; did you mean 'trials'"):
        from_dict({"search": {"trails": 3}, "space": {"lr": {"log_uniform": [1e-4, 1]}}})
    with pytest.raises(SearchError, match="first stage has nothing to narrow"):
        from_dict({"search": {"stages": [{"trials": 3, "narrow": "top 10%"}]},
                   "space": {"lr": {"log_uniform": [1e-4, 1]}}})
    with pytest.raises(SearchError, match="val_fraction"):
        from_dict({"train": {"val_fraction": 0.0}, "space": {"lr": {"log_uniform": [1e-4, 1]}}})
    with pytest.raises(SearchError, match="top 20%"):
        parse_narrow("best 20")
    assert parse_narrow("top 20%") == ("fraction", 0.2) and parse_narrow("top 5") == ("count", 5)


def test_narrow_rule_keeps_the_top_trials_range_padded_and_clipped():
    space = Space.from_toml({"lr": {"log_uniform": [1e-6, 1.0]}, "momentum": {"uniform": [0.0, 1.0]},
                             "optimizer": {"choice": ["sgd", "adam", "rmsprop"]}})
    results = [({"lr": 10.0 ** -k, "momentum": 0.1 * k, "optimizer": "sgd" if k % 2 else "adam"}, v)
               for k, v in zip(range(1, 7), [0.2, 0.9, 0.8, 0.3, 0.1, 0.05], strict=True)]
    results.append(({"lr": 0.5, "momentum": 0.5, "optimizer": "rmsprop"}, None))  # failed: no value
    new = narrow(space, results, "top 2")  # lr 1e-2 (0.9), 1e-3 (0.8)
    lr, mom = new["lr"], new["momentum"]
    # log10 range [-3, -2] padded by 10% of the 6-decade width on each side
    assert math.log10(lr.low) == pytest.approx(-3.6) and math.log10(lr.high) == pytest.approx(-1.4)
    assert (mom.low, mom.high) == pytest.approx((0.1, 0.4))
    assert new["optimizer"].choices == ("sgd", "adam")
    # a fraction rounds up; a single kept trial still gives a range of 20% of the old width around it
    one = narrow(space, results, "top 10%")
    assert math.log10(one["lr"].low) == pytest.approx(-2.6) and math.log10(one["lr"].high) == pytest.approx(-1.4)
    assert one["optimizer"].choices == ("adam",)
    # clipped to the previous range
    edge = narrow(space, [({"lr": 1.0, "momentum": 0.0, "optimizer": "sgd"}, 0.5)], "top 1")
    assert edge["lr"].high == 1.0 and edge["momentum"].low == 0.0
    with pytest.raises(SearchError, match="no trial with a value"):
        narrow(space, [({"lr": 0.1}, None)], "top 1")


# ----- whole searches --------------------------------------------------------------------------
def test_coarse_to_fine_random_search_finds_lr_near_the_grid_best_and_narrows(tmp_path, capsys):
    # a small grid over lr: the reference best
    status, grid_out = search(tmp_path, DIGITS + """
[search]
sampler = "grid"
pruner = "none"
stages = [{epochs = 2}]
[space]
lr = {grid = [1e-4, 1e-3, 1e-2, 1e-1]}
""", name="grid")
    assert status == 0
    _, grid = trials(grid_out, name="grid")
    assert sorted(t.params["lr"] for t in grid) == [1e-4, 1e-3, 1e-2, 1e-1]  # each grid point exactly once
    grid_best = max((t for t in grid if t.value is not None), key=lambda t: t.value).params["lr"]

    # random search over five decades, coarse (1 epoch) then fine (2 epochs) around the top half
    status, out = search(tmp_path, DIGITS + """
[search]
seed = 1
stages = [{trials = 6, epochs = 1}, {trials = 3, epochs = 2, narrow = "top 50%"}]
[space]
lr = {log_uniform = [1e-5, 1.0]}
reg = {log_uniform = [1e-6, 1e-2]}
optimizer = {choice = ["sgd", "adam"]}
""", name="c2f")
    assert status == 0
    s1, t1 = trials(out, 1, name="c2f")
    s2, t2 = trials(out, 2, name="c2f")
    assert len(t1) == 6 and len(t2) == 3
    assert all(t.user_attrs["epochs"] == 2 for t in t2 if t.state.name == "COMPLETE")
    found = max((t for t in t2 if t.value is not None), key=lambda t: t.value).params["lr"]
    assert abs(math.log10(found / grid_best)) <= 1.0, (found, grid_best)

    # stage 2's ranges: inside stage 1's, around stage 1's best, narrower
    before, after = Space.from_description(s1.user_attrs["space"]), Space.from_description(s2.user_attrs["space"])
    best1 = max((t for t in t1 if t.value is not None), key=lambda t: t.value)
    for name in ("lr", "reg"):
        b, a = before[name], after[name]
        assert b.low <= a.low <= best1.params[name] <= a.high <= b.high
        assert math.log10(a.high / a.low) < math.log10(b.high / b.low)
    assert set(after["optimizer"].choices) <= {"sgd", "adam"}
    assert best1.params["optimizer"] in after["optimizer"].choices
    assert all(after[n].low <= t.params[n] <= after[n].high for t in t2 for n in ("lr", "reg"))

    # the table is best first with every hyperparameter; the report has the plots, embedded
    table = (out / "results.txt").read_text().splitlines()
    assert table[0].split()[:5] == ["stage", "trial", "lr", "reg", "optimizer"]
    assert table[0].split()[5:] == ["val_acc", "epochs", "time_s", "status"]
    accs = [float(c[:-1]) for line in table[1:] for c in line.split() if c.endswith("%")]
    assert accs == sorted(accs, reverse=True) and len(accs) >= 5
    page = (out / "search_report.html").read_text()
    ids = re.findall(r'<figure id="([a-z_0-9]+)"', page)
    assert {"scatter_lr", "scatter_reg", "scatter_optimizer", "history", "curves"} <= set(ids)
    optuna_plots = [f"optuna_{k}_{s}" for s in (1, 2) for k in ("optimization_history", "param_importances",
                                                                 "parallel_coordinate", "slice")]
    assert set(optuna_plots) <= set(ids)  # Optuna's own plots for each stage, embedded (or why not)
    assert page.count("data:image/png;base64,") >= 5 + 4  # ours, and at least stage 1's four
    assert "val accuracy vs lr" in page and "optimisation history" in page and "loss curves" in page
    assert "<style>" in page and ".headline{" in page and "id='best'>" in page  # the run report's style
    assert json.loads((out / "search.json").read_text())["stages"][1]["narrow"] == "top 50%"
    assert "best: stage 2" in capsys.readouterr().out


def test_exploding_trial_is_aborted_in_its_first_epoch_and_the_search_continues(tmp_path):
    status, out = search(tmp_path, DIGITS + """
[search]
sampler = "grid"
stages = [{epochs = 2}]
[space]
lr = {grid = [10.0, 1e-2]}
""")
    assert status == 0
    _, ts = trials(out)
    assert len(ts) == 2
    exploded = next(t for t in ts if t.params["lr"] == 10.0)
    good = next(t for t in ts if t.params["lr"] == 1e-2)
    assert exploded.state.name == "FAIL" and exploded.user_attrs["status"] == "diverged"
    assert exploded.user_attrs["epochs"] == 0  # never finished an epoch
    assert "diverged at epoch 1" in exploded.user_attrs["reason"]
    steps = [json.loads(line) for line in (out / "trials" / f"stage1-{exploded.number:04d}" / "metrics.jsonl")
             .read_text().splitlines()]
    assert 1 <= len(steps) < 9  # 540 training images / 64 per batch = 9 steps per epoch
    assert good.state.name == "COMPLETE" and good.value > 0.3
    assert "diverged" in (out / "results.txt").read_text().splitlines()[-1]  # failures sort last
    found = results(out)  # the same table read back in Python, best first, with notebook displays
    assert [r.status for r in found] == ["complete", "diverged"] and found.best.params == {"lr": 1e-2}
    assert f"{100 * good.value:.2f} %" in found._repr_html_() and "diverged" in repr(found)


def test_second_run_resumes_the_study_and_retrains_the_best(tmp_path, capsys):
    text = DIGITS + """
[search]
trials = 4
retrain_epochs = 2
stages = [{epochs = 1}]
[space]
lr = {log_uniform = [1e-3, 3e-2]}
"""
    status, out = search(tmp_path, text, "--max-trials", "2")
    assert status == 0
    _, first = trials(out)
    assert [t.number for t in first] == [0, 1]
    status, out = search(tmp_path, text, "--retrain-best")
    assert status == 0
    _, both = trials(out)
    assert [t.number for t in both] == [0, 1, 2, 3]
    for a, b in zip(first, both[:2], strict=True):  # the first two were kept, not rerun
        assert (a.params, a.value, a.datetime_start) == (b.params, b.value, b.datetime_start)
    assert len({t.params["lr"] for t in both}) == 4
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"stage1-{k:04d}" for k in range(4)]
    summary = json.loads((out / "best" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 2 and "test" in summary
    assert "retrained best" in capsys.readouterr().out
    # a changed space on the same study is refused rather than mixed in
    with pytest.raises(SearchError, match="different space"):
        search(tmp_path, text.replace("3e-2", "1e-1"))


def test_model_keywords_are_searched_and_trials_reload_with_the_base_model(tmp_path):
    from striate.run import RunDir

    status, out = search(tmp_path, DIGITS + """
[search]
sampler = "grid"
stages = [{epochs = 1}]
[space]
"model.hidden" = {choice = [8, 24]}
""")
    assert status == 0
    _, ts = trials(out)
    assert sorted(t.params["model.hidden"] for t in ts) == [8, 24]
    for t in ts:
        trained = RunDir(out / "trials" / f"stage1-{t.number:04d}").load_model()
        assert trained.checkpoint.state["meta"]["model"]["name"] == "digits_net"
        assert trained.checkpoint.state["meta"]["model"]["hidden"] == t.params["model.hidden"]
    sizes = {t.params["model.hidden"]:
             RunDir(out / "trials" / f"stage1-{t.number:04d}").load_model().model.num_parameters() for t in ts}
    assert sizes[24] > sizes[8]


def test_median_pruning_stops_a_trial_at_an_epoch_boundary(tmp_path):
    from striate.search.runner import run_trial

    class Trial:  # stands in for an Optuna trial whose pruner says "prune" after the first report
        number = 0

        def __init__(self):
            self.reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return True

    spec = from_dict({"train": {"data": "digits", "limit": 400}, "search": {"stages": [{"trials": 1, "epochs": 3}]},
                      "space": {"lr": {"log_uniform": [1e-3, 1e-2]}}})
    trial = Trial()
    out = run_trial(trial, {"lr": 3e-3}, spec.space, spec, 0, tmp_path / "t")
    assert out.state == "PRUNED" and out.attrs["status"] == "pruned" and out.attrs["epochs"] == 1
    assert [s for s, _ in trial.reports] == [0] and 0 < trial.reports[0][1] <= 1
    assert "pruned after epoch 1" in out.attrs["reason"]
    assert len(out.attrs["epoch_logs"]) == 1 and out.attrs["curve"]
