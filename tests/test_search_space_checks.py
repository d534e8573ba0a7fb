"""The search's checks before any trial runs: `model.<keyword>` dimensions against the builder's keywords
(and their types), a study storage that is corrupt, truncated or another program's database; and the exit
status of a search in which no trial completed."""

from __future__ import annotations

import argparse
import hashlib
import sqlite3

import pytest

optuna = pytest.importorskip("optuna")

from striate.cli import main  # noqa: E402
from striate.cli.search import add_arguments as add_search_arguments  # noqa: E402
from striate.cli.search import run as run_search  # noqa: E402
from striate.search import SearchError, from_dict  # noqa: E402

LAYERS = [{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"layer": "LeakyReLU"},
          {"layer": "Flatten"}, {"layer": "Linear"}]


def spec(space: dict, train: dict | None = None, model: dict | None = None):
    doc = {"train": {"data": "digits", **(train or {})}, "space": space}
    if model is not None:
        doc["model"] = model
    return from_dict(doc, where="search.toml")


@pytest.mark.parametrize("space, train, model, quoted", [
    # the default model of the data (digits_net on digits)
    ({"model.foo": {"choice": [1, 2]}}, None, None, "model 'digits_net' takes no keyword 'foo'; its keywords: "
                                                    "channels, width, hidden"),
    ({"dropout": {"uniform": [0.1, 0.5]}}, None, None, "model 'digits_net' takes no keyword 'dropout'"),
    # the model named in [train], and every model a `model` dimension may sample
    ({"model.channels": {"int_uniform": [4, 8]}}, {"model": "three_layer"}, None,
     "model 'three_layer' takes no keyword 'channels'"),
    ({"model": {"choice": ["three_layer", "reference"]}, "model.num_filters": {"choice": [8, 16]}}, None, None,
     "model 'reference' takes no keyword 'num_filters'"),
    # keywords striate sets itself are not the builder's to search
    ({"model.num_classes": {"choice": [3, 4]}}, None, None, "takes no keyword 'num_classes'"),
    ({"model.rng": {"choice": [1]}}, None, None, "takes no keyword 'rng'"),
    # a value of the wrong type for the keyword
    ({"model.hidden": {"choice": ["x", "y"]}}, None, None, "keyword 'hidden' takes an integer"),
    ({"model.hidden": {"uniform": [16, 64]}}, None, None, "keyword 'hidden' takes an integer"),
    ({"model.width": {"choice": ["wide"]}}, None, None, "keyword 'width' takes a number"),
    ({"model.activation": {"choice": [1, 2]}}, {"model": "lenet5"}, None, "keyword 'activation' takes a string"),
    # a layer list: the builder's only keyword is the list itself; a layer's keywords are its class's
    ({"model.foo": {"choice": [1, 2]}}, None, {"layers": LAYERS}, "a layer-list model takes no keyword 'foo'"),
    ({"model.layers.1.foo": {"uniform": [0.1, 0.2]}}, None, {"layers": LAYERS},
     "layer 1 (LeakyReLU) takes no keyword 'foo'; its keywords: negative_slope"),
    ({"model.layers.1.layer": {"choice": ["ReLU", "Relu6"]}}, None, {"layers": LAYERS}, "unknown layer 'Relu6'"),
    ({"model.layers.9.negative_slope": {"uniform": [0.1, 0.2]}}, None, {"layers": LAYERS}, "index below 4"),
])
def test_a_model_keyword_no_trial_could_use_is_refused_naming_it(space, train, model, quoted):
    with pytest.raises(SearchError) as e:
        spec(space, train, model)
    assert quoted in str(e.value)
    assert f"search.toml [space] {list(space)[-1]}" in str(e.value)  # names the dimension


@pytest.mark.parametrize("space, train, model", [
    ({"model.hidden": {"int_uniform": [16, 64], "log": True}}, None, None),
    ({"model.width": {"uniform": [0.5, 2.0]}, "model.channels": {"choice": [4, 8]}}, None, None),
    ({"dropout": {"uniform": [0.1, 0.5]}}, {"model": "reference"}, None),
    ({"model": {"choice": ["three_layer", "reference"]}, "model.hidden": {"choice": [32, 64]}}, None, None),
    ({"model.lrn": {"choice": [True, False]}}, {"model": "alexnet_cifar"}, None),
    ({"model.layers.1.negative_slope": {"uniform": [0.01, 0.3]}}, None, {"layers": LAYERS}),
    # a keyword of one of the classes the layer may be sampled as
    ({"model.layers.1.layer": {"choice": ["ReLU", "ELU", "LeakyReLU"]},
      "model.layers.1.negative_slope": {"uniform": [0.01, 0.3]}}, None, {"layers": LAYERS}),
])
def test_valid_model_keywords_pass(space, train, model):
    assert spec(space, train, model).space.names == list(space)


# ----- whole searches --------------------------------------------------------------------------
DIGITS = """
[train]
data = "digits"
limit = 300
[search]
trials = 2
stages = [{epochs = 1}]
[space]
"""


def cli_search(tmp_path, space: str, *flags: str) -> int:
    path = tmp_path / "s.toml"
    path.write_text(DIGITS + space)
    return main(["search", str(path), "--out", str(tmp_path / "s"), *flags])


def test_a_bad_model_keyword_exits_2_before_any_trial(tmp_path, capsys):
    assert cli_search(tmp_path, '"model.foo" = {choice = [1, 2]}\n') == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("striate search: error:") and "'foo'" in err[0]
    assert "hidden" in err[0]  # the valid keywords are listed
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("space, status, said", [
    # a value the space check cannot see (the builder refuses it): every trial fails on a configuration error
    ('"model.hidden" = {choice = [-5, 0]}\n', 2, "every trial failed on a configuration error"),
    # every trial diverges: the search could not complete
    ("lr = {choice = [1e6, 1e7]}\n", 1, "no trial completed"),
])
def test_a_search_with_no_completed_trial_exits_non_zero(tmp_path, capsys, space, status, said):
    path = tmp_path / "s.toml"
    path.write_text(DIGITS + space)
    parser = argparse.ArgumentParser()
    add_search_arguments(parser)
    assert run_search(parser.parse_args([str(path), "--out", str(tmp_path / "s")])) == status
    err = capsys.readouterr().err
    assert f"striate search: error: {said}" in err
    assert (tmp_path / "s" / "results.txt").exists()  # the table of trials is still written


# ----- the study's storage ---------------------------------------------------------------------
def _garbage(db):
    db.write_bytes(bytes(range(256)) * 80)


def _truncated(db):
    _optuna_study(db)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _header_only(db):
    _optuna_study(db)
    db.write_bytes(db.read_bytes()[:100])


def _overwritten_pages(db):
    _optuna_study(db)
    data = bytearray(db.read_bytes())
    data[4096:] = bytes((i * 37) % 251 for i in range(len(data) - 4096))
    db.write_bytes(bytes(data))


def _text_file(db):
    db.write_text("these are my notes, not a database\n" * 20)


def _optuna_study(db):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="other", storage=f"sqlite:///{db}")
    for v in range(20):
        study.add_trial(optuna.trial.create_trial(params={"x": float(v)}, value=float(v),
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 99)}))


def _foreign(db):
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE notes (body TEXT)")
        c.execute("INSERT INTO notes VALUES ('mine')")


@pytest.mark.parametrize("damage, status, said", [
    (_garbage, 1, "not a readable SQLite study database"),
    (_text_file, 1, "not a readable SQLite study database"),
    (_truncated, 1, "study.db"),
    (_header_only, 1, "study.db"),
    (_overwritten_pages, 1, "study.db"),
    (_foreign, 2, "an SQLite database of another program"),
])
def test_a_corrupt_or_foreign_study_database_is_refused_and_left_untouched(tmp_path, capsys, damage, status, said):
    out = tmp_path / "s"
    out.mkdir()
    db = out / "study.db"
    damage(db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert cli_search(tmp_path, "lr = {choice = [0.01, 0.02]}\n") == status
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("striate search: error:"), err
    assert said in err[0] and str(db) in err[0] and "internal error" not in err[0]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in out.iterdir()) == ["study.db"]  # nothing written next to it either


def test_an_empty_file_is_a_new_study(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "study.db").touch()
    assert cli_search(tmp_path, "lr = {choice = [0.01, 0.02]}\n", "--max-trials", "1") == 0


def test_the_help_documents_the_search_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "no trial completed has no best configuration: status 1" in text
    assert "every trial failed on a configuration error" in text


def test_a_broken_layer_list_in_train_is_refused_naming_train():
    with pytest.raises(SearchError) as e:
        spec({"model.layers.1.negative_slope": {"uniform": [0.1, 0.2]}}, None, {"layers": [LAYERS[0], 3, *LAYERS[2:]]})
    assert "search.toml [train]: model.layers[1]: expected a table" in str(e.value)
