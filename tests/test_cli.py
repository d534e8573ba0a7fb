"""The `striate` command line end to end on the embedded digits: train, resume, eval, predict, config
files, bad values, the divergence exit status, and a light `import`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from striate.cli import main
from striate.train.checkpoint import CheckpointStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short run shared by the eval/predict/resume tests."""
    out = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["train", "--out", str(out), "--epochs", "3", "--augment", "crop", "--seed", "1"])
    assert rc == 0
    return out


def test_train_writes_a_complete_run(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == [".lock", "checkpoints", "config.json", "config.toml", "diagnostics.json", "evaluation.json",
                     "metrics.jsonl", "plots", "report.html", "summary.json", "top_losses"]
    evaluation = json.loads((trained / "evaluation.json").read_text())
    assert evaluation["split"] == "test" and evaluation["count"] == 359 and len(evaluation["confusion_matrix"]) == 10
    diagnostics = json.loads((trained / "diagnostics.json").read_text())
    assert diagnostics  # per-layer statistics recorded during training
    html = (trained / "report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    summary = json.loads((trained / "summary.json").read_text())
    # the final page is drawn after summary.json: it shows the run's status and its test accuracy
    assert "id='status'>finished<" in html and f"id='test'>{100 * summary['test']['accuracy']:.2f} %<" in html
    assert any(p.suffix == ".png" and p.stat().st_size > 1000 for p in (trained / "plots").iterdir())
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 3
    assert summary["test"]["count"] == 359 and summary["test"]["accuracy"] > 0.7
    config = json.loads((trained / "config.json").read_text())
    assert config["model"] == "digits_net" and config["augment"] == ["crop"] and config["seed"] == 1
    records = [json.loads(s) for s in (trained / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(epochs[0])
    assert sum(r["type"] == "iteration" for r in records) == summary["iterations"]
    store = CheckpointStore(trained / "checkpoints")
    assert store.has("last") and store.has("best")


def test_eval_reports_accuracy_per_class_and_confusion(trained, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    summary = json.loads((trained / "summary.json").read_text())
    assert r["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == r["count"] == 359
    assert np.trace(cm) / cm.sum() == pytest.approx(r["accuracy"])
    np.testing.assert_allclose(r["per_class_accuracy"], np.diag(cm) / cm.sum(axis=1))
    assert main(["eval", str(trained), "--checkpoint", "last"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "true\\pred" in text


def test_predict_png_matches_the_model(trained, tmp_path, capsys):
    from PIL import Image

    from striate.data import load
    from striate.run import RunDir

    ds = load("digits", "test")
    paths = []
    for i in range(3):
        p = tmp_path / f"digit{i}.png"
        Image.fromarray(ds.images[i, :, :, 0]).save(p)
        paths.append(str(p))
    big = tmp_path / "big.png"  # an RGB image of another size is converted and resized
    Image.fromarray(ds.images[0, :, :, 0]).convert("RGB").resize((32, 32), Image.Resampling.NEAREST).save(big)
    capsys.readouterr()
    assert main(["predict", str(trained), *paths, str(big), "--top-k", "3", "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # JSON Lines
    t = RunDir(trained).load_model()
    scores = t.model.forward(t.preprocess(ds.images[:3]))
    expected = scores.argmax(axis=1)
    assert [r["top"][0]["index"] for r in results[:3]] == expected.tolist()
    for r in results:
        probs = [c["probability"] for c in r["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert results[3]["top"][0]["index"] == results[0]["top"][0]["index"]  # nearest upscale round-trips
    assert main(["predict", str(trained), paths[0]]) == 0
    assert capsys.readouterr().out.startswith(f"{paths[0]}: {ds.classes[expected[0]]} (")


def test_resume_extends_and_rejects_changes(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--optimizer", "sgd"]) == 2
    assert "may change, got --optimizer" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "4"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_completed"] == 4 and summary["status"] == "finished"
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2, 3, 4]
    assert main(["train", "--out", str(run)]) == 2  # never overwrite a run
    assert "already holds a run" in capsys.readouterr().err


def test_resume_equals_one_go(tmp_path):
    """A schedule that does not depend on the total length (constant after warm-up), so a run trained for 2
    epochs and resumed to 3 must equal 3 epochs in one go, bit for bit."""
    common = ["--limit", "300", "--augment", "crop,flip", "--schedule", "constant", "--warmup", "1"]
    assert main(["train", "--out", str(tmp_path / "a"), "--epochs", "3", *common]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--epochs", "2", *common]) == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--epochs", "3"]) == 0
    wa = CheckpointStore(tmp_path / "a" / "checkpoints").load("last").weights
    wb = CheckpointStore(tmp_path / "b" / "checkpoints").load("last").weights
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    sa, sb = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert sa["test"] == sb["test"]


def test_config_file_and_flag_override(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "digits"\noptimizer = "momentum"\nlr = 0.02\nepochs = 2\nbatch-size = 100\n'
                   'augment = ["flip"]\nschedule = "step"\nlimit = 400\n')
    out = tmp_path / "r"
    assert main(["train", "--config", str(cfg), "--epochs", "1", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["optimizer"], config["lr"], config["epochs"], config["batch_size"]) == ("momentum", 0.02, 1, 100)
    assert config["augment"] == ["flip"] and config["schedule"] == "step"
    # the saved config.toml is itself a valid --config file
    assert main(["train", "--config", str(out / "config.toml"), "--out", str(tmp_path / "r2")]) == 0
    assert json.loads((tmp_path / "r2" / "config.json").read_text())["lr"] == 0.02


@pytest.mark.parametrize(("argv", "quoted"), [
    (["--optimizer", "adm"], "'adm'"),
    (["--lr", "fast"], "'fast'"),
    (["--lr", "-1"], "'-1'"),
    (["--batch-size", "0"], "'0'"),
    (["--augment", "crop,rotate"], "'rotate'"),
    (["--schedule", "cosin"], "'cosin'"),
    (["--model", "resnet"], "'resnet'"),
    (["--tta", "crops"], "'crops'"),
    (["--label-smoothing", "1"], "--label-smoothing '1'"),
    (["--model", "lenet5"], "lenet5"),  # a real model that cannot take 8×8 digits: an error, no traceback
    (["--data", "no/such/dir"], "'no/such/dir'"),
])
def test_bad_values_are_errors_that_quote_them(argv, quoted, tmp_path, capsys):
    rc = main(["train", "--out", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert rc in (1, 2) and quoted in err and "Traceback" not in err


def test_label_smoothing_and_tta_reach_the_trainer(trained, tmp_path, capsys):
    out = tmp_path / "ls"
    assert main(["train", "--out", str(out), "--epochs", "1", "--label-smoothing", "0.1", "--tta", "flip",
                 "--report", "off", "--diagnostics", "0", "--val-fraction", "0"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["label_smoothing"] == 0.1 and config["tta"] == "flip"
    summary = json.loads((out / "summary.json").read_text())
    # no validation split: the best checkpoint follows training accuracy, and says so
    assert summary["best_val_accuracy"] is None and 0 < summary["best_train_accuracy"] <= 1
    assert "no validation split" in capsys.readouterr().out
    assert main(["eval", str(out), "--json"]) == 0  # the run's own TTA by default
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    assert main(["eval", str(out), "--tta", "none"]) == 0
    assert "test-time augmentation" not in capsys.readouterr().out
    assert main(["eval", str(out), "--tta", "flip"]) == 0
    assert "test-time augmentation flip" in capsys.readouterr().out
    assert main(["eval", str(out), "--tta", "flip-translate"]) == 0
    assert "test-time augmentation flip-translate" in capsys.readouterr().out


def test_bad_config_file(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("lr = 0.01\nlearning_rate = 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown key 'learning_rate'" in capsys.readouterr().err
    cfg.write_text('epochs = "many"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert "'many'" in capsys.readouterr().err


def test_divergence_exits_3_without_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "boom"
    rc = main(["train", "--out", str(out), "--optimizer", "sgd", "--lr", "1e4", "--epochs", "2"])
    text = capsys.readouterr()
    assert rc == 3
    assert "diverged at epoch 1" in text.out and "lower learning rate" in text.out
    assert not CheckpointStore(out / "checkpoints").has("last")
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"


def test_console_script_no_arguments_and_light_import(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    exe = os.path.join(os.path.dirname(sys.executable), "striate")
    cmd = [exe, "train"] if os.path.exists(exe) else [sys.executable, "-m", "striate", "train"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["test"]["accuracy"] > 0.9
    assert "epoch 10/10" in proc.stdout and "test accuracy" in proc.stdout
    code = ("import sys, striate, striate.cli, striate.train, striate.models; "
            "print([m for m in ('tqdm', 'safetensors', 'PIL', 'tomllib') if m in sys.modules])")
    heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert heavy.stdout.strip() == "[]", heavy.stdout + heavy.stderr


@pytest.mark.parametrize("command", ["train", "resume", "finetune"])
def test_the_stop_reason_is_printed_once(trained, tmp_path, capsys, command):
    """A diverged run says "training diverged" once on stdout (the progress line, not again in the summary)."""
    import shutil

    flags = ["--lr", "1e4", "--report", "off", "--diagnostics", "0"]
    if command == "train":
        argv = ["train", "--out", str(tmp_path / "r"), "--epochs", "2", "--limit", "300", *flags]
    elif command == "resume":
        shutil.copytree(trained, tmp_path / "r")
        argv = ["train", "--resume", str(tmp_path / "r"), "--epochs", "4", "--lr", "1e4"]
    else:
        argv = ["finetune", "--from", str(trained), "--out", str(tmp_path / "r"), "--epochs", "1", "--limit", "300",
                *flags]
    assert main(argv) == 3
    out = capsys.readouterr().out
    assert out.count("training diverged") == 1, out


def test_diverged_resume_keeps_the_good_checkpoint_and_a_lower_lr_recovers(trained, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    before = CheckpointStore(run / "checkpoints").load("last")
    assert main(["train", "--resume", str(run), "--epochs", "5", "--lr", "1e4"]) == 3
    out = capsys.readouterr().out
    assert "diverged at epoch 4" in out and "lr 1e+04" in out
    after = CheckpointStore(run / "checkpoints").load("last")
    assert after.generation == before.generation and after.state["progress"]["epoch"] == 3
    assert main(["train", "--resume", str(run), "--epochs", "4", "--lr", "5e-4"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 4
    assert CheckpointStore(run / "checkpoints").load("last").state["optimizer"]["hyperparameters"]["lr"] == 5e-4


def test_an_explosion_at_an_epoch_end_leaves_last_resumable(tmp_path, capsys):
    """The issue's reproduction: one step an epoch, so the exploding update is an epoch's last one."""
    run = tmp_path / "r"
    assert main(["train", "--limit", "50", "--batch-size", "64", "--epochs", "3", "--report", "off",
                 "--diagnostics", "0", "--out", str(run)]) == 0
    good = CheckpointStore(run / "checkpoints").load("last")
    assert main(["train", "--resume", str(run), "--lr", "1000", "--epochs", "6"]) == 3
    assert "diverged" in capsys.readouterr().out
    store = CheckpointStore(run / "checkpoints")
    assert store.load("last").generation == good.generation
    assert max(float(np.abs(w).max()) for w in store.load("last").weights.values()) < 100
    assert main(["train", "--resume", str(run), "--lr", "0.001", "--epochs", "7"]) == 0
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["type"] == "iteration"]
    after = [r["loss"] for r in records if r["type"] == "iteration" and r["iteration"] == 4]
    assert len(after) == 1 and np.isfinite(after[0]) and after[0] <= 3 * losses[0]


def test_width_reaches_zoo_models_and_is_refused_by_fixed_ones(tmp_path, capsys):
    import striate as st

    def probe(num_classes, in_channels, image_size=(8, 8), *, rng, width=1.0):
        hidden = int(32 * width)
        return st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(64 * in_channels, hidden, rng=rng),
                                st.nn.Linear(hidden, num_classes, rng=rng))

    st.models.register("width_probe", probe)
    assert main(["train", "--model", "width_probe", "--width", "0.5", "--epochs", "1", "--report", "off",
                 "--diagnostics", "0", "--out", str(tmp_path / "ok")]) == 0
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    assert config["width"] == 0.5
    weights = load_file(str(next((tmp_path / "ok" / "checkpoints").glob("gen-*")) / "weights.safetensors"))
    assert weights["1.weight"].shape == (64, 16)  # the builder got width 0.5
    capsys.readouterr()
    assert main(["train", "--model", "three_layer", "--width", "0", "--epochs", "1", "--report", "off",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--width '0': must be > 0" in capsys.readouterr().err
    import numpy as np

    def fixed(num_classes, in_channels, image_size=(8, 8), *, rng):
        return st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(64 * in_channels, num_classes, rng=rng))

    st.models.register("fixed_probe", fixed)
    assert main(["train", "--model", "fixed_probe", "--width", "0.5", "--epochs", "1", "--report", "off",
                 "--out", str(tmp_path / "fixed")]) == 2
    assert "takes no keyword 'width'" in capsys.readouterr().err
    assert st.models.get("three_layer", 10, 3, rng=np.random.default_rng(0), width=0.5)[0].out_channels == 16


def test_width_multiplies_digits_net_too(tmp_path):
    """--width is a multiplier everywhere; digits_net's channel count is a keyword of its own."""
    import striate as st

    assert main(["train", "--width", "2", "--epochs", "1", "--report", "off", "--diagnostics", "0",
                 "--limit", "200", "--out", str(tmp_path / "w")]) == 0
    weights = CheckpointStore(tmp_path / "w" / "checkpoints").load("last").weights
    assert weights["0.weight"].shape == (3, 3, 1, 32) and weights["2.weight"].shape == (3, 3, 32, 64)
    half = st.models.get("digits_net", 10, 1, width=0.5)
    assert half[0].out_channels == 8
    assert st.models.get("digits_net", 10, 1, channels=4, width=2.0)[0].out_channels == 8


def test_resume_help_names_the_option_tables_resumable_flags():
    import argparse

    from striate.cli import train
    from striate.run import config as cfg

    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    text = next(a.help for a in parser._actions if a.dest == "resume")
    flags = [cfg.BY_NAME[name].flag_name for name in cfg.resumable()]
    assert "--sync-bn" in flags
    assert all(flag in text for flag in flags), text


def test_the_augment_help_lists_the_augmentation_table():
    from striate.data.pipeline import AUGMENT
    from striate.run import config as cfg

    words = cfg.BY_NAME["augment"].help.split(":", 1)[1].split("(")[0]
    assert [w.strip() for w in words.split(",")] == [*AUGMENT, "translate:P", "noise:σ"]
