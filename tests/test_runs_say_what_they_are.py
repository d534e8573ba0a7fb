"""Runs that say what they are (issue 23): a fine-tuned run's config.toml reproduces it and the comparison shows
its source; eval names the weights it evaluates and evaluates the snapshot ensemble; the end of training prints
the averaged and snapshot scores; an MPI run records its ranks; `report` refuses a directory that is no run;
and the smaller messages (the search's percentages, a bad --image-size, Ctrl-C and resume, .gitignore)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest

from striate.cli import main
from striate.train.callbacks import Callback

FAST = ["--data", "digits", "--limit", "300", "--report", "off", "--diagnostics", "0"]


def _weights(run: Path) -> dict:
    from striate.run import RunDir

    return RunDir(run).store.load("last").weights


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "a"
    assert main(["train", "--epochs", "1", "--out", str(out), *FAST]) == 0
    return out


def test_a_fine_tuned_runs_own_config_toml_reproduces_it(source, tmp_path, capsys):
    first, again = tmp_path / "ft", tmp_path / "again"
    assert main(["finetune", "--from", str(source), "--freeze", "1", "--epochs", "1", "--out", str(first), *FAST]) == 0
    text = (first / "config.toml").read_text()
    assert f'from = "{source.resolve()}"' in text and "freeze = 1" in text
    assert text.startswith("# striate run configuration (striate finetune --config this-file)")
    assert main(["finetune", "--config", str(first / "config.toml"), "--out", str(again)]) == 0
    a, b = _weights(first), _weights(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # the same run: frozen the same, trained the same
    info = [json.loads((d / "finetune.json").read_text()) for d in (first, again)]
    assert info[0]["frozen_parameters"] == info[1]["frozen_parameters"] != []
    capsys.readouterr()
    # `train --config` would train from scratch: refused, naming the command that reproduces it
    assert main(["train", "--config", str(first / "config.toml"), "--out", str(tmp_path / "scratch")]) == 2
    assert "striate finetune --config" in capsys.readouterr().err
    assert main(["summary", "--config", str(first / "config.toml")]) == 0  # it still describes its model
    # the comparison names the source and the freezing, not only the epochs
    assert main(["report", str(source), str(first), "--out", str(tmp_path / "c.html")]) == 0
    differ = re.search(r"The runs differ in: ([^.]*)\.", (tmp_path / "c.html").read_text()).group(1).split(", ")
    assert "from" in differ and "freeze" in differ and not any("sha256" in k for k in differ)
    # a resume freezes what the fine-tune froze (its optimizer state covers only the others)
    assert main(["train", "--resume", str(first), "--epochs", "2"]) == 0
    resumed = _weights(first)
    assert all(np.array_equal(resumed[k], a[k]) for k in info[0]["frozen_parameters"])


def test_eval_names_its_weights_and_the_end_of_training_prints_every_test_score(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "--epochs", "2", "--snapshots", "2", "--ema-decay", "0.9", "--out", str(run), *FAST]) == 0
    out = capsys.readouterr().out
    test = json.loads((run / "summary.json").read_text())["test"]
    assert f"test accuracy {100 * test['averaged']['accuracy']:.2f}% with the averaged weights" in out
    assert (f"test accuracy {100 * test['snapshot_ensemble']['accuracy']:.2f}% with the snapshot ensemble of 2 "
            "snapshots") in out
    headers = {}
    for weights in ("trained", "averaged", "snapshots"):
        assert main(["eval", str(run), "--weights", weights]) == 0
        headers[weights] = capsys.readouterr().out.splitlines()[0]
    assert "trained weights of the best checkpoint" in headers["trained"]
    assert "averaged weights (EMA 0.9) of the best checkpoint" in headers["averaged"]
    assert "snapshot ensemble of 2 snapshots" in headers["snapshots"]
    assert main(["eval", str(run), "--weights", "snapshots", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(test["snapshot_ensemble"]["accuracy"])
    assert result["loss"] == pytest.approx(test["snapshot_ensemble"]["loss"], rel=1e-6)


def test_eval_weights_snapshots_on_a_run_without_them_is_refused(source, capsys):
    assert main(["eval", str(source), "--weights", "snapshots"]) == 2
    assert "keeps no snapshots (train with --snapshots K)" in capsys.readouterr().err


def test_report_refuses_a_directory_that_is_no_run_and_points_a_search_to_its_page(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a run directory" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "empty" / "report.html").exists()
    search = tmp_path / "search"
    search.mkdir()
    (search / "search.json").write_text("{}\n")
    assert main(["report", str(search)]) == 2
    assert "search_report.html" in capsys.readouterr().err
    (search / "search_report.html").write_text("<html></html>")
    assert main(["report", str(search)]) == 0
    assert str(search / "search_report.html") in capsys.readouterr().out
    assert not (search / "report.html").exists()


def test_a_bad_image_size_is_quoted_once(tmp_path, capsys):
    assert main(["train", "--image-size", "32", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--image-size '32': expected HxW" in err and "'32' = '32'" not in err


class _InterruptAt(Callback):
    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_batch_end(self, batch, logs):
        if logs["iteration"] == self.iteration:
            signal.raise_signal(signal.SIGINT)


def test_ctrl_c_and_the_resume_name_the_same_place(tmp_path, capsys):
    from striate.cli import build_parser, train

    run = tmp_path / "r"
    args = build_parser().parse_args(["train", "--epochs", "3", "--out", str(run), *FAST])
    assert train.run(args, callbacks=[_InterruptAt(8)]) == 130  # 5 steps an epoch: epoch 2, step 3
    stopped = capsys.readouterr()
    assert "interrupted by SIGINT at epoch 2, step 3" in stopped.out + stopped.err
    assert main(["train", "--resume", str(run)]) == 0
    assert f"resuming {run} at epoch 2, step 3" in capsys.readouterr().out


def test_searches_and_runs_are_ignored_by_git():
    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert "searches/" in ignored and "runs/" in ignored


def test_the_search_prints_percentages_and_counts_epochs(tmp_path, capsys):
    pytest.importorskip("optuna")
    import argparse

    from striate.cli.search import add_arguments, run

    spec = tmp_path / "s.toml"
    spec.write_text('[train]\ndata = "digits"\nlimit = 300\nreport = "off"\ndiagnostics = 0\n[search]\ntrials = 1\n'
                    'retrain_epochs = 1\nstages = [{epochs = 1}]\n[space]\nlr = {log_uniform = [1e-3, 3e-3]}\n')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([str(spec), "--out", str(tmp_path / "s"), "--retrain-best"])) == 0
    printed = capsys.readouterr()
    out = printed.out + printed.err
    assert "(1 epoch, " in out and "(1 epochs" not in out
    line = next(x for x in out.splitlines() if x.startswith("retrained best"))
    assert re.search(r"best val accuracy \d+\.\d\d%, test accuracy \d+\.\d\d%", line), line


# ----- MPI: as tests/test_distributed.py runs it (skipped without the mpi extra) -----------------------------
def test_a_two_rank_run_records_its_ranks(tmp_path):
    from tests.test_distributed import MPIEXEC, needs_mpi, striate  # noqa: F401

    if needs_mpi.args[0]:
        pytest.skip(needs_mpi.kwargs["reason"])
    out = tmp_path / "two"
    job = striate(2, "--epochs", "1", "--out", str(out), *FAST)
    assert job.returncode == 0, job.stderr
    assert "2 MPI ranks: each trains on 1/2 of every batch of 64 images" in job.stdout
    assert "on 2 MPI ranks" in job.stdout  # the summary's first line
    assert json.loads((out / "summary.json").read_text())["ranks"] == 2
    assert json.loads((out / "config.json").read_text())["ranks"] == 2
    assert "# trained on 2 MPI ranks" in (out / "config.toml").read_text()
    again = striate(2, "--resume", str(out), "--epochs", "2")  # config.toml still reads back as the record
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "config.json").read_text())["resume"][0]["ranks"] == 2
    one = striate(0, "--epochs", "1", "--out", str(tmp_path / "one"), *FAST)
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["ranks"] == 1
    assert "ranks" not in json.loads((tmp_path / "one" / "config.json").read_text())
    assert one.returncode == 0
