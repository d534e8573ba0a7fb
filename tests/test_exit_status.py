"""One error path: every failure of every command prints exactly one `striate <command>: error: …` line (no
traceback) and exits with a status from the one table (`striate --help`)."""

import json

import pytest

from striate.cli import EXIT_TABLE, build_parser, main
from striate.train.checkpoint import CheckpointStore


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exit") / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--limit", "200", "--report", "off",
                 "--diagnostics", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def tampered(run, tmp_path_factory):
    import shutil

    out = tmp_path_factory.mktemp("exit") / "tampered"
    shutil.copytree(run, out)
    gen = out / "checkpoints" / CheckpointStore(out / "checkpoints").generation_of("last")
    (gen / "weights.safetensors").write_bytes(b"\x00" * 64)
    return out


def _cases(run, tampered, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    from tests.test_data_image_file import bomb_png

    bomb = bomb_png(tmp_path / "bomb.png", 12000, 12000)
    bad_search = tmp_path / "bad.toml"
    bad_search.write_text("[search]\ntrials = 'many'\n")
    return [
        (["train", "--learning-rate", "0.1"], 2, "unrecognized arguments"),
        (["train", "--epoch", "1"], 2, "unrecognized arguments"),  # no abbreviations
        (["train", "--lr", "fast"], 2, "'fast'"),
        (["train", "--data", "no/such/dir"], 2, "no such file or directory"),
        (["train", "--data", "imagenet"], 2, "unknown dataset"),
        (["train", "--model", "resnet"], 2, "unknown model"),
        (["train", "--learning-rate", "0.1"], 2, "did you mean --lr"),
        (["train", "--seed", "-5"], 2, "seed"),
        (["train", "--resume", str(tmp_path / "nowhere")], 2, "not a run directory"),
        (["train", "--resume", str(run), "--optimizer", "sgd"], 2, "may change, got --optimizer"),
        (["eval", str(tmp_path / "nowhere")], 2, "not a run directory"),
        (["eval", str(run), str(run)], 2, "--ensemble"),
        (["eval", str(tampered), "--checkpoint", "last"], 1, "checksum"),
        (["predict", str(run), str(tmp_path / "missing.png")], 1, "missing.png"),
        (["predict", str(run), str(not_image)], 1, "notes.png"),
        (["predict", str(run), str(not_image), "--top-k", "0"], 2, "--top-k"),
        (["predict", str(run), str(bomb)], 1, "refused before decoding"),
        (["predict", str(run), str(bomb), "--dense"], 1, "refused before decoding"),
        (["summary", "resnet101"], 2, "unknown model"),
        (["summary", "vgg16", "--input", "22x"], 2, "HxWxC"),
        (["finetune", "--from", str(tmp_path / "nowhere"), "--data", "digits"], 2, "no such run directory"),
        (["doctor", "--lr", "0"], 2, "--lr"),
        (["doctor", "--data", "no/such/dir"], 2, "no such file or directory"),
        (["report", str(tmp_path / "nowhere")], 2, "not a run directory"),
        (["search", str(tmp_path / "missing.toml")], 2, "missing.toml"),
        (["search", str(bad_search)], 2, "'many'"),
    ]


def test_every_command_failure_is_one_line_with_its_status(run, tampered, tmp_path, capsys):
    for argv, status, fragment in _cases(run, tampered, tmp_path):
        try:
            rc = main(argv + (["--out", str(tmp_path / "out")] if argv[0] == "train" and "--resume" not in argv
                              else []))
        except SystemExit as e:  # argparse's own exits
            rc = e.code
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("run ", "epoch "))]
        assert rc == status, (argv, rc, err)
        assert len(lines) == 1 and lines[0].startswith(f"striate {argv[0]}: error: "), (argv, err)
        assert fragment in lines[0], (argv, err)
        assert "Traceback" not in err


def test_top_level_errors(capsys):
    for argv in ([], ["fly"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("striate: error: ")


def test_the_table_is_in_every_help():
    parser = build_parser()
    assert EXIT_TABLE in parser.format_help()
    for name, sub in parser.commands.items():
        assert EXIT_TABLE in sub.format_help(), name
    for status in ("0 ", "1 ", "2 ", "3 ", "130/143"):
        assert f"\n  {status}" in EXIT_TABLE


def test_an_internal_error_is_one_line_too(monkeypatch, run, capsys):
    from striate.run import RunDir

    def broken(*args, **kwargs):
        raise AttributeError("something inside striate is wrong")

    monkeypatch.setattr(RunDir, "load_model", broken)
    assert main(["eval", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error AttributeError" in err and "STRIATE_TRACEBACK" in err


def test_a_broken_pipe_is_quiet(monkeypatch, run, capsys):
    from striate.cli import errors

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(errors, "silence_stdout", lambda: None)
    monkeypatch.setattr(json, "dumps", closed)
    assert main(["eval", str(run), "--json"]) == 0
    assert capsys.readouterr().err == ""
