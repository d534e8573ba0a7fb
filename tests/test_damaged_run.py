"""A damaged run directory (issue 21): every file of a run fed garbage of every JSON/TOML kind, and each
command that reads it (`train --resume`, `eval`, `predict`, `summary`, `report`) exits 0 or prints one line
`striate <command>: error: …` (status 1 or 2), never an internal error or a traceback, and a failed command
changes nothing on disk.

"Nothing changes" is checked by hashing every file before and after, except `.lock` (striate's own lock file:
every writer holds it, and it stays, see `run/lock.py`). A command that succeeds may write what it is for: a
resume anything (it trains), `report` report.html and plots/; `eval`, `predict` and `summary` nothing."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from striate.cli import main

FAST = ["--limit", "200", "--epochs", "1", "--seed", "3", "--report", "off"]
GEN = "gen-000001"

# garbage of every kind: bytes, or a function of the file's own bytes
GARBAGE = {
    "array": b"[1, 2]\n",
    "string": b'"x"\n',
    "number": b"3\n",
    "null": b"null\n",
    "bool": b"true\n",
    "non-utf8": b"\xff\xfe\x00\x81 garbage\n",
    "empty": b"",
    "truncated": lambda data: data[: len(data) // 2],
    "deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "wrong-types": lambda data: _wrong_types(data),
}


def _wrong_types(data: bytes) -> bytes:
    """The file's own object with every value replaced by one of another type (a JSON-lines file: every
    record's); anything else: TOML/JSON that parses to the wrong thing."""
    def swap(doc):
        return {k: ([1, "x"] if isinstance(v, str) else {"x": [None]} if isinstance(v, int | float) else "x")
                for k, v in doc.items()} if isinstance(doc, dict) else "x"
    try:
        return (json.dumps(swap(json.loads(data))) + "\n").encode()
    except ValueError:
        pass
    try:
        return "".join(json.dumps(swap(json.loads(line))) + "\n" for line in data.decode().splitlines()).encode()
    except ValueError:
        return b'model = [1, "x"]\nepochs = "many"\n[resume]\nchanged = 3\n'


# the files of a run and the commands that read each one
READERS = {
    "config.json": ("resume", "eval", "predict", "summary"),
    "config.toml": ("resume",),
    "metrics.jsonl": ("resume", "report"),
    "checkpoints/last": ("resume", "summary"),
    "checkpoints/best": ("eval", "predict", "resume"),  # and report: below (it draws, so a few kinds only)
    f"checkpoints/{GEN}/state.json": ("resume", "eval", "predict", "summary"),
    f"checkpoints/{GEN}/weights.safetensors": ("resume", "eval", "predict", "summary"),
    f"checkpoints/{GEN}/arrays.safetensors": ("resume", "eval"),
}
SLOW = {("config.toml", k) for k in GARBAGE if k not in ("non-utf8", "wrong-types")}  # a resume that trains
# a safetensors file is bytes under a checksum: garbage, empty and truncated cover it (the JSON kinds are garbage)
SLOW |= {(f"checkpoints/{GEN}/{f}", k) for f in ("weights.safetensors", "arrays.safetensors") for k in GARBAGE
         if k not in ("non-utf8", "empty", "truncated")}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run for the whole module (each case damages a copy) and an image to predict."""
    root = tmp_path_factory.mktemp("damaged")
    assert main(["train", "--out", str(root / "run"), *FAST]) == 0
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(root / "digit.png")
    return root / "run"


@pytest.fixture
def copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


@pytest.fixture
def quick_plots(monkeypatch):
    """The report's figures are built from the files, but not rendered to PNG (rendering is slow and
    reads nothing)."""
    import striate.report.figure as figure

    monkeypatch.setattr(figure, "png_bytes", lambda fig: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1")


def _hashes(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".lock"}


def _argv(command: str, directory: Path) -> list[str]:
    return {"resume": ["train", "--resume", str(directory), "--epochs", "2", "--report", "off"],
            "eval": ["eval", str(directory)],
            "eval-averaged": ["eval", str(directory), "--weights", "averaged"],
            "predict": ["predict", str(directory), str(directory.parent.parent / "digit.png")],
            "summary": ["summary", str(directory)],
            "report": ["report", str(directory)]}[command]


def _run_and_check(command: str, directory: Path, capsys) -> tuple[int, str]:
    """Run `command` on `directory`; assert the contract; return (status, stderr)."""
    before = _hashes(directory)
    capsys.readouterr()
    status = main(_argv(command, directory))
    err = capsys.readouterr().err
    name = {"resume": "train", "eval-averaged": "eval"}.get(command, command)
    assert "internal error" not in err and "Traceback" not in err, err
    if status == 0:
        after = _hashes(directory)
        if command in ("eval", "eval-averaged", "predict", "summary"):
            assert after == before
        elif command == "report":
            assert {k: v for k, v in after.items() if k != "report.html" and not k.startswith("plots/")} == \
                {k: v for k, v in before.items() if k != "report.html" and not k.startswith("plots/")}
        return status, err
    assert status in (1, 2), err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"striate {name}: error: "), err
    assert _hashes(directory) == before, "a failed command changed the run directory"
    return status, err


def _damage(directory: Path, name: str, kind: str) -> None:
    path = directory / name
    garbage = GARBAGE[kind]
    path.write_bytes(garbage(path.read_bytes()) if callable(garbage) else garbage)


CASES = [(f, k) for f in READERS for k in GARBAGE if (f, k) not in SLOW]


def _in_order(commands) -> list[str]:
    """A resume last: a failed command changes nothing, so one damaged copy serves every reader."""
    return sorted(commands, key=lambda c: c == "resume")


@pytest.mark.parametrize(("name", "kind"), CASES, ids=["-".join(c) for c in CASES])
def test_a_damaged_file_is_one_line_and_changes_nothing(copy, capsys, quick_plots, name, kind):
    _damage(copy, name, kind)
    for command in _in_order(READERS[name]):
        status, err = _run_and_check(command, copy, capsys)
        if status == 1 and not name.startswith("checkpoints/"):
            assert Path(name).name in err, command  # the line names the damaged file


@pytest.mark.parametrize("name", ["summary.json", "evaluation.json", "diagnostics.json", "config.json"])
@pytest.mark.parametrize("kind", ["array", "wrong-types"])
def test_the_report_is_drawn_without_a_damaged_optional_file(copy, capsys, quick_plots, name, kind):
    """The page can be drawn without each of these: a damaged one is left out, and a warning names it."""
    _damage(copy, name, kind)
    status, err = _run_and_check("report", copy, capsys)
    assert status == 0 and name in err and "drawn without it" in err
    assert (copy / "report.html").is_file()


@pytest.mark.parametrize("kind", ["non-utf8", "wrong-types", "deep"])
@pytest.mark.parametrize("name", ["checkpoints/best", f"checkpoints/{GEN}/state.json"])
def test_the_report_is_drawn_without_a_damaged_checkpoint(copy, capsys, quick_plots, name, kind):
    """The checkpoint only gives the page the first layer's filters."""
    _damage(copy, name, kind)
    assert _run_and_check("report", copy, capsys)[0] == 0


def test_the_report_is_drawn_when_every_optional_file_is_damaged(copy, capsys, quick_plots):
    for name in ("summary.json", "evaluation.json", "diagnostics.json", "config.json"):
        _damage(copy, name, "wrong-types")
    status, err = _run_and_check("report", copy, capsys)
    assert status == 0 and err.count("drawn without it") >= 1


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_every_optional_report_file_reader_leaves_garbage_out(tmp_path, capsys, kind):
    from striate.report.inputs import read_optional

    path = tmp_path / "summary.json"
    path.write_bytes(b'{"status": "finished", "epochs_completed": 1}')
    _damage(tmp_path, "summary.json", kind)
    doc = read_optional(path)
    assert doc is None or (isinstance(doc, dict) and kind == "wrong-types")
    assert doc is not None or "summary.json" in capsys.readouterr().err


# ----- the cases the issue names ----------------------------------------------------------------------
def _edit_config(directory: Path, **changes) -> None:
    doc = json.loads((directory / "config.json").read_text())
    doc.update(changes)
    (directory / "config.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("changes", [{"model": "three_layer"}, {"width": 2.0}, {"model_options": {"hidden": 7}}])
def test_a_resume_after_the_model_was_changed_names_the_file_and_the_tensor(copy, capsys, changes):
    _edit_config(copy, **changes)
    status, err = _run_and_check("resume", copy, capsys)
    assert status == 1 and "config.json" in err and "checkpoint" in err and "tensor" in err


@pytest.mark.parametrize("line", [b"[1, 2]", b'"x"', b"3", b"null", b'{"type": "epoch"}', b'{"loss": 1.0}',
                                  b'{"type": "iteration", "epoch": 1, "batch": 1, "iteration": "x", "loss": 1}',
                                  b"\xff\xfe", b'{"type": "epoch", "epoch": 1, "iteration": 1, "loss": [1]}'])
@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_damaged_metrics_line_stops_the_resume_before_it_records_itself(copy, capsys, line, where):
    path = copy / "metrics.jsonl"
    lines = path.read_bytes().splitlines()
    at = len(lines) if where == "last" else 1
    path.write_bytes(b"\n".join([*lines[:at], line, *lines[at:]]) + b"\n")
    status, err = _run_and_check("resume", copy, capsys)  # config.json and config.toml unchanged: no [[resume]]
    assert status == 1 and "metrics.jsonl" in err and f"line {at + 1}" in err


def test_a_torn_last_metrics_line_is_skipped(copy, capsys):
    """A kill while History writes leaves the start of a record with no newline: that is not damage."""
    path = copy / "metrics.jsonl"
    path.write_bytes(path.read_bytes() + b'{"type": "iteration", "epo')
    assert main(_argv("resume", copy)) == 0
    records = [json.loads(s) for s in path.read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]


@pytest.mark.parametrize("doc", [[], "x", 3, None, True, {"resume": "x"}, {"resume": [1]}, {"resume": [{"changed": 2}]},
                                 {"resume": [{"changed": {"model": "lenet"}}]}, {"resume": [{"from_epoch": "x"}]}])
def test_a_config_json_of_the_wrong_shape_names_the_file(copy, capsys, doc):
    if isinstance(doc, dict):
        _edit_config(copy, **doc)
    else:
        (copy / "config.json").write_text(json.dumps(doc))
    for command in ("eval", "predict", "summary", "resume"):
        status, err = _run_and_check(command, copy, capsys)
        assert status == 1 and "config.json" in err and "damaged" in err, command


@pytest.mark.parametrize(("key", "value"), [("lr", "fast"), ("epochs", [1]), ("model", 3), ("augment", {"a": 1}),
                                            ("seed", None), ("batch_size", True)])
def test_a_config_json_value_of_the_wrong_type_names_the_key(copy, capsys, key, value):
    _edit_config(copy, **{key: value})
    status, err = _run_and_check("resume", copy, capsys)
    assert status in (1, 2) and "config.json" in err and key in err


@pytest.mark.parametrize("part", ["progress", "rngs", "loader", "callbacks", "optimizer", "schedule", "meta",
                                  "meta/model", "meta/preprocess", "meta/classes", "meta/input_shape", "callbacks/*",
                                  "rngs/*", "loader/perm", "loader/rng"])
@pytest.mark.parametrize("value", ["x", None, {"a": [1]}])
def test_a_damaged_checkpoint_state_is_one_line(copy, capsys, part, value):
    path = copy / "checkpoints" / GEN / "state.json"
    doc = json.loads(path.read_text())
    parent, _, key = ("/" + part).rpartition("/")
    target = doc["state"]
    for p in parent.strip("/").split("/") if parent else []:
        target = target[p]
    key = next(iter(target), "extra") if key == "*" else key
    target[key] = value
    path.write_text(json.dumps(doc))
    readers = ("eval", "eval-averaged", "resume") if not part.startswith("meta") else ("eval", "predict", "summary",
                                                                                         "resume")
    for command in readers:
        _run_and_check(command, copy, capsys)
