"""The notes' ideas from a run file: networks as layer lists, initialiser tables, max-norm, L1, weight averaging,
snapshot ensembles, the linear scaling rule, per-image / per-pixel standardisation, input noise, dropout TTA,
denser dense evaluation, and search over layers."""

import json

import numpy as np
import pytest

import striate as st
from striate.cli import main
from striate.run import RunDir

LAYERS = """
[model]
layers = [
  { layer = "Conv2d", out_channels = 8, kernel_size = 3, padding = 1, init = "xavier" },
  { layer = "LeakyReLU", negative_slope = 0.1 },
  { layer = "Conv2d", out_channels = 8, kernel_size = 3, padding = 1, init = "glorot", bias_init = {constant = 0.01} },
  { layer = "ELU" },
  { layer = "MaxPool2d", kernel_size = 2 },
  { layer = "Flatten" },
  { layer = "Maxout", out_features = 32, pieces = 2, init = { normal = 0.05 } },
  { layer = "Dropout", p = 0.2 },
  { layer = "Linear", init = { normal = 0.01 }, bias_init = { constant = 0.01 } },
]
"""
FAST = ["--report", "off", "--diagnostics", "0", "--limit", "400"]


def build(layers, num_classes=10, shape=(8, 8, 1)):
    h, w, c = shape
    return st.models.get("layers", num_classes, c, rng=np.random.default_rng(0), image_size=(h, w), layers=layers)


def test_a_layer_list_infers_sizes_and_the_class_count():
    net = build([{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3},
                 {"layer": "BatchNorm"}, {"layer": "PReLU", "init": 0.1},
                 {"layer": "Flatten"}, {"layer": "Linear", "init": {"sparse": 3}}])
    conv, bn, prelu, _, head = list(net)
    assert conv.in_channels == 1 and bn.num_features == 4 and head.in_features == 6 * 6 * 4
    assert head.out_features == 10 and float(prelu.alpha.data[0]) == pytest.approx(0.1)
    assert int((head.weight.data != 0).sum(axis=0).max()) == 3  # sparse(3): three inputs per unit
    assert net.forward(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 10)


def test_containers_nest():
    net = build([
        {"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"layer": "Residual", "survival": 0.8,
         "body": [{"layer": "Conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1}, {"layer": "ReLU"}],
         "shortcut": [{"layer": "Conv2d", "out_channels": 6, "kernel_size": 1}]},
        {"layer": "Concat", "branches": [[{"layer": "Conv2d", "out_channels": 2, "kernel_size": 1}],
                                         [{"layer": "MaxPool2d", "kernel_size": 3, "stride": 1},
                                          {"layer": "ZeroPad2d", "top": 1}]]},
        {"layer": "GlobalAvgPool2d"}, {"layer": "Linear"}])
    assert type(net[1]).__name__ == "Residual" and net[1].survival == 0.8
    assert net.output_shape((1, 8, 8, 1)) == (1, 10)
    assert net[2].output_shape((1, 8, 8, 6)) == (1, 8, 8, 8)


@pytest.mark.parametrize(("layers", "message"), [
    ([{"layer": "Conv2d", "out_chanels": 4, "kernel_size": 3}], r"model\.layers\[0\] \(Conv2d\): unknown keyword "
                                                                 r"'out_chanels' \(did you mean 'out_channels'\?\)"),
    ([{"layer": "Flatten"}, {"layer": "Linaer"}], r"model\.layers\[1\]: unknown layer 'Linaer' \(did you mean "
                                                  "'Linear'"),
    ([{"layer": "Flatten"}, {"layer": "Linear", "init": 0.01}], r"model\.layers\[1\] \(Linear\): init: a number "
                                                                 r"\(0\.01\) is not an initialiser"),
    ([{"layer": "Flatten"}, {"layer": "PReLU", "init": "xavier"}, {"layer": "Linear"}],
     r"model\.layers\[1\] \(PReLU\): init is PReLU's initial slope, a number"),
    ([{"layer": "Residual", "body": [{"layer": "Conv2d", "out_channels": 3, "kernel_size": 1}]},
      {"layer": "Flatten"}, {"layer": "Linear"}], r"model\.layers\[0\] \(Residual\).*shortcut"),
    ([{"layer": "Flatten"}, {"layer": "Linear", "out_features": 7}], r"expected \(10,\) class scores"),
])
def test_errors_name_the_table_and_the_keyword(layers, message):
    with pytest.raises(ValueError, match=message):
        build(layers)


def test_a_run_file_with_a_layer_list_trains_resumes_evaluates_and_records_it(tmp_path, capsys):
    import tomllib

    path = tmp_path / "run.toml"
    path.write_text("epochs = 2\nlr = 0.003\nmax_norm = 3.0\nema_decay = 0.99\n" + LAYERS)
    run = tmp_path / "r"
    assert main(["train", "--config", str(path), "--out", str(run), *FAST]) == 0
    recorded = tomllib.loads((run / "config.toml").read_text())
    assert recorded["model"]["name"] == "layers" and len(recorded["model"]["layers"]) == 9
    assert recorded["model"]["layers"][6] == {"layer": "Maxout", "out_features": 32, "pieces": 2,
                                              "init": {"normal": 0.05}}
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0
    assert main(["eval", str(run), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert evaluated["count"] == 359
    trained = RunDir(run).load_model()
    norms = np.sqrt((trained.model[0].weight.data ** 2).sum(axis=(0, 1, 2)))
    assert norms.max() <= 3.0 + 1e-5  # max-norm held through training
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["averaged"]["kind"] == "ema 0.99"
    assert main(["eval", str(run), "--weights", "averaged", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 359
    assert main(["summary", "--config", str(path)]) == 0
    assert "Maxout(128→32, pieces=2)" in capsys.readouterr().out
    assert main(["finetune", "--from", str(run), "--epochs", "1", "--out", str(tmp_path / "ft"), *FAST]) == 0


def test_weight_averaging_resumes_exactly(tmp_path):
    common = ["--augment", "flip", "--polyak", *FAST]
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "b"), *common]) == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--epochs", "2"]) == 0
    a = RunDir(tmp_path / "a").checkpoint("last").state["callbacks"]["WeightAveraging"]
    b = RunDir(tmp_path / "b").checkpoint("last").state["callbacks"]["WeightAveraging"]
    assert a["num_updates"] == b["num_updates"] and a["decay"] is None
    for k in a["shadow"]:
        np.testing.assert_array_equal(a["shadow"][k], b["shadow"][k])


def test_l1_snapshots_and_the_linear_scaling_rule(tmp_path):
    run = tmp_path / "s"
    assert main(["train", "--epochs", "3", "--snapshots", "3", "--l1", "1e-4", "--lr", "0.001",
                 "--lr-reference-batch", "32", "--batch-size", "64", "--out", str(run), *FAST]) == 0
    files = sorted((run / "snapshots").glob("snapshot-*.safetensors"))
    assert len(files) == 3
    ensemble = json.loads((run / "summary.json").read_text())["test"]["snapshot_ensemble"]
    assert ensemble["members"] == 3 and 0 < ensemble["accuracy"] <= 1
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["type"] == "iteration"]
    assert lrs[0] == pytest.approx(0.002)  # 0.001 × 64 / 32; cosine restarts bring it back each cycle
    steps = len(lrs) // 3
    assert lrs[steps] == pytest.approx(0.002) and lrs[steps - 1] < 0.0002
    assert main(["train", "--snapshots", "3", "--schedule", "step", "--out", str(tmp_path / "x"), *FAST]) == 2
    assert main(["train", "--ema-decay", "0.9", "--polyak", "--out", str(tmp_path / "y"), *FAST]) == 2


def test_per_image_and_per_pixel_standardisation():
    from striate.data import Preprocessing

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 4, 4, 3)).astype(np.uint8)
    per_image = Preprocessing.named("per-image-standardize").fit(x)(x)
    scaled = x.astype(np.float64) / 255
    want = (scaled - scaled.mean(axis=(1, 2, 3), keepdims=True)) / (scaled.std(axis=(1, 2, 3), keepdims=True) + 1e-8)
    np.testing.assert_allclose(per_image, want, rtol=1e-5, atol=1e-5)
    per_pixel = Preprocessing.named("per-pixel-standardize").fit(x)(x)
    np.testing.assert_allclose(per_pixel.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(per_pixel.std(axis=0), 1, atol=1e-3)


def test_input_noise_comes_after_the_preprocessing():
    from striate.data import DataError
    from striate.data.pipeline import augmentation

    before, after = augmentation(["flip", "noise:0.1"], (8, 8, 1))
    assert [type(s).__name__ for s in before] == ["RandomFlip"] and [type(s).__name__ for s in after] == [
        "GaussianNoise"]
    x = np.zeros((200, 8, 8, 1), np.float32)
    noisy = after[0](x, np.random.default_rng(0))
    assert abs(float(noisy.std()) - 0.1) < 0.005 and noisy.dtype == np.float32
    with pytest.raises(DataError, match="noise:σ"):
        augmentation(["noise"], (8, 8, 1))


def test_dropout_tta_averages_stochastic_passes_without_touching_training_randomness():
    from striate.train import inference

    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(16, 32, rng=rng), st.nn.ReLU(),
                           st.nn.Dropout(0.5, rng=np.random.default_rng(1)), st.nn.Linear(32, 3, rng=rng))
    x = rng.standard_normal((5, 4, 4, 1)).astype(np.float32)
    state = net[3].rng.bit_generator.state
    plain = inference.probabilities(net, x)
    mc = inference.probabilities(net, x, tta="dropout:20")
    assert net[3].rng.bit_generator.state == state  # the layer's own generator did not move
    np.testing.assert_allclose(mc.sum(axis=1), 1, rtol=1e-6)
    assert not np.allclose(mc, plain) and np.abs(mc - plain).max() < 0.5
    np.testing.assert_array_equal(mc, inference.probabilities(net, x, tta="dropout:20"))  # reproducible
    with pytest.raises(ValueError, match="no dropout layer"):
        inference.probabilities(st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(16, 3, rng=rng)), x, tta="dropout:2")


def test_dense_prediction_shifted_and_enlarged(tmp_path, capsys):
    from PIL import Image

    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r"), *FAST]) == 0
    Image.fromarray((np.random.default_rng(0).random((20, 20)) * 255).astype(np.uint8)).save(tmp_path / "big.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "big.png"), "--dense", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "big.png"), "--dense", "--dense-shift", "2",
                 "--dense-scale", "1.5", "--json"]) == 0
    out = capsys.readouterr()
    more = json.loads(out.out.splitlines()[0])
    # 20×20 → 30×30; stride 2: 12 positions per axis, and the shifted pass's 11 between them (every pixel)
    assert one["positions"] == [7, 7] and more["positions"] == [23, 23]
    assert "pads" in out.err  # digits_net pads its convolutions: the map is not the crop-by-crop result
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "big.png"), "--dense-shift", "2"]) == 2


def test_search_over_a_layer_list(tmp_path):
    from striate.search import from_dict

    doc = {"train": {"limit": 300}, "model": {"layers": [
        {"layer": "Flatten"}, {"layer": "Linear", "out_features": 16}, {"layer": "LeakyReLU", "negative_slope": 0.1},
        {"layer": "Linear"}]},
        "space": {"model.layers.2.negative_slope": {"uniform": [0.01, 0.3]},
                  "model.layers.2.layer": {"choice": ["ReLU", "ELU", "LeakyReLU"]}}}
    spec = from_dict(doc)
    config = spec.space.apply({"model.layers.2.negative_slope": 0.2, "model.layers.2.layer": "LeakyReLU"}, spec.base)
    assert config["model_options"]["layers"][2] == {"layer": "LeakyReLU", "negative_slope": 0.2}
    config = spec.space.apply({"model.layers.2.negative_slope": 0.2, "model.layers.2.layer": "ReLU"}, spec.base)
    assert config["model_options"]["layers"][2] == {"layer": "ReLU"}  # ReLU takes no negative_slope
    assert spec.base["model_options"]["layers"][2]["negative_slope"] == 0.1  # the base is untouched
    from striate.search import SearchError

    with pytest.raises(SearchError, match="index below 4"):
        from_dict({**doc, "space": {"model.layers.7.negative_slope": {"uniform": [0.01, 0.3]}}})
