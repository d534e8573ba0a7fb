"""The notes, the rest of the way (issue 23): PCA / whitening from a run, He's fan-out form, dropout's p stated as
the drop probability, the multiclass SVM loss from a run, interleaved FC→CONV shifted passes, and the summary's
im2col workspace, its footer and its whole layer names."""

import json

import numpy as np
import pytest

import striate as st
from striate.cli import main
from striate.complexity import complexity
from striate.models import registry

FAST = ["--report", "off", "--diagnostics", "0", "--limit", "300", "--epochs", "1"]


# ----- dropout's p --------------------------------------------------------------------------------------------
def test_dropout_states_that_p_is_the_drop_probability():
    from striate.nn.dropout import DropConnect, Dropout, Dropout2d

    assert repr(Dropout(0.2)) == "Dropout(p=0.2, drops 20%)"
    assert "drops 50%" in repr(Dropout2d(0.5)) and "drops 25%" in repr(DropConnect(4, 3, p=0.25))
    assert "KEEPING" in st.nn.dropout.__doc__ and "drop probability" in Dropout.__doc__
    x = np.ones((2000, 10), np.float32)
    kept = np.mean(Dropout(0.2, rng=np.random.default_rng(0))(x) != 0)
    assert abs(kept - 0.8) < 0.02  # p = 0.2 keeps 80 %


# ----- He's fan-out form --------------------------------------------------------------------------------------
def test_he_fan_out_has_the_notes_std():
    f, c_in, n_out = 3, 16, 64
    w = st.nn.init.get("he_fan_out")((f, f, c_in, n_out), np.random.default_rng(0))
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(np.sqrt(2 / (f * f * n_out)), rel=0.02)
    assert w.std() != pytest.approx(np.sqrt(2 / (f * f * c_in)), rel=0.2)  # not the fan-in form
    conv = st.nn.Conv2d(c_in, n_out, f, init="he_fan_out", rng=np.random.default_rng(1))
    assert conv.weight.data.std() == pytest.approx(np.sqrt(2 / (f * f * n_out)), rel=0.02)


def test_he_fan_out_from_a_run_file_layer_list():
    net = st.models.get("layers", 10, 1, rng=np.random.default_rng(0), image_size=(8, 8), layers=[
        {"layer": "Conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "init": "he_fan_out"},
        {"layer": "ReLU"}, {"layer": "Flatten"}, {"layer": "Linear"}])
    assert net[0].weight.data.std() == pytest.approx(np.sqrt(2 / (9 * 32)), rel=0.1)


# ----- the summary --------------------------------------------------------------------------------------------
def test_summary_counts_the_im2col_workspace():
    net = st.nn.Sequential(st.nn.Conv2d(3, 8, 5, rng=np.random.default_rng(0)), st.nn.ReLU(),
                           st.nn.Conv2d(8, 8, 1, rng=np.random.default_rng(0)), st.nn.Flatten())
    table = complexity(net, (12, 12, 3))
    m = table.training_memory(4, "sgd", threads=1)
    assert m.workspace == 2 * 4 * (8 * 8 * 5 * 5 * 3) * 4  # the 5×5 conv's columns (the 1×1 needs none), ×2
    assert m.total == m.activations + m.workspace + m.parameters + m.gradients
    assert "im2col workspace" in str(m)
    assert table.training_memory(4, "sgd", threads=2).workspace == 2 * m.workspace  # one buffer per thread


def test_summary_footer_explains_the_notes_vgg16_figure_and_names_are_whole(tmp_path, capsys):
    net = st.nn.Sequential(st.nn.Conv2d(3, 96, 3, rng=np.random.default_rng(0)), st.nn.ReLU(),
                           st.nn.LocalResponseNorm(5, alpha=0.0005, beta=0.75, k=2),
                           st.nn.GroupedConv2d(96, 256, 5, padding=2, groups=2, rng=np.random.default_rng(0)))
    text = str(complexity(net, (9, 9, 3)))
    assert "LocalResponseNorm(size=5, alpha=0.0005, beta=0.75, k=2)" in text
    assert "GroupedConv2d(96→256, 5×5, groups=2, pad=2)" in text
    assert "ReLU, dropout and Flatten outputs" in text
    path = tmp_path / "run.toml"
    path.write_text('data = "digits"\n')
    assert main(["summary", "--config", str(path)]) == 0
    assert "im2col workspace" in capsys.readouterr().out
    with st.nn.init.shapes_only():  # shapes and counts, no 138 M weights
        vgg = registry.get("vgg16", 1000, 3, rng=np.random.default_rng(0))
    text = str(complexity(vgg, (224, 224, 3)))
    assert "110.0 MiB" in text and "51.8 MiB of them are ReLU" in text and "58.1 MiB without them" in text
    assert "~93 MB" in text


# ----- FC→CONV shifted passes ---------------------------------------------------------------------------------
def _stride4_net():
    rng = np.random.default_rng(0)
    return st.nn.Sequential(st.nn.Conv2d(1, 4, 5, rng=rng), st.nn.ReLU(), st.nn.MaxPool2d(2),
                            st.nn.Conv2d(4, 6, 3, rng=rng), st.nn.ReLU(), st.nn.MaxPool2d(2), st.nn.Flatten(),
                            st.nn.Linear(24, 5, rng=rng)).eval()


def test_shifted_passes_interleave_from_the_top_left():
    from striate.models import crop_scores, dense_map, dense_predict
    from striate.nn.losses import softmax

    net = _stride4_net()
    img = np.random.default_rng(1).standard_normal((2, 26, 26, 1)).astype(np.float32)
    # 26 does not tile (26 − 16 is not a multiple of 4): the unshifted pass sits at 0, 4, 8, the shifted one at
    # 2, 6, 10 — one map every 2 pixels, the crops' own scores (a centred first pass would sit at 1, 5, 9)
    fine = dense_map(net, img, (16, 16, 1), shifts=2)
    reference = crop_scores(net, img, (16, 16), 2)
    assert fine.shape == (2, 6, 6, 5) == reference.shape
    np.testing.assert_allclose(fine, reference, rtol=1e-4, atol=1e-5)
    probs, scores = dense_predict(net, img, (16, 16, 1), shifts=2)
    assert scores.shape == (2, 6, 6, 5)
    expected = softmax(reference.reshape(-1, 5).astype(np.float64)).reshape(2, -1, 5).mean(axis=1)
    np.testing.assert_allclose(probs, expected, rtol=1e-4)
    np.testing.assert_allclose(dense_map(net, img, (16, 16, 1)), crop_scores(net, img, (16, 16), 4),
                               rtol=1e-4, atol=1e-5)  # one pass: every 4 pixels from the corner
    four = dense_map(net, img, (16, 16, 1), shifts=4)  # every pixel
    np.testing.assert_allclose(four, crop_scores(net, img, (16, 16), 1)[:, :four.shape[1], :four.shape[2]],
                               rtol=1e-4, atol=1e-5)


# ----- PCA and whitening from a run ---------------------------------------------------------------------------
VECTOR_NET = """
[model]
layers = [{ layer = "Flatten" }, { layer = "Linear", out_features = 32 }, { layer = "ReLU" }, { layer = "Linear" }]
"""


def test_whitening_from_a_run_file_is_saved_and_repeated(tmp_path, capsys):
    from striate.data import Whitening
    from striate.run import RunDir

    path = tmp_path / "run.toml"
    path.write_text('data = "digits"\npreprocess = "whiten"\nn_components = 16\nwhiten_eps = 0.1\n' + VECTOR_NET)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), *FAST]) == 0
    trained = RunDir(tmp_path / "r").load_model()
    step = trained.preprocess.steps[-1]
    assert isinstance(step, Whitening) and step.kind == "pca" and step.eps == 0.1 and step.n_components == 16
    assert step.matrix_.shape == (64, 16)
    assert trained.model.output_shape((1, 1, 1, 16)) == (1, 10)  # the net was built for 16-value vectors
    assert "preprocess = \"whiten\"" in (tmp_path / "r" / "config.toml").read_text()
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r"), "--json"]) == 0  # eval repeats the fitted whitening
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(summary["test"]["accuracy"])


def test_pca_from_the_command_line_and_bad_combinations(tmp_path, capsys):
    from striate.data import PCA
    from striate.run import RunDir

    path = tmp_path / "net.toml"
    path.write_text('data = "digits"\n' + VECTOR_NET)
    assert main(["train", "--config", str(path), "--preprocess", "pca", "--n-components", "20",
                 "--out", str(tmp_path / "r"), *FAST]) == 0
    step = RunDir(tmp_path / "r").load_model().preprocess.steps[-1]
    assert isinstance(step, PCA) and step.components_.shape == (20, 64)
    capsys.readouterr()
    assert main(["train", "--preprocess", "zca", "--n-components", "3", "--out", str(tmp_path / "x"), *FAST]) == 2
    assert "n_components = 3 goes with preprocess pca or whiten" in capsys.readouterr().err
    assert main(["train", "--preprocess", "pca", "--out", str(tmp_path / "y"), *FAST]) == 2  # digits_net pools
    assert "use a model that takes vectors" in capsys.readouterr().err
    assert main(["train", "--preprocess", "whiten", "--whiten-eps", "-1", "--out", str(tmp_path / "z"), *FAST]) == 2
    assert main(["train", "--config", str(path), "--preprocess", "pca", "--n-components", "65",
                 "--out", str(tmp_path / "w"), *FAST]) == 2
    assert "exceeds the 64 values" in capsys.readouterr().err


def test_zca_keeps_images_for_a_conv_net(tmp_path):
    from striate.run import RunDir

    assert main(["train", "--preprocess", "zca", "--whiten-eps", "0.1", "--out", str(tmp_path / "r"), *FAST]) == 0
    trained = RunDir(tmp_path / "r").load_model()
    x = trained.preprocess(np.zeros((2, 8, 8, 1), np.uint8))
    assert x.shape == (2, 8, 8, 1) and trained.preprocess.steps[-1].kind == "zca"


# ----- the multiclass SVM loss --------------------------------------------------------------------------------
def test_svm_loss_from_the_command_line_and_run_files(tmp_path, capsys):
    from striate.nn.losses import MulticlassSVM
    from striate.run import RunDir

    assert main(["train", "--loss", "svm", "--out", str(tmp_path / "r"), *FAST]) == 0
    assert 'loss = "svm"' in (tmp_path / "r" / "config.toml").read_text()
    trained = RunDir(tmp_path / "r").load_model()
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    from striate.run.data import split_arrays
    from striate.train import inference

    images, labels, *_ = split_arrays(trained.config, "test")
    scores = inference.scores(trained.model, trained.preprocess(images))
    assert result["loss"] == pytest.approx(MulticlassSVM()(scores, labels), rel=1e-5)  # the hinge loss, not CE
    path = tmp_path / "svm.toml"
    path.write_text('loss = "svm"\nlabel_smoothing = 0.1\n')
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "x"), *FAST]) == 2
    assert main(["train", "--loss", "svm", "--tta", "flip", "--out", str(tmp_path / "y"), *FAST]) == 2
    assert main(["eval", str(tmp_path / "r"), "--tta", "flip"]) == 2
    assert "not probabilities" in capsys.readouterr().err


# ----- batch norm and dropout in the zoo ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reference", *(f"vgg{d}_bn" for d in (11, 13, 16, 19)),
                                  *(f"vgg{d}_cifar" for d in (11, 13, 16, 19))])
def test_no_batch_norm_of_the_zoo_follows_a_dropout(name):
    """The README's reason for keeping both in these nets: every dropout comes after the last BatchNorm, so no
    BatchNorm's statistics see dropout's training-time variance (Li et al. 2019's variance shift)."""
    from striate.nn.dropout import Dropout
    from striate.nn.norm import BatchNorm

    with st.nn.init.shapes_only():
        net = registry.get(name, 10, 3, rng=np.random.default_rng(0))
    kinds = [type(m) for m in net.modules() if isinstance(m, Dropout | BatchNorm)]
    assert BatchNorm in kinds and Dropout in kinds
    assert max(i for i, k in enumerate(kinds) if k is BatchNorm) < kinds.index(Dropout)
