"""The zoo's commands end to end: summary, eval --ensemble (with TTA), finetune, predict --dense."""

import json

import numpy as np
import pytest

from striate.cli import main
from striate.models import registry
from striate.train.checkpoint import CheckpointStore


def call(argv, capsys):
    """(exit status, stdout, stderr) of `striate ARGV`."""
    capsys.readouterr()
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short digits runs with different seeds (the registry's digits_net)."""
    base = tmp_path_factory.mktemp("zoo_cli")
    paths = []
    for seed in (1, 2):
        out = base / f"run{seed}"
        assert main(["train", "--out", str(out), "--epochs", "2", "--seed", str(seed), "--limit", "600"]) == 0
        paths.append(out)
    return paths


def test_summary_by_name(capsys):
    rc, text, _ = call(["summary", "googlenet", "--input", "224x224x3", "--json"], capsys)
    r = json.loads(text)
    assert rc == 0 and r["params"] == 6_998_552 and r["macs"] == 1_582_671_872 and r["input"] == [224, 224, 3]
    assert r["rows"][-1]["output_shape"] == [1000]
    rc, text, _ = call(["summary", "lenet5", "--batch-size", "32", "--optimizer", "adam"], capsys)
    assert "61,706" in text and "416,520" in text and "training step at batch 32 (adam)" in text
    rc, text, _ = call(["summary", "alexnet_cifar", "--width", "0.5", "--num-classes", "2", "--json"], capsys)
    assert json.loads(text)["rows"][-1]["output_shape"] == [2]
    rc, text, _ = call(["summary", "resnet50", "--json"], capsys)
    assert rc == 0 and json.loads(text)["params"] == 25_557_032 and json.loads(text)["input"] == [224, 224, 3]
    rc, _, err = call(["summary", "resnet101", "--input", "224x224x3"], capsys)
    assert rc == 2 and "unknown model 'resnet101'" in err
    rc, _, err = call(["summary", "lenet5", "--input", "32x32"], capsys)
    assert rc == 2 and "HxWxC" in err


def test_every_registered_model_has_a_summary_without_input(capsys):
    """The native input comes from each builder's defaults, for the zoo and the small nets alike."""
    for name in ("fast_cifar", "digits_net", "three_layer", "reference"):
        rc, text, err = call(["summary", name, "--json"], capsys)
        assert rc == 0, err
        assert json.loads(text)["input"] == list(registry.native_input(name))


def test_registry_native_inputs():
    assert registry.native_input("vgg16") == (224, 224, 3) and registry.native_input("alexnet") == (227, 227, 3)
    assert registry.native_input("lenet5") == (32, 32, 1) and registry.native_input("googlenet_cifar") == (32, 32, 3)
    assert registry.native_input("digits_net") == (8, 8, 1) and registry.default_classes("vgg16") == 1000
    net = registry.get("vgg11_cifar", 4, 3, image_size=(32, 32), width=0.125)
    assert net.output_shape((1, 32, 32, 3)) == (1, 4) and net.build_config["name"] == "vgg11_cifar"
    with pytest.raises(ValueError, match="takes no keyword 'hiden'.*did you mean 'hidden'"):
        registry.get("digits_net", 10, 1, hiden=3)


def test_summary_of_a_run(runs, capsys):
    rc, text, _ = call(["summary", str(runs[0]), "--json"], capsys)
    assert rc == 0 and json.loads(text)["input"] == [8, 8, 1]


def test_eval_ensemble(runs, capsys):
    rc, text, _ = call(["eval", str(runs[0]), str(runs[1]), "--ensemble", "--json"], capsys)
    r = json.loads(text)
    assert rc == 0 and len(r["members"]) == 2 and r["ensemble"]["count"] == 359
    for m, path in zip(r["members"], runs, strict=True):
        summary = json.loads((path / "summary.json").read_text())
        assert m["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    assert r["ensemble"]["loss"] <= max(m["loss"] for m in r["members"])
    rc, text, _ = call(["eval", str(runs[0]), str(runs[1]), "--ensemble"], capsys)
    assert "ensemble of 2: accuracy" in text
    # --tta reaches the ensemble: flipping digits changes the probabilities
    rc, text, _ = call(["eval", str(runs[0]), str(runs[1]), "--ensemble", "--tta", "flip", "--json"], capsys)
    flipped = json.loads(text)
    assert flipped["ensemble"]["loss"] != r["ensemble"]["loss"]


def test_finetune_from_run(runs, tmp_path, capsys):
    out = tmp_path / "ft"
    # --freeze counts layers with weights (the first convolution), --freeze-layers adds one by name
    rc, _, err = call(["finetune", "--from", str(runs[0]), "--freeze", "1", "--freeze-layers", "2", "--data", "digits",
                       "--epochs", "1", "--limit", "300", "--num-classes", "10", "--out", str(out)], capsys)
    assert rc == 0 and "4 parameters frozen" in err
    info = json.loads((out / "finetune.json").read_text())
    assert info["freeze"] == 1 and info["freeze_layers"] == ["2"]
    assert info["frozen_parameters"] == ["0.weight", "0.bias", "2.weight", "2.bias"] and not info["reinitialised"]
    source = CheckpointStore(runs[0] / "checkpoints").load("best").weights
    tuned = CheckpointStore(out / "checkpoints").load("last").weights
    for k in info["frozen_parameters"]:
        np.testing.assert_array_equal(tuned[k], source[k])
    assert not np.array_equal(tuned["6.weight"], source["6.weight"])
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_finetune_onto_another_shape_never_freezes_a_reinitialised_layer(runs, tmp_path, capsys):
    """The issue's case: digits (8×8×1) onto a 16×16×3 folder with --freeze 3: the first convolution cannot be
    transferred, so it is re-initialised and stays trainable; a layer is transferred whole or not at all."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        for i in range(12):
            img = (rng.random((16, 16, 3)) * 80 + 60 * c).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "imgs" / f"c{c}" / f"{i}.png")
    out = tmp_path / "ft"
    rc, _, err = call(["finetune", "--from", str(runs[0]), "--freeze", "3", "--data", str(tmp_path / "imgs"),
                       "--epochs", "1", "--preprocess", "per-channel-mean", "--out", str(out)], capsys)
    assert rc == 0, err
    info = json.loads((out / "finetune.json").read_text())
    reinit = {r["layer"]: r for r in info["reinitialised"]}
    assert set(reinit) == {"0", "6", "8"} and "Conv2d(3→16" in reinit["0"]["class"]
    assert "shape changed" in reinit["0"]["reason"] and "(3, 3, 1, 16)" in reinit["0"]["reason"]
    assert "0.weight" not in info["frozen_parameters"] and info["frozen_parameters"] == ["2.weight", "2.bias"]
    assert "6.bias" not in info["loaded"]  # its weight changed shape: the whole layer starts afresh
    assert "the image shape changed" in err and "8×8×1" in err and "16×16×3" in err
    assert "re-initialised layer 0 Conv2d(3→16, 3×3, pad=1)" in err


def test_finetune_from_weights_file_and_errors(runs, tmp_path, capsys):
    from safetensors.numpy import save_file

    weights = CheckpointStore(runs[0] / "checkpoints").load("best").weights
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    rc, _, err = call(["finetune", "--from", str(tmp_path / "w.safetensors"), "--model", "digits_net", "--epochs",
                       "1", "--limit", "200", "--out", str(tmp_path / "ft2")], capsys)
    assert rc == 0 and "0 parameters frozen" in err
    for argv, fragment in ((["--from", str(tmp_path / "w.safetensors")], "--model"),
                           (["--from", str(runs[0]), "--num-classes", "3", "--limit", "100", "--out",
                             str(tmp_path / "ft3")], "num-classes 3"),
                           (["--from", str(runs[0]), "--freeze", "9", "--limit", "100", "--out", str(tmp_path / "ft4")],
                            "--freeze/--freeze-layers: Sequential.freeze: layers=9 is outside 0..4"),
                           (["--from", str(runs[0]), "--freeze-layers", "nope", "--limit", "100", "--out",
                             str(tmp_path / "ft5")], "no parameter named 'nope'"),
                           (["--from", str(tmp_path / "missing")], "no such run directory")):
        rc, _, err = call(["finetune", *argv], capsys)
        assert rc == 2 and fragment in err
    # float64 weights that float32 cannot hold exactly: refused unless --cast asks for the rounding
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) + 1e-9 for k, v in weights.items()},
              str(tmp_path / "w64.safetensors"))
    argv = ["finetune", "--from", str(tmp_path / "w64.safetensors"), "--model", "digits_net", "--epochs", "1",
            "--limit", "200"]
    rc, _, err = call([*argv, "--out", str(tmp_path / "ft4")], capsys)
    assert rc == 1 and "cast" in err
    assert call([*argv, "--cast", "--out", str(tmp_path / "ft5")], capsys)[0] == 0


def test_predict_dense(runs, tmp_path, capsys):
    from PIL import Image

    from striate.data import load
    from striate.run import RunDir
    from striate.train import inference

    ds = load("digits", "test")
    canvas = np.zeros((12, 14), np.uint8)
    canvas[2:10, 3:11] = ds.images[0, :, :, 0]
    Image.fromarray(canvas).save(tmp_path / "big.png")
    Image.fromarray(ds.images[1, :, :, 0]).save(tmp_path / "small.png")
    rc, text, _ = call(["predict", str(runs[0]), str(tmp_path / "big.png"), str(tmp_path / "small.png"), "--dense",
                        "--json"], capsys)
    r = [json.loads(line) for line in text.splitlines()]  # JSON Lines: one object an image
    assert rc == 0 and r[0]["positions"] == [3, 4] and r[1]["positions"] == [1, 1]
    assert sum(c["probability"] for c in r[0]["top"]) <= 1 + 1e-9
    # on a training-size image the dense prediction is the ordinary one
    t = RunDir(runs[0]).load_model()
    p = inference.probabilities(t.model, t.preprocess(ds.images[1:2]))[0]
    assert r[1]["top"][0]["index"] == int(p.argmax())
    assert r[1]["top"][0]["probability"] == pytest.approx(float(p.max()), rel=1e-5)
    rc, text, _ = call(["predict", str(runs[0]), str(tmp_path / "big.png"), "--dense"], capsys)
    assert "3×4 positions" in text


def test_dense_preprocessing_needs_per_channel_steps():
    from striate.data import DataError, MeanImage, PerChannelMean, Preprocessing, Scale

    x = np.arange(2 * 6 * 6 * 1, dtype=np.uint8).reshape(2, 6, 6, 1)
    steps = Preprocessing([Scale(1 / 255), PerChannelMean()]).fit(np.full((3, 4, 4, 1), 127, np.uint8))
    np.testing.assert_allclose(steps.any_size(x), x / np.float32(255) - np.float32(127 / 255), rtol=1e-5, atol=1e-6)
    mean = Preprocessing([MeanImage()]).fit(np.zeros((3, 4, 4, 1), np.float32))
    with pytest.raises(DataError, match="MeanImage"):
        mean.any_size(x)
