"""`striate finetune --freeze all`, the ConvNet as a fixed feature extractor: CNN codes computed once and cached
(a changed source or data computes them again), the head trained on them equal to the head an ordinary fine-tune
with every other layer frozen trains, the run usable as any other (eval, predict, resume), the refusals."""

import json

import numpy as np
import pytest

from striate.cli import main
from striate.train.checkpoint import CheckpointStore

QUIET = ["--report", "off", "--diagnostics", "0"]


def call(argv, capsys):
    """(exit status, stdout, stderr) of `striate ARGV`."""
    capsys.readouterr()
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A data cache of the module's own, so that the codes found there are the ones these tests computed."""
    path = tmp_path_factory.mktemp("codes_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRIATE_DATA", str(path))
        yield path


@pytest.fixture(scope="module")
def sources(cache, tmp_path_factory):
    """Two short digits runs (digits_net: convolutions, then Linear 512→64, ReLU, Linear 64→10; no dropout, no
    BatchNorm) with different seeds: the sources."""
    base = tmp_path_factory.mktemp("sources")
    out = []
    for seed in (1, 2):
        path = base / f"src{seed}"
        assert main(["train", "--out", str(path), "--epochs", "1", "--limit", "300", "--seed", str(seed), *QUIET]) == 0
        out.append(path)
    return out


def finetune(source, out, capsys, *extra, freeze="all"):
    return call(["finetune", "--from", str(source), "--freeze", freeze, "--data", "digits", "--limit", "200",
                 "--epochs", "1", "--batch-size", "16", "--out", str(out), *QUIET, *extra], capsys)


def weights(run, tag="last"):
    return CheckpointStore(run / "checkpoints").load(tag).weights


def entries(cache):
    return {p.name: p.stat().st_mtime_ns for p in (cache / "codes").glob("*.npy")}


def test_codes_are_computed_once_and_reused(cache, sources, tmp_path, capsys):
    rc, _, err = finetune(sources[0], tmp_path / "a", capsys)
    assert rc == 0, err
    assert err.count("and cached in") == 2 and "read from" not in err  # training and validation codes
    first = entries(cache)
    rc, _, err = finetune(sources[0], tmp_path / "b", capsys)  # another head on the same codes: read back
    assert rc == 0 and err.count("read from") == 2 and "computed" not in err
    assert entries(cache) == first
    for k, v in weights(tmp_path / "a").items():
        np.testing.assert_array_equal(weights(tmp_path / "b")[k], v)
    rc, _, err = finetune(sources[1], tmp_path / "c", capsys)  # another source: other weights, other codes
    assert rc == 0 and err.count("and cached in") == 2
    rc, _, err = finetune(sources[0], tmp_path / "d", capsys, "--val-fraction", "0.2")  # other images
    assert rc == 0 and err.count("and cached in") == 2
    rc, _, err = finetune(sources[0], tmp_path / "e", capsys, "--preprocess", "standardize")  # other inputs
    assert rc == 0 and err.count("and cached in") == 2
    assert len(entries(cache)) == 8
    damaged = next(iter(first))
    (cache / "codes" / damaged).write_bytes(b"not an npy file")  # a damaged entry is computed again
    rc, _, err = finetune(sources[0], tmp_path / "f", capsys)
    assert rc == 0 and err.count("and cached in") == 1 and err.count("read from") == 1
    assert np.load(cache / "codes" / damaged, allow_pickle=False).dtype == np.float32


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_head_on_codes_equals_ordinary_finetune_with_the_body_frozen(sources, tmp_path, capsys, loss):
    """One epoch, the same data order: the head trained on the codes equals the head `--freeze 3` trains through
    the whole network (digits_net has 4 layers with weights), within float32 rounding; the body is the source's.
    SGD, because Adam divides each gradient by its own running scale: a code that is nearly always zero then turns
    a rounding difference of the codes (eval mode's fused bias + ReLU, other batch sizes) into a visible one
    (measured: 1e-5 on weights of 0.06, a hundredth of the learning rate)."""
    opt = ["--loss", loss, "--optimizer", "sgd", "--lr", "0.05"]
    rc, _, err = finetune(sources[0], tmp_path / "codes", capsys, *opt)
    assert rc == 0, err
    rc, _, err = finetune(sources[0], tmp_path / "whole", capsys, *opt, freeze="3")
    assert rc == 0, err
    codes, whole, source = weights(tmp_path / "codes"), weights(tmp_path / "whole"), weights(sources[0], "best")
    assert set(codes) == set(whole) == set(source)
    for k in ("0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"):
        np.testing.assert_array_equal(codes[k], source[k])
    for k in ("8.weight", "8.bias"):
        assert not np.array_equal(codes[k], source[k])  # the head trained
        np.testing.assert_allclose(codes[k], whole[k], rtol=1e-5, atol=1e-6 * np.abs(whole[k]).max())
    info = json.loads((tmp_path / "codes" / "finetune.json").read_text())
    assert info["freeze"] == "all" and info["frozen_parameters"] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                                                      "6.weight", "6.bias"]
    summary = json.loads((tmp_path / "codes" / "summary.json").read_text())
    assert summary["status"] == "finished" and 0 <= summary["test"]["accuracy"] <= 1


def test_the_run_evaluates_predicts_and_resumes_as_any_run(sources, tmp_path, capsys):
    from PIL import Image

    from striate.data import load
    from striate.run import RunDir

    run, whole = tmp_path / "run", tmp_path / "whole"
    assert finetune(sources[0], run, capsys)[0] == 0
    rc, text, _ = call(["eval", str(run), "--json"], capsys)
    summary = json.loads((run / "summary.json").read_text())
    assert rc == 0 and json.loads(text)["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    ds = load("digits", "test")
    Image.fromarray(ds.images[0, :, :, 0]).save(tmp_path / "digit.png")
    rc, text, _ = call(["predict", str(run), str(tmp_path / "digit.png"), "--json"], capsys)
    t = RunDir(run).load_model()
    expected = int(t.model.forward(t.preprocess(ds.images[:1]))[0].argmax())
    assert rc == 0 and json.loads(text)["top"][0]["index"] == expected
    # a resume goes on training the head on the (cached) codes, exactly as one run of as many epochs
    rc, _, err = call(["train", "--resume", str(run), "--epochs", "2"], capsys)
    assert rc == 0 and err.count("read from") == 2, err
    assert finetune(sources[0], whole, capsys, "--epochs", "2")[0] == 0
    for k, v in weights(whole).items():
        np.testing.assert_array_equal(weights(run)[k], v)


def test_bad_combinations_are_one_error_line(sources, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "imgs" / f"c{c}").mkdir(parents=True)
        for i in range(6):
            Image.fromarray((rng.random((16, 16, 3)) * 80 + 60 * c).astype(np.uint8)).save(
                tmp_path / "imgs" / f"c{c}" / f"{i}.png")
    cases = [(["--augment", "flip"], "--freeze all cannot augment (flip)"),
             (["--tta", "flip"], "--freeze all takes no --tta"),
             (["--freeze-layers", "0"], "drop --freeze-layers"),
             (["--freeze", "most"], "--freeze 'most' is not an integer or 'all'"),
             (["--data", str(tmp_path / "imgs"), "--val-fraction", "0"],  # the first convolution cannot transfer
              "layer 0 Conv2d(3→16, 3×3, pad=1) could not be transferred")]
    for i, (extra, fragment) in enumerate(cases):
        rc, _, err = finetune(sources[0], tmp_path / f"bad{i}", capsys, *extra)
        lines = err.strip().splitlines()
        assert rc == 2 and lines[-1].startswith("striate finetune: error:") and fragment in lines[-1], err
        assert not [line for line in lines if "Traceback" in line or "error" in line and line != lines[-1]]


def test_freeze_all_in_a_run_file_and_the_option_table(sources, tmp_path, capsys):
    from striate.run import config as cfg

    assert cfg.resolve({"freeze": "all"}, command="finetune")["freeze"] == "all"
    assert cfg.resolve({"freeze": "ALL"}, command="finetune")["freeze"] == "all"
    assert cfg.resolve({"freeze": 2}, command="finetune")["freeze"] == 2
    with pytest.raises(cfg.ConfigError, match="freeze = -1: must be ≥ 0"):
        cfg.resolve({"freeze": -1}, command="finetune")
    (tmp_path / "run.toml").write_text(f'from = "{sources[0]}"\nfreeze = "all"\ndata = "digits"\nlimit = 200\n'
                                       'epochs = 1\nreport = "off"\ndiagnostics = 0\n')
    rc, _, err = call(["finetune", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "r")], capsys)
    assert rc == 0 and "CNN codes" in err, err
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "all: the ConvNet as a fixed feature extractor" in text and "augmentation, tta and --freeze-layers are" \
        " refused" in text


def test_head_on_codes_is_the_network_to_the_optimizer_and_the_checkpoint(rng):
    from striate.models import get
    from striate.run.features import HeadOnCodes, split

    net = get("digits_net", 10, 1, rng=rng)
    body, head, name = split(net)
    assert name == "8" and head is net[8] and len(body) == 8
    net.freeze(3)
    wrapped = HeadOnCodes(net, head)
    assert list(wrapped.state_dict()) == list(net.state_dict())
    assert [n for n, p in wrapped.named_parameters() if p.requires_grad] == ["8.weight", "8.bias"]
    x = rng.standard_normal((5, 8, 8, 1)).astype(np.float32)
    codes = body.forward(x)
    np.testing.assert_allclose(wrapped.forward(codes), net.forward(x), rtol=1e-6)
    assert wrapped.forward(codes).dtype == np.float32 and wrapped.output_shape((5, 64)) == (5, 10)
