"""ONNX export (`st.models.export_onnx`, `striate export`): onnxruntime runs each exported graph and matches
striate's eval-mode output within 1e-5 of the output's scale, for every zoo model (built small; through the API
and as a run through `striate export --with-preprocessing`), for networks holding every layer class of striate.nn
(non-square kernels, strides and images; both opsets of GELU; BatchNorm folded and not), on batches of 1 and 3
from one file; the run's fitted preprocessing in the graph; the command line round trip on a trained run; and
layers without an ONNX equivalent refused by name."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.cli import main
from striate.data.pipeline import PREPROCESS, VECTORS, Preprocessing
from striate.models import registry
from striate.models.export.layers import CONVERTERS

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TOLERANCE = 1e-5  # of the output's scale (its largest magnitude)


def run_onnx(path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["scores"], {"images": x})[0]


def striate_out(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with st.no_grad():
        return model.forward(x)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    scale = float(np.abs(want).max())
    assert scale > 0
    err = float(np.abs(got - want).max())
    assert err <= TOLERANCE * scale, f"max error {err:.3g} at output scale {scale:.3g}"


def randomise(net, rng):
    """Non-trivial BatchNorm statistics and parameters, γ of both signs."""
    for m in net.modules():
        if type(m) is nn.BatchNorm:
            c = m.num_features
            m.gamma.data[...] = rng.uniform(0.5, 1.5, c) * np.where(rng.random(c) < 0.3, -1, 1)
            m.beta.data[...] = rng.normal(0, 0.3, c)
            m.running_mean[...] = rng.normal(0, 0.3, c)
            m.running_var[...] = rng.uniform(0.3, 3.0, c)
    return net


def check_export(model, shape, tmp_path, rng, **kw):
    """Export once, then batches of 3 and 1 through onnxruntime against striate."""
    path = tmp_path / "model.onnx"
    st.models.export_onnx(model, path, shape, **kw)
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    want = striate_out(model, x)
    assert_close(run_onnx(path, x), want)
    assert_close(run_onnx(path, x[1:2]), striate_out(model, x[1:2]))
    return path


# ----- every zoo model --------------------------------------------------------------------------------------
LAYERS = [{"layer": "Conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1}, {"layer": "BatchNorm"},
          {"layer": "ReLU"}, {"layer": "MaxPool2d", "kernel_size": 2}, {"layer": "Flatten"}, {"layer": "Linear"}]


def small(name: str, rng):
    """Zoo model `name` small: 1/8 width (1/4 for the 32×32 ones) and the smallest image it builds for."""
    own = registry.keywords(name) or {}
    h, w, c = registry.native_input(name) or (32, 32, 3)
    kw = {"layers": LAYERS} if name == "layers" else {}
    if "width" in own:
        kw["width"] = 0.125 if h > 64 else 0.25
    for size in [s for s in (32, 64, 67) if s < h] + [h]:  # 67: AlexNet's 11×11 stride-4 stem tiles it
        try:
            return st.models.get(name, 10, c, rng=rng, image_size=size, **kw), (size, size if h == w else w, c)
        except ValueError:
            continue
    raise AssertionError(f"{name} builds at no small size")


def as_run(model, shape, directory, pixels) -> str:
    """A run directory holding `model` (built by the registry) and a standardisation fitted on `pixels`, as
    `striate train` writes one (its checkpoint's meta data and weights; the default configuration)."""
    from striate.run import RunDir

    run = RunDir(directory)
    pre = Preprocessing.named("standardize").fit(pixels)
    meta = RunDir.make_meta(model, pre, [f"class {i}" for i in range(10)], shape, "synthetic")
    run.store.save(model.state_dict(), {"meta": meta}, tags=("last",))
    (run / RunDir.CONFIG_JSON).write_text("{}")
    return str(run)


@pytest.mark.parametrize("name", registry.names())
def test_every_zoo_model(name, tmp_path, rng):
    """The model's own input (float32, the API), then `striate export --with-preprocessing` of it as a run
    (uint8 pixels)."""
    from striate.run import RunDir

    model, shape = small(name, rng)
    check_export(randomise(model, rng), shape, tmp_path, rng)
    pixels = rng.integers(0, 256, (8, *shape), dtype=np.uint8)
    run = as_run(model, shape, tmp_path / "run", pixels)
    assert main(["export", run, str(tmp_path / "cli.onnx"), "--with-preprocessing"]) == 0
    trained = RunDir(run).load_model()
    want = striate_out(trained.model, trained.preprocess(pixels[:3]))
    assert_close(run_onnx(tmp_path / "cli.onnx", pixels[:3]), want)
    assert_close(run_onnx(tmp_path / "cli.onnx", pixels[2:3]), want[2:3])


# ----- every layer class ------------------------------------------------------------------------------------
def conv_branch(cin, cout, act, rng, kernel=3, pad=1):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, rng=rng), act)


def every_layer_images(rng) -> nn.Sequential:
    """(N, 21, 16, 3) images through non-square kernels, strides and windows, both roundings, every layer."""
    return nn.Sequential(
        nn.ChannelAffine((1.5, -0.5, 2.0), (0.1, 0.2, -0.3)), nn.ZeroPad2d(1, 2, 0, 1),  # → 24×17
        nn.Conv2d(3, 8, (3, 2), stride=2, padding=1, rounding="floor", rng=rng),  # → 12×9
        nn.BatchNorm(8), nn.PReLU(8, init=0.2),
        nn.GroupedConv2d(8, 8, 3, padding=1, groups=2, rng=rng), nn.BatchNorm(8), nn.LeakyReLU(0.1),
        nn.MaxPool2d((3, 2), stride=2, rounding="ceil"),  # → 6×5, the last windows past the edge
        nn.LocalResponseNorm(3, alpha=1e-2, beta=0.75, k=2.0),
        nn.Concat(conv_branch(8, 4, nn.ELU(0.7), rng, kernel=1, pad=0),
                  nn.Sequential(nn.ZeroPad2d(1), nn.AvgPool2d(3, stride=1), conv_branch(8, 4, nn.GELU(), rng)),
                  conv_branch(8, 4, nn.Sigmoid(), rng)),  # → 6×5×12
        nn.Residual(nn.Sequential(nn.Conv2d(12, 12, 3, padding=1, rng=rng), nn.BatchNorm(12), nn.ReLU(),
                                  nn.Conv2d(12, 12, 3, padding=1, rng=rng))),
        nn.Residual(conv_branch(12, 16, nn.Tanh(), rng), shortcut=nn.Conv2d(12, 16, 1, rng=rng), survival=0.8),
        nn.Dropout2d(0.3),
        nn.LocalResponseNorm(4, alpha=0.05, beta=0.6, k=1.5),  # an even window
        nn.FractionalMaxPool2d(0.7),  # → 4×3
        nn.AvgPool2d((3, 2), stride=2, rounding="ceil"),  # → 2×2, the last windows averaging what is inside
        nn.Flatten(), nn.Dropout(0.5),
        nn.Linear(64, 20, rng=rng), nn.BatchNorm(20), nn.GELU("tanh"),
        nn.DropConnect(20, 18, p=0.3, rng=rng), nn.BatchNorm(18), nn.PReLU(1, init=0.1),
        nn.Maxout(18, 10, pieces=3, rng=rng),
    )


def every_layer_pooled(rng) -> nn.Sequential:
    """(N, 11, 14, 2) images to a global average, then the per-channel layers on (N, C) vectors."""
    return nn.Sequential(
        nn.PatchWhitening(2, rng=rng), nn.Scale(0.75),  # → 10×13×16
        nn.Conv2d(16, 6, (2, 3), rng=rng), nn.MaxPool2d(2, rounding="floor"), nn.BatchNorm(6), nn.ReLU(),  # 4×5
        nn.GlobalAvgPool2d(), nn.BatchNorm(6), nn.LocalResponseNorm(3, alpha=0.1, beta=0.5, k=1.0),
        nn.PReLU(6), nn.Sigmoid(), nn.Linear(6, 5, bias=False, rng=rng))


def test_the_networks_hold_every_layer_class(rng):
    held = {type(m) for net in (every_layer_images(rng), every_layer_pooled(rng)) for m in net.modules()}
    assert set(CONVERTERS) <= held, sorted(c.__name__ for c in set(CONVERTERS) - held)
    classes = {getattr(nn, n) for n in nn.__all__ if isinstance(getattr(nn, n), type)
               and issubclass(getattr(nn, n), nn.Module) and n not in ("Module",)}
    losses = {nn.L1, nn.L2, nn.MulticlassSVM, nn.SoftmaxCrossEntropy}
    assert classes - losses == set(CONVERTERS), "a layer class of striate.nn without a converter"


@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize("fold", [True, False])
def test_every_layer_class(opset, fold, tmp_path, rng):
    net = randomise(every_layer_images(rng), rng)
    check_export(net, (21, 16, 3), tmp_path, rng, opset=opset, fold_batchnorm=fold)
    net = randomise(every_layer_pooled(rng), rng)
    check_export(net, (11, 14, 2), tmp_path, rng, opset=opset, fold_batchnorm=fold)


def test_layouts_meet(tmp_path, rng):
    """Per-channel layers on NHWC values (before any convolution), branches and sums whose inputs come in
    different layouts (an empty branch passes NHWC, a convolution gives NCHW), a Flatten right after NCHW."""
    net = nn.Sequential(
        nn.PReLU(3), nn.BatchNorm(3), nn.Concat(nn.Sequential(), nn.Conv2d(3, 2, 3, padding=1, rng=rng)),
        nn.Residual(nn.Sequential(nn.Conv2d(5, 5, 1, rng=rng)), shortcut=nn.Sequential(nn.Tanh())),
        nn.Residual(nn.Sequential(nn.ReLU())), nn.Flatten(), nn.Linear(5 * 4 * 7, 4, rng=rng))
    check_export(randomise(net, rng), (4, 7, 3), tmp_path, rng)


def test_batchnorm_folded_or_not(tmp_path, rng):
    import onnx

    model, shape = small("reference", rng)
    randomise(model, rng)
    for fold, affine in ((True, 0), (False, 6)):
        path = check_export(model, shape, tmp_path, rng, fold_batchnorm=fold)
        names = [i.name for i in onnx.load(str(path)).graph.initializer]
        assert sum("bn_scale" in n for n in names) == affine  # the six BatchNorms as x·s + t, or folded away


def test_a_model_in_training_mode_exports_its_eval_forward(tmp_path, rng):
    net = randomise(every_layer_images(rng), rng).train()
    st.models.export_onnx(net, tmp_path / "m.onnx", (21, 16, 3))
    assert all(m.training for m in net.modules())  # the caller's modes are left as they were
    x = rng.standard_normal((2, 21, 16, 3)).astype(np.float32)
    assert_close(run_onnx(tmp_path / "m.onnx", x), striate_out(net, x))


def test_vectors_in(tmp_path, rng):
    net = nn.Sequential(nn.Linear(7, 9, rng=rng), nn.BatchNorm(9), nn.ELU(), nn.Linear(9, 3, rng=rng))
    check_export(randomise(net, rng), (7,), tmp_path, rng)


# ----- preprocessing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PREPROCESS))
def test_preprocessing_in_the_graph(name, tmp_path, rng):
    """Each named preprocessing, fitted, in front of the model: the graph takes the uint8 pixels."""
    shape = (6, 5, 3)
    pixels = rng.integers(0, 256, (40, *shape), dtype=np.uint8)
    pre = Preprocessing.named(name, 12 if name in VECTORS else 0).fit(pixels)
    h, w, c = pre.output_shape(shape)
    net = nn.Sequential(nn.Conv2d(c, 4, 1, rng=rng), nn.ReLU(), nn.Flatten(), nn.Linear(h * w * 4, 3, rng=rng))
    path = tmp_path / "pre.onnx"
    st.models.export_onnx(net, path, shape, preprocessing=pre)
    x = rng.integers(0, 256, (3, *shape), dtype=np.uint8)
    assert_close(run_onnx(path, x), striate_out(net, pre(x)))
    assert_close(run_onnx(path, x[:1]), striate_out(net, pre(x[:1])))


def test_preprocessing_must_be_fitted_for_the_shape(tmp_path, rng):
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 2, rng=rng))
    with pytest.raises(ValueError, match="not fitted"):
        st.models.export_onnx(net, tmp_path / "m.onnx", (4, 4, 3), preprocessing=Preprocessing.named("mean-image"))
    pre = Preprocessing.named("mean-image").fit(rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"fitted on samples of shape \(4, 4, 3\)"):
        st.models.export_onnx(net, tmp_path / "m.onnx", (4, 3, 4), preprocessing=pre)
    assert not (tmp_path / "m.onnx").exists()


# ----- refusals ---------------------------------------------------------------------------------------------
class Swish(nn.Module):
    def forward(self, x):
        return x / (1 + np.exp(-x))


class ShiftedReLU(nn.ReLU):  # a subclass may compute differently: refused, not exported as its parent
    def forward(self, x):
        return super().forward(x) - 1


@pytest.mark.parametrize("layer, named", [(Swish(), "layer 3 Swish()"), (ShiftedReLU(), "layer 3 ShiftedReLU()")])
def test_unsupported_layer_is_refused_by_name(layer, named, tmp_path, rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.ReLU(), nn.Flatten(), layer, nn.Linear(8, 2, rng=rng))
    with pytest.raises(ValueError, match=re.escape(f"export_onnx: {named} has no ONNX equivalent")):
        st.models.export_onnx(net, tmp_path / "m.onnx", (4, 6, 1))
    nested = nn.Sequential(nn.Residual(nn.Sequential(nn.ReLU(), Swish())))
    with pytest.raises(ValueError, match=r"layer 0\.body\.1 Swish\(\)"):
        st.models.export_onnx(nested, tmp_path / "m.onnx", (3,))
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments(tmp_path, rng):
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2, rng=rng))
    for shape in [(1, 2, 2, 3), (2, 0, 3), "223"]:
        with pytest.raises(ValueError, match="input_shape must be one sample's shape"):
            st.models.export_onnx(net, tmp_path / "m.onnx", shape)
    with pytest.raises(st.nn.LayerError):
        st.models.export_onnx(net, tmp_path / "m.onnx", (2, 2, 2))
    with pytest.raises(ValueError, match="opset must be an integer from 13"):
        st.models.export_onnx(net, tmp_path / "m.onnx", (2, 2, 3), opset=9)
    with pytest.raises(TypeError, match="expected a striate model"):
        st.models.export_onnx(lambda x: x, tmp_path / "m.onnx", (2, 2, 3))
    with pytest.raises(ValueError, match="float32"):
        st.models.export_onnx(net.to(np.float64), tmp_path / "m.onnx", (2, 2, 3))


def test_import_striate_does_not_import_onnx():
    code = ("import sys, striate, striate.models, striate.cli; striate.cli.build_parser(); "
            "print('onnx' in sys.modules, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ----- the command line -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "--data", "digits", "--epochs", "1", "--out", str(out), "--seed", "3",
                 "--preprocess", "standardize"]) == 0
    return out


def test_cli_round_trip(run_dir, tmp_path, capsys):
    from striate.data import load
    from striate.run import RunDir

    trained = RunDir(run_dir).load_model("last")
    pixels = load("digits", "test").images[:3]
    want = striate_out(trained.model, trained.preprocess(pixels))
    assert main(["export", str(run_dir), str(tmp_path / "m.onnx"), "--checkpoint", "last"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert_close(run_onnx(tmp_path / "m.onnx", trained.preprocess(pixels)), want)
    assert main(["export", str(run_dir), str(tmp_path / "p.onnx"), "--checkpoint", "last",
                 "--with-preprocessing", "--opset", "20"]) == 0
    assert "uint8 pixels" in capsys.readouterr().out
    assert_close(run_onnx(tmp_path / "p.onnx", pixels), want)
    assert_close(run_onnx(tmp_path / "p.onnx", pixels[:1]), want[:1])


def test_cli_errors(run_dir, tmp_path, capsys):
    """One `striate export: error:` line each, the documented status, nothing written."""
    out = str(tmp_path / "m.onnx")
    assert main(["export", str(run_dir), out, "--opset", "12"]) == 2
    assert main(["export", str(tmp_path / "nowhere"), out]) == 2
    assert main(["export", str(run_dir), str(tmp_path / "no" / "m.onnx")]) == 1
    with pytest.raises(SystemExit) as usage:
        main(["export", str(run_dir), out, "--checkpoint", "middle"])
    assert usage.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(e.startswith("striate export: error: ") for e in err), err
    assert "opset must be an integer from 13" in err[0] and "not a run directory" in err[1]
    assert "no such directory for the output" in err[2] and "invalid choice" in err[3]
    assert not list(tmp_path.rglob("*.onnx"))


def test_cli_refuses_a_layer_by_name(run_dir, tmp_path, capsys, monkeypatch):
    from striate.run import RunDir

    load = RunDir.load_model

    def with_swish(self, *args, **kwargs):
        trained = load(self, *args, **kwargs)
        trained.model.relist([*trained.model][:3] + [Swish()] + [*trained.model][3:])
        return trained

    monkeypatch.setattr(RunDir, "load_model", with_swish)
    assert main(["export", str(run_dir), str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("striate export: error: layer 3 Swish() has no ONNX equivalent")
    assert not (tmp_path / "m.onnx").exists()
