"""The zoo's command-line pieces, called directly: summary, eval --ensemble, finetune, predict --dense."""

import argparse
import io
import json

import numpy as np
import pytest

from striate.models.command import (
    ZOO,
    add_eval_ensemble_arguments,
    add_finetune_arguments,
    add_predict_dense_arguments,
    add_summary_arguments,
    build_model,
    native_input,
    run_eval_ensemble,
    run_finetune,
    run_predict_dense,
    run_summary,
)
from striate.train.checkpoint import CheckpointStore


def call(add, run, argv):
    args = add(argparse.ArgumentParser()).parse_args(argv)
    out = io.StringIO()
    rc = run(args, out=out)
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short digits runs with different seeds (the registry's digits_net)."""
    from striate.cli import main

    base = tmp_path_factory.mktemp("zoo_cli")
    paths = []
    for seed in (1, 2):
        out = base / f"run{seed}"
        assert main(["train", "--out", str(out), "--epochs", "2", "--seed", str(seed), "--limit", "600"]) == 0
        paths.append(out)
    return paths


def test_summary_by_name():
    rc, text = call(add_summary_arguments, run_summary, ["googlenet", "--input", "224x224x3", "--json"])
    r = json.loads(text)
    assert rc == 0 and r["params"] == 6_998_552 and r["macs"] == 1_582_671_872 and r["input"] == [224, 224, 3]
    assert r["rows"][-1]["output_shape"] == [1000]
    rc, text = call(add_summary_arguments, run_summary, ["lenet5", "--batch-size", "32", "--optimizer", "adam"])
    assert "61,706" in text and "416,520" in text and "training step at batch 32 (adam)" in text
    rc, text = call(add_summary_arguments, run_summary, ["alexnet_cifar", "--width", "0.5", "--num-classes", "2",
                                                         "--json"])
    assert json.loads(text)["rows"][-1]["output_shape"] == [2]
    with pytest.raises(ValueError, match="unknown model"):
        call(add_summary_arguments, run_summary, ["resnet50", "--input", "224x224x3"])
    with pytest.raises(ValueError, match="HxWxC"):
        call(add_summary_arguments, run_summary, ["lenet5", "--input", "32x32"])


def test_zoo_table():
    assert native_input("vgg16") == (224, 224, 3) and native_input("alexnet") == (227, 227, 3)
    assert native_input("lenet5") == (32, 32, 1) and native_input("googlenet_cifar") == (32, 32, 3)
    assert len(ZOO) == 18 and native_input("three_layer") is None
    net = build_model("vgg11_cifar", (32, 32, 3), 4, width=0.125)
    assert net.output_shape((1, 32, 32, 3)) == (1, 4) and net.build_config["name"] == "vgg11_cifar"
    assert build_model("digits_net", (8, 8, 1), 10).build_config["name"] == "digits_net"


def test_summary_of_a_run(runs):
    rc, text = call(add_summary_arguments, run_summary, [str(runs[0]), "--json"])
    assert rc == 0 and json.loads(text)["input"] == [8, 8, 1]


def test_eval_ensemble(runs):
    rc, text = call(add_eval_ensemble_arguments, run_eval_ensemble, [str(runs[0]), str(runs[1]), "--ensemble",
                                                                     "--json"])
    r = json.loads(text)
    assert rc == 0 and len(r["members"]) == 2 and r["ensemble"]["count"] == 359
    for m, path in zip(r["members"], runs, strict=True):
        summary = json.loads((path / "summary.json").read_text())
        assert m["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    assert r["ensemble"]["loss"] <= max(m["loss"] for m in r["members"])
    rc, text = call(add_eval_ensemble_arguments, run_eval_ensemble, [str(runs[0]), str(runs[1]), "--ensemble"])
    assert "ensemble of 2: accuracy" in text


def test_finetune_from_run(runs, tmp_path):
    out = tmp_path / "ft"
    rc, text = call(add_finetune_arguments, run_finetune, ["--from", str(runs[0]), "--freeze", "3", "--data", "digits",
                                                            "--epochs", "1", "--limit", "300", "--num-classes", "10",
                                                            "--out", str(out)])
    assert rc == 0 and "4 frozen" in text
    info = json.loads((out / "finetune.json").read_text())
    assert info["frozen_parameters"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    source = CheckpointStore(runs[0] / "checkpoints").load("best").weights
    tuned = CheckpointStore(out / "checkpoints").load("last").weights
    for k in info["frozen_parameters"]:
        np.testing.assert_array_equal(tuned[k], source[k])
    assert not np.array_equal(tuned["6.weight"], source["6.weight"])
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_finetune_from_weights_file_and_errors(runs, tmp_path):
    from safetensors.numpy import save_file

    from striate.train.config import ConfigError

    weights = CheckpointStore(runs[0] / "checkpoints").load("best").weights
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    rc, text = call(add_finetune_arguments, run_finetune, ["--from", str(tmp_path / "w.safetensors"), "--model",
                                                            "digits_net", "--epochs", "1", "--limit", "200",
                                                            "--out", str(tmp_path / "ft2")])
    assert rc == 0 and "0 frozen" in text
    with pytest.raises(ConfigError, match="--model"):
        call(add_finetune_arguments, run_finetune, ["--from", str(tmp_path / "w.safetensors")])
    with pytest.raises(ConfigError, match="num-classes 3"):
        call(add_finetune_arguments, run_finetune, ["--from", str(runs[0]), "--num-classes", "3", "--limit", "100",
                                                    "--out", str(tmp_path / "ft3")])
    with pytest.raises(ConfigError, match="no such run directory"):
        call(add_finetune_arguments, run_finetune, ["--from", str(tmp_path / "missing")])
    # float64 weights that float32 cannot hold exactly: refused unless --cast asks for the rounding
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) + 1e-9 for k, v in weights.items()},
              str(tmp_path / "w64.safetensors"))
    argv = ["--from", str(tmp_path / "w64.safetensors"), "--model", "digits_net", "--epochs", "1", "--limit", "200"]
    with pytest.raises(ValueError, match="cast"):
        call(add_finetune_arguments, run_finetune, [*argv, "--out", str(tmp_path / "ft4")])
    rc, text = call(add_finetune_arguments, run_finetune, [*argv, "--cast", "--out", str(tmp_path / "ft5")])
    assert rc == 0


def test_predict_dense(runs, tmp_path):
    from PIL import Image

    from striate.data import load

    ds = load("digits", "test")
    canvas = np.zeros((12, 14), np.uint8)
    canvas[2:10, 3:11] = ds.images[0, :, :, 0]
    Image.fromarray(canvas).save(tmp_path / "big.png")
    Image.fromarray(ds.images[1, :, :, 0]).save(tmp_path / "small.png")
    rc, text = call(add_predict_dense_arguments, run_predict_dense, [str(runs[0]), str(tmp_path / "big.png"),
                                                                     str(tmp_path / "small.png"), "--dense", "--json"])
    r = json.loads(text)
    assert rc == 0 and r[0]["positions"] == [3, 4] and r[1]["positions"] == [1, 1]
    assert sum(c["probability"] for c in r[0]["top"]) <= 1 + 1e-9
    # on a training-size image the dense prediction is the ordinary one
    from striate.models.ensemble import predict_proba
    from striate.train import experiment as ex

    t = ex.load_trained(runs[0])
    p = predict_proba(t.model, ex.apply_preprocess(t.preprocess, ds.images[1:2]))[0]
    assert r[1]["top"][0]["index"] == int(p.argmax())
    assert r[1]["top"][0]["probability"] == pytest.approx(float(p.max()), rel=1e-5)
    rc, text = call(add_predict_dense_arguments, run_predict_dense,
                    [str(runs[0]), str(tmp_path / "big.png"), "--dense"])
    assert "3×4 positions" in text


def test_dense_preprocessing_needs_per_channel_steps():
    from striate.data import MeanImage, PerChannelMean, Scale
    from striate.models.command import preprocess_any_size

    x = np.arange(2 * 6 * 6 * 1, dtype=np.uint8).reshape(2, 6, 6, 1)
    steps = [Scale(1 / 255), PerChannelMean()]
    steps[1].fit(np.zeros((3, 4, 4, 1), np.float32) + 0.5)
    np.testing.assert_allclose(preprocess_any_size(steps, x), x / np.float32(255) - 0.5, rtol=1e-6)
    mean = MeanImage().fit(np.zeros((3, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="MeanImage"):
        preprocess_any_size([mean], x)
