"""Leftovers of issue 23: a fine-tune keeps its source's PCA / whitening (settings and fitted basis), the
training warning about skipped files words them as files, and `eval --split all` evaluates the splits a run has."""

import numpy as np

from striate.cli import main

FAST = ["--report", "off", "--diagnostics", "0", "--limit", "300", "--epochs", "1"]
VECTOR_NET = """
[model]
layers = [{ layer = "Flatten" }, { layer = "Linear", out_features = 32 }, { layer = "ReLU" }, { layer = "Linear" }]
"""


def test_finetune_from_a_pca_run_transfers_the_first_linear(tmp_path):
    from striate.run import RunDir

    path = tmp_path / "net.toml"
    path.write_text('data = "digits"\n' + VECTOR_NET)
    assert main(["train", "--config", str(path), "--preprocess", "pca", "--n-components", "20",
                 "--out", str(tmp_path / "r"), *FAST]) == 0
    assert main(["finetune", "--from", str(tmp_path / "r"), "--data", "digits", "--freeze", "1", "--out",
                 str(tmp_path / "ft"), *FAST]) == 0
    source, tuned = RunDir(tmp_path / "r").load_model(), RunDir(tmp_path / "ft").load_model()
    # frozen: the transferred first Linear is the source's (a re-initialised layer is never frozen)
    np.testing.assert_array_equal(tuned.model.state_dict()["1.weight"], source.model.state_dict()["1.weight"])
    before, after = source.preprocess.steps[-1], tuned.preprocess.steps[-1]
    assert after.n_components == 20
    np.testing.assert_array_equal(after.components_, before.components_)  # the source's basis, not a refit
    assert "n_components = 20" in (tmp_path / "ft" / "config.toml").read_text()


def test_the_training_warning_words_skipped_files_as_files(tmp_path, capsys):
    from tests.test_image_folder_runs import RUN, _folder

    data = _folder(tmp_path / "photos", [(8, 8)])
    (data / "cat" / "notes.txt").write_text("not an image")  # another format: skipped, but no unreadable image
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *RUN]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 file (unreadable, not images, or beside the class folders; e.g. cat/notes.txt)" in err
    assert "unreadable image" not in err


def test_eval_split_all_evaluates_the_splits_the_run_has(tmp_path, capsys):
    import json

    from tests.test_image_folder_runs import RUN, _folder

    data = _folder(tmp_path / "photos", [(8, 8)])  # class folders only: no test split
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *RUN]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r"), "--split", "all", "--json"]) == 0
    out = capsys.readouterr()
    results = json.loads(out.out)
    assert set(results) == {"train", "val", "all"}
    assert results["all"]["count"] == results["train"]["count"] + results["val"]["count"] == 24
    assert "has no test split: --split all leaves it out" in out.err
    assert main(["eval", str(tmp_path / "r")]) == 1  # the test split alone: refused, pointing to val
    assert "has no test split: evaluate its held-out images with --split val" in capsys.readouterr().err


def test_one_epoch_is_singular_in_the_search_and_the_report_header():
    from striate.report.header import subtitle
    from striate.search.launch import _epochs

    assert (_epochs(1), _epochs(2)) == ("1 epoch", "2 epochs")
    assert "1 epoch ·" in subtitle({"model": "m", "epochs": 1, "seed": 0})
    assert "3 epochs" in subtitle({"model": "m", "epochs": 3})


def test_finetune_keeps_the_preprocessing_a_run_file_chooses(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('data = "digits"\n' + VECTOR_NET)
    assert main(["train", "--config", str(path), "--preprocess", "pca", "--n-components", "20",
                 "--out", str(tmp_path / "r"), *FAST]) == 0
    tune = tmp_path / "tune.toml"
    tune.write_text(f'from = "{tmp_path / "r"}"\npreprocess = "whiten"\nn_components = 12\n')
    assert main(["finetune", "--config", str(tune), "--data", "digits", "--out", str(tmp_path / "ft"), *FAST]) == 0
    written = (tmp_path / "ft" / "config.toml").read_text()
    assert "preprocess = \"whiten\"" in written and "n_components = 12" in written  # the run file's, refitted
