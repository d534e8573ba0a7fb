"""Files striate writes must read back: every value written to a run file (config.toml) reads back equal, with
awkward strings (non-BMP characters, quotes, backslashes, newlines, control characters), so a run's own
config.toml is a valid `--config`; and a hand edit of config.toml is refused by `--resume`, never silently
ignored and overwritten (config.json is the run's record)."""

import datetime
import json
import shutil
import tomllib

import pytest

from striate.cli import main
from striate.run import config as cfg
from striate.run.directory import RunDir
from striate.run.run_file import load_run_file, run_values, to_toml, toml_value

AWKWARD = [
    "run\U0001f680", "\U0001f600\U0001f680 two emoji", "\U00010348 gothic", "say \"hi\"", "'single'",
    "back\\slash", "trailing\\", "\\u0041 not an escape", "new\nline", "cr\r\nlf", "tab\there", "\b\f",
    "nul\x00", "ctl\x01\x1b\x1f", "del\x7f", "\x80\x9f C1", "é ü 中文", "\u2028\u2029 separators", "\ufeff bom",
    "", " ", "#not a comment", "a = b", "[table]", "[[array]]", "{ inline = 1 }", '"""', "'''", "x" * 300,
]
KEYS = [*AWKWARD, "bare_key-1", "1", "a.b", "true", "inf", "ключ"]
NUMBERS = [0, -1, 2**63 - 1, -(2**63), 0.0, -0.0, 0.1, 1e-05, 1.5e-07, 1e16, 1e+300, 5e-324,
           1.7976931348623157e+308, float("inf"), float("-inf"), 1 / 3]


@pytest.mark.parametrize("value", [*AWKWARD, *NUMBERS, True, False, [], {}, [[]], [{}], [1, "a", 2.5, [True]],
                                   {"a": {"b": {"c": []}}}, datetime.date(2020, 2, 29),
                                   datetime.datetime(2020, 2, 29, 23, 59, 1), datetime.time(1, 2, 3)])
def test_every_value_reads_back_equal(value):
    assert tomllib.loads(f"x = {toml_value(value)}\n") == {"x": value}
    assert tomllib.loads(f"x = [{toml_value(value)}]\n") == {"x": [value]}
    assert tomllib.loads(f"x = {{ k = {toml_value(value)} }}\n") == {"x": {"k": value}}


def test_nan_reads_back_as_nan():
    assert tomllib.loads(f"x = {toml_value(float('nan'))}")["x"] != tomllib.loads("x = 0")["x"]
    assert str(tomllib.loads(f"x = {toml_value(float('nan'))}")["x"]) == "nan"


@pytest.mark.parametrize("key", KEYS)
def test_every_key_reads_back_equal(key):
    assert tomllib.loads(f"x = {toml_value({key: key, 'k': {key: [key]}})}\n") == \
        {"x": {key: key, "k": {key: [key]}}}


def test_an_awkward_string_is_written_as_itself():
    """Non-BMP characters are UTF-8 in the file, not JSON's surrogate pairs (which TOML refuses)."""
    assert toml_value("run\U0001f680") == '"run\U0001f680"'
    assert "\\ud83d" not in toml_value("\U0001f680")


def _value(option: cfg.Option, tmp_path):
    """A value `option` accepts, other than its default, as awkward as the option allows."""
    special = {
        "data": lambda: str(_mkdir(tmp_path / "data \U0001f680 \"q\" \\ \t\n\x01\x7f é")),
        "out": lambda: "runs/\U0001f680 \"q\" \\ \t\n\x01\x7f é\\",
        "from": lambda: "runs/\U0001f680 \"q\" é",  # fine-tuning's source
        "torch_arch": lambda: "vgg11_bn",
        "freeze_layers": lambda: ["features.0", "3.weight"],
        "model": lambda: "reference",
        "image_size": lambda: "32x32x3",
        "tta": lambda: "dropout:3",
        "augment": lambda: ["flip", "crop", "noise:1e-05"],
        "milestones": lambda: [1e-05, 2.5, 1e16, 3],
        "model_options": lambda: _model_options(),
        "param_groups": lambda: [{"match": "BatchNorm.bias", "lr_mult": 64, "decay_mult": 0.5}, {"match": "*.b🚀"}],
    }
    if option.name in special:
        return option.convert(special[option.name](), "test")
    if option.choices:
        return option.convert([c for c in option.choices if c != option.default][-1], "test")
    if option.type is bool:
        return not option.default
    candidates = [7, 123456789, 2**40] if option.type is int else [1e-05, 0.30000000000000004, 123456789.125]
    for c in candidates:
        try:
            if c != option.default:
                return option.convert(c, "test")
        except cfg.ConfigError:
            pass
    raise AssertionError(f"no test value for option {option.name}")


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def _model_options() -> dict:
    """Builder keywords as a [model] table holds them: awkward keys and values, nested tables, a layer list."""
    awkward = {key: value for key, value in zip(KEYS, AWKWARD * 2, strict=False)}
    return {
        "blocks": [{"layer": "Conv2d", "out_channels": 8, "init": {"normal": 1e-05}},
                   {"layer": "Residual", "body": [{"layer": "ReLU"}, {"layer": "Dropout", "p": 0.5}]},
                   {"layer": "Linear", "bias_init": {}, "name \U0001f680": "x\ny"}],
        "hidden": 512, "ratio": 1e-05, "flag": True, "empty": {}, "none": [],
        "nested": {"a b": {"\U0001f680": ["x\n", 1, 2.5, True, {"\"": "\\"}]}},
        **awkward,
    }


def _round_trip(config: dict, tmp_path, command: str) -> None:
    text = to_toml(config)
    path = tmp_path / "run.toml"
    path.write_bytes(text.encode("utf-8"))
    parsed = tomllib.loads(text)
    assert cfg.resolve(run_values(parsed, "test"), base={}, command=command) == config
    assert load_run_file(path, command) == config


@pytest.mark.parametrize("option", cfg.OPTIONS, ids=lambda o: o.name)
def test_every_option_reads_back_equal(option, tmp_path):
    """Each option alone, at a non-default (and where it can be, awkward) value."""
    command = option.commands[0]
    value = _value(option, tmp_path)
    assert value != option.default_for(command)
    config = {option.name: value}
    if option.name == "model_options":  # no model named: the writer's round trip, not a builder's keywords
        config["model"] = ""
    _round_trip(config, tmp_path, command)


@pytest.mark.parametrize("command", cfg.COMMANDS)
def test_a_whole_configuration_reads_back_equal(command, tmp_path):
    config = {**cfg.defaults(command), **{o.name: _value(o, tmp_path) for o in cfg.options(command)}}
    config["model"] = ""  # the awkward [model] keywords are no builder's (a named model's are checked on reading)
    _round_trip(config, tmp_path, command)


def test_a_layer_list_reads_back_equal(tmp_path):
    layers = [{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "init": {"normal": 1e-05}},
              {"layer": "Residual", "body": [{"layer": "ReLU"}], "survival": 0.5}, {"layer": "Flatten"},
              {"layer": "Linear"}]
    _round_trip({**cfg.defaults(), "model": "layers", "model_options": {"layers": layers}}, tmp_path, "train")


def test_write_config_reads_back_with_its_resumes(tmp_path):
    """config.toml as RunDir writes it, [[resume]] tables included, is TOML whose values equal config.json's."""
    run = RunDir(tmp_path / "run")
    settings = {**cfg.defaults(), "out": "runs/\U0001f680\n\"\\", "model_options": {"k\U0001f680": "v\x7f"},
                "model": "reference"}
    resumes = [{"time": "2026-01-01 00:00:00", "from_epoch": 1, "changed": {"tta": "dropout:3", "lr": 1e-05}},
               {"time": "t\U0001f680", "from_epoch": 2, "changed": {}}]
    run.write_config(settings, resumes)
    doc = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    assert doc["resume"] == resumes == json.loads((run / "config.json").read_text())["resume"]
    assert cfg.resolve(run_values(doc, "test")) == settings


def test_a_name_that_is_not_utf8_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "r\udcff"  # `--out $'r\xff'` on a UTF-8 system: no UTF-8 file can record it
    assert main(["train", "--out", str(out), "--epochs", "1", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "UTF-8" in err
    assert not out.exists()


# ----- end to end: a run's config.toml is a run file ---------------------------------------------------
FAST = ["--limit", "300", "--report", "off", "--diagnostics", "0"]
AWKWARD_DIR = "run \U0001f680 \"q\" \\ é\t'x'"


def test_a_runs_config_toml_is_a_valid_config_file(tmp_path, capsys):
    run = tmp_path / AWKWARD_DIR
    assert main(["train", "--out", str(run), "--epochs", "1", "--seed", "3", *FAST]) == 0
    text = (run / "config.toml").read_text(encoding="utf-8")
    assert "\\ud83d" not in text and "\U0001f680" in text
    assert tomllib.loads(text)["out"] == str(run)
    other = tmp_path / "other \U0001f600"
    assert main(["train", "--config", str(run / "config.toml"), "--out", str(other)]) == 0
    first, second = (json.loads((d / "config.json").read_text()) for d in (run, other))
    own = ("out", "config_toml_sha256")  # where each run is, and the digest of its own config.toml
    assert {k: v for k, v in first.items() if k not in own} == {k: v for k, v in second.items() if k not in own}
    capsys.readouterr()
    assert main(["summary", "--config", str(run / "config.toml")]) == 0
    assert "parameters" in capsys.readouterr().out.lower()


# ----- config.toml is written from config.json, never read back: an edit is refused -------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("edits") / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--seed", "2", "--batch-size", "50", *FAST]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def _files(run) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}


def _edit(run, old: str, new: str) -> None:
    path = run / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1) if old else text + new, encoding="utf-8")


@pytest.mark.parametrize(("old", "new", "key", "hint", "appended"), [
    ("lr = 0.001\n", "lr = 0.05\n", "lr", "--lr 0.05", ""),                       # resumable: say how
    ("epochs = 1\n", "epochs = 5\n", "epochs", "--epochs 5", ""),
    ("tta = \"none\"\n", "tta = \"flip\"\n", "tta", "--tta flip", ""),
    ("sync_bn = false\n", "sync_bn = true\n", "sync_bn", "--sync-bn", ""),
    ("batch_size = 50\n", "batch_size = 64\n", "batch_size", "cannot change", ""),  # not resumable
    ("seed = 2\n", "", "seed", "cannot change", ""),                              # a deleted line: its default
    ("optimizer = \"adam\"\n", "optimizer = \"sgd\"\n", "optimizer", "cannot change", ""),
    ("lr = 0.001\n", "lr = \"fast\"\n", "lr", "--lr VALUE", ""),                          # a bad value is an edit too
    ("lr = 0.001\n", "lr = 0.001\nlearning_rate = 0.1\n", "learning_rate", "cannot change", ""),  # unknown key
    ('model = "digits_net"\n', "", "model", "cannot change", ""),
    ('model = "digits_net"\n', "", "[model] hidden", "cannot change", '[model]\nname = "digits_net"\nhidden = 3\n'),
])
def test_an_edit_of_config_toml_is_refused_by_resume(run, capsys, old, new, key, hint, appended):
    _edit(run, old, new)
    _edit(run, "", appended)
    before = _files(run)
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("striate train: error: ")
    assert "config.toml" in err and f" {key} = " in err and hint in err
    assert _files(run) == before


def test_a_same_valued_rewrite_of_config_toml_resumes(run, capsys):
    """Values are compared resolved: 1e-3 is 0.001, an int is a float, spacing and comments are free."""
    _edit(run, "lr = 0.001\n", "lr   =   1e-3   # a comment\n")
    _edit(run, "epochs = 1\n", "# a note of mine\nepochs = 1\n")
    _edit(run, "batch_size = 50\n", "batch-size = 50\n")
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == 1 and config["resume"][0]["changed"] == {"epochs": 2}
    assert tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))["resume"] == config["resume"]


def test_an_edited_resume_table_is_refused(run, capsys):
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    capsys.readouterr()
    _edit(run, "changed = { epochs = 2 }", "changed = { epochs = 2, lr = 0.5 }")
    before = _files(run)
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[[resume]]" in err
    assert _files(run) == before


def test_a_missing_config_toml_is_written_again(run):
    (run / "config.toml").unlink()
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert load_run_file(run / "config.toml")["seed"] == 2


def test_a_config_toml_that_is_not_toml_is_a_damaged_run(run, capsys):
    _edit(run, "lr = 0.001\n", "lr = = 0.001\n")
    before = _files(run)
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.toml" in err and "delete it" in err
    assert _files(run) == before
