"""Where a run writes and where its data is: `--out` never overwrites a user's files (a directory that is
not empty and holds no striate run is refused before anything is written, through a symlink too), and a run
outlives its data (predict and finetune need none of it, eval and resume take --data to its new place, and
a run moved together with its data finds it by the path recorded relative to the run directory)."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from striate.cli import main

TINY = ["--epochs", "1", "--report", "off", "--diagnostics", "0", "--model", "three_layer"]
DIGITS = ["--epochs", "1", "--limit", "64", "--report", "off", "--diagnostics", "0"]


def _snapshot(root, lock=True):
    """Every path under `root` (not following links) → its bytes (None for a directory); `lock=False` leaves
    out a run's .lock, which every command rewrites with its holder."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            if f == ".lock" and not lock:
                continue
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def _user_project(root):
    """A person's own directory whose file names striate also writes."""
    (root / "plots").mkdir(parents=True)
    (root / "config.toml").write_text('title = "my project"\n')
    (root / "report.html").write_text("<html>my report</html>\n")
    (root / "summary.json").write_text('{"mine": true}\n')
    (root / "metrics.jsonl").write_text('{"step": 1}\n')
    (root / "config.json").write_text('{"a": 1}\n')
    (root / "plots" / "loss.png").write_bytes(b"\x89PNG my plot")
    return root


def _error(capsys) -> str:
    """The command's one error line (progress notes aside)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("striate ")]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("source") / "run"
    assert main(["train", "--out", str(out), *DIGITS]) == 0
    return out


COMMANDS = {
    "train": lambda out, src: ["train", "--out", out, *DIGITS],
    "finetune": lambda out, src: ["finetune", "--from", str(src), "--out", out, *DIGITS],
    "doctor": lambda out, src: ["doctor", "--out", out, "--limit", "64", "--iterations", "5"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("how", ["directory", "symlink", "symlink-to-symlink", "one-file"])
def test_out_never_overwrites_a_users_directory(tmp_path, capsys, source_run, command, how):
    project = _user_project(tmp_path / "proj")
    if how == "one-file":
        shutil.rmtree(project)
        project.mkdir()
        (project / "notes.txt").write_text("mine\n")
    before = _snapshot(project)
    out = project
    if how.startswith("symlink"):
        out = tmp_path / "link"
        out.symlink_to(project, target_is_directory=True)
        if how == "symlink-to-symlink":
            (tmp_path / "link2").symlink_to(out, target_is_directory=True)
            out = tmp_path / "link2"
    capsys.readouterr()
    assert main(COMMANDS[command](str(out), source_run)) == 2
    line = _error(capsys)
    assert str(out) in line and "new or an empty directory" in line and "internal error" not in line
    assert _snapshot(project) == before  # every file byte-identical, nothing added (not even .lock)


SEARCH = """
[train]
data = "digits"
limit = 64
report = "off"
[search]
trials = 1
stages = [{epochs = 1}]
[space]
lr = {log_uniform = [1e-3, 1e-2]}
"""


@pytest.mark.parametrize("how", ["directory", "symlink", "in-the-file"])
def test_search_out_never_overwrites_a_users_directory(tmp_path, capsys, how):
    pytest.importorskip("optuna")
    project = _user_project(tmp_path / "proj")
    before = _snapshot(project)
    out = project
    if how == "symlink":
        out = tmp_path / "link"
        out.symlink_to(project, target_is_directory=True)
    spec, flags = tmp_path / "search.toml", ["--out", str(out)]
    spec.write_text(SEARCH)
    if how == "in-the-file":
        spec.write_text(SEARCH.replace("[search]\n", f"[search]\nout = {json.dumps(str(out))}\n"))
        flags = []
    capsys.readouterr()
    assert main(["search", str(spec), *flags]) == 2
    line = _error(capsys)
    assert str(out) in line and "new or an empty directory" in line
    assert _snapshot(project) == before


def test_out_refuses_a_file(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("mine\n")
    assert main(["train", "--out", str(f), *DIGITS]) == 2
    assert "not a directory" in _error(capsys)
    assert f.read_text() == "mine\n"


@pytest.mark.parametrize("how", ["new", "nested-new", "empty", "symlink-to-empty", "dangling-symlink"])
def test_out_takes_a_new_path_or_an_empty_directory(tmp_path, how):
    target = tmp_path / "target"
    out = {"new": target, "nested-new": target / "a" / "b"}.get(how, tmp_path / "link")
    if how in ("empty", "symlink-to-empty"):
        target.mkdir()
        if how == "empty":
            out = target
    if how.endswith("symlink") or how.startswith("symlink"):
        out.symlink_to(target, target_is_directory=True)
    assert main(["train", "--out", str(out), *DIGITS]) == 0
    run = target / "a" / "b" if how == "nested-new" else target
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_out_holding_a_run_says_resume(tmp_path, capsys, source_run):
    run = tmp_path / "run"
    shutil.copytree(source_run, run)
    before = _snapshot(run, lock=False)
    capsys.readouterr()
    assert main(["train", "--out", str(run), *DIGITS]) == 2
    line = _error(capsys)
    assert "already holds a run" in line and f"--resume {run}" in line
    assert main(["doctor", "--out", str(run), "--limit", "64", "--iterations", "5"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _snapshot(run, lock=False) == before


def test_out_of_a_run_that_never_reached_a_checkpoint_starts_again(tmp_path, capsys):
    """A failed start leaves striate's own files (its lock first): the next try may use the directory."""
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *DIGITS, "--model", "no_such_model"]) == 2
    assert main(["train", "--out", str(out), *DIGITS, "--patience", "2", "--val-fraction", "0"]) == 2
    assert main(["train", "--out", str(out), *DIGITS]) == 0


def test_doctor_out_may_be_written_again(tmp_path, monkeypatch):
    import importlib

    execute = importlib.import_module("striate.run.execute")  # the module (striate.run.execute is its function)
    monkeypatch.setattr(execute, "draw_report", lambda *a, **k: None)  # the report is not the point here
    for _ in range(2):
        assert main(["doctor", "--out", str(tmp_path / "doc"), "--limit", "64", "--iterations", "5"]) in (0, 1)
    assert (tmp_path / "doc" / "diagnostics.json").is_file()


# ----- a run outlives its data -----------------------------------------------------------------------------
def _image_folder(root, classes=("cat", "dog"), n=12, seed=0):
    """root/<class>/<i>.png, 8×8 RGB, each class its own brightness."""
    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(40 + 150 * k + rng.normal(0, 15, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def trained_on_folder(tmp_path_factory):
    """base/run trained on base/imgs given relatively from base (the cwd then); the folder is then moved
    to base/stash/imgs, so the recorded place is gone."""
    base = tmp_path_factory.mktemp("folder_run")
    _image_folder(base / "imgs")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["train", "--data", "imgs", "--out", "run", *TINY]) == 0
    finally:
        os.chdir(cwd)
    (base / "stash").mkdir()
    (base / "imgs").rename(base / "stash" / "imgs")
    return base


@pytest.fixture
def moved(trained_on_folder, tmp_path, monkeypatch):
    """The run in tmp/run, its data somewhere else (tmp/elsewhere/imgs2), the cwd a third place."""
    shutil.copytree(trained_on_folder / "run", tmp_path / "run")
    shutil.copytree(trained_on_folder / "stash" / "imgs", tmp_path / "elsewhere" / "imgs2")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def test_predict_needs_only_the_run_directory(moved, capsys):
    photo = moved / "photo.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(photo)
    capsys.readouterr()
    assert main(["predict", str(moved / "run"), str(photo), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert {t["class"] for t in top} == {"cat", "dog"}
    assert main(["summary", str(moved / "run")]) == 0


def test_eval_without_the_data_suggests_data_and_eval_data_finds_it(moved, capsys):
    run = moved / "run"
    before = _snapshot(run, lock=False)
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "val"]) == 2
    line = _error(capsys)
    assert "--data" in line and "imgs" in line and "internal error" not in line
    for split in ("val", "train"):
        assert main(["eval", str(run), "--split", split, "--data", str(moved / "elsewhere" / "imgs2"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["count"] > 0
    assert _snapshot(run, lock=False) == before


def test_resume_takes_data_to_the_same_datas_new_place(moved, capsys):
    run, new = moved / "run", moved / "elsewhere" / "imgs2"
    before = _snapshot(run, lock=False)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "--data" in _error(capsys)
    other = _image_folder(moved / "other", classes=("a", "b", "c"), n=6)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--data", str(other)]) == 2
    assert "not the data" in _error(capsys)
    assert _snapshot(run, lock=False) == before  # a refused resume changes nothing
    assert main(["train", "--resume", str(run), "--epochs", "2", "--data", str(new)]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 2
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == os.path.realpath(new) and saved["resume"][-1]["changed"] == {"epochs": 2}
    assert main(["eval", str(run), "--split", "val"]) == 0  # the new place is recorded


def test_finetune_from_a_run_needs_none_of_its_data(moved, capsys):
    other = _image_folder(moved / "other", classes=("a", "b", "c"), n=6)
    assert main(["finetune", "--from", str(moved / "run"), "--data", str(other), "--out", str(moved / "ft"),
                 "--epochs", "1", "--report", "off", "--diagnostics", "0"]) == 0
    assert json.loads((moved / "ft" / "summary.json").read_text())["status"] == "finished"


def test_a_run_moved_together_with_its_data_needs_no_flag(trained_on_folder, tmp_path, monkeypatch, capsys):
    together = tmp_path / "project"
    shutil.copytree(trained_on_folder / "run", together / "run")
    shutil.copytree(trained_on_folder / "stash" / "imgs", together / "imgs")
    monkeypatch.chdir(tmp_path)
    run = together / "run"
    assert json.loads((run / "config.json").read_text())["data_relative"] == os.path.join("..", "imgs")
    assert main(["eval", str(run), "--split", "val"]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 2
