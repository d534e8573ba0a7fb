"""Image folders as a person brings them: mixed sizes (an error naming the most common size and the odd files,
or --image-size to resize), channel conversion, unreadable files skipped and listed (or --strict), and the
run's own splits in `striate eval --split`."""

import json

import numpy as np
import pytest
from PIL import Image

from striate.cli import main


def _folder(root, sizes, colour=True, seed=0):
    """root/<class>/<i>.png for two classes; `sizes` (H, W) per image, cycled."""
    rng = np.random.default_rng(seed)
    k = 0
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(12):
            h, w = sizes[k % len(sizes)]
            shape = (h, w, 3) if colour else (h, w)
            Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(root / c / f"{i:02d}.png")
            k += 1
    return root


RUN = ["--epochs", "1", "--report", "off", "--diagnostics", "0", "--model", "three_layer"]


def test_mixed_sizes_name_the_most_common_size_and_the_odd_files(tmp_path, capsys):
    data = _folder(tmp_path / "mixed", [(8, 8)] * 5 + [(10, 12)])
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *RUN]) == 2
    err = capsys.readouterr().err
    assert "20 of 24 are 8x8" in err and "cat/05.png (10x12)" in err and "--image-size 8x8" in err
    assert main(["train", "--data", str(data), "--image-size", "8x8", "--out", str(tmp_path / "ok"), *RUN]) == 0
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["status"] == "finished"


def test_image_size_converts_channels_too(tmp_path):
    from striate.run import RunDir

    data = _folder(tmp_path / "rgb", [(8, 8)])
    assert main(["train", "--data", str(data), "--image-size", "8x8x1", "--out", str(tmp_path / "r"), *RUN]) == 0
    assert RunDir(tmp_path / "r").load_model().input_shape == (8, 8, 1)
    assert main(["train", "--data", str(data), "--image-size", "8x8x2", "--out", str(tmp_path / "x"), *RUN]) == 2


def _classes(root, counts, seed=0):
    """root/<class>/<i>.png, 8×8 RGB, `counts` {class: images}; each class its own brightness (learnable)."""
    rng = np.random.default_rng(seed)
    for k, (c, n) in enumerate(counts.items()):
        (root / c).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(40 + 150 * k + rng.normal(0, 15, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:03d}.png")
    return root


def test_start_up_warnings_name_the_data_problem_and_training_goes_on(tmp_path, capsys):
    imbalanced = _classes(tmp_path / "imb", {"cat": 150, "dog": 15})
    assert main(["train", "--data", str(imbalanced), "--out", str(tmp_path / "r1"), *RUN]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'cat' has" in warnings[0] and "'dog'" in warnings[0]
    assert "imbalanced" in warnings[0] and "weight the loss" in warnings[0]

    single = _classes(tmp_path / "one", {"only": 30})
    assert main(["train", "--data", str(single), "--out", str(tmp_path / "r2"), *RUN]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "every label is 0 ('only')" in warnings[0] and "nothing to learn" in warnings[0]

    balanced = _classes(tmp_path / "ok", {"cat": 30, "dog": 30})
    assert main(["train", "--data", str(balanced), "--out", str(tmp_path / "r3"), *RUN]) == 0
    assert "warning:" not in capsys.readouterr().err


def test_unreadable_files_are_skipped_and_listed_or_refused_when_strict(tmp_path, capsys):
    from tests.test_data_image_file import bomb_png

    data = _folder(tmp_path / "broken", [(8, 8)])
    (data / "cat" / "99.png").write_bytes(b"not a png at all")
    bomb_png(data / "dog" / "98.png", 12000, 12000)  # oversized: refused from its header, skipped
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), *RUN]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 files (unreadable, not images, or beside the class folders; e.g. cat/99.png)" in err
    listed = (tmp_path / "r" / "skipped_images.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == ["cat/99.png", "dog/98.png"]
    assert "refused before decoding" in listed[1]
    assert main(["train", "--data", str(data), "--strict", "--out", str(tmp_path / "s"), *RUN]) == 1
    assert "99.png" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("split") / "r"
    assert main(["train", "--epochs", "1", "--out", str(out), "--report", "off", "--diagnostics", "0"]) == 0
    return out


def test_eval_uses_the_runs_own_splits(digits_run, capsys):
    counts = {}
    for split in ("train", "val", "test"):
        capsys.readouterr()
        assert main(["eval", str(digits_run), "--split", split, "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r["split"] == split
        counts[split] = r["count"]
    assert counts == {"train": 1294, "val": 144, "test": 359}  # train without the 144 held-out images
    summary = json.loads((digits_run / "summary.json").read_text())
    assert main(["eval", str(digits_run), "--split", "all", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["all"]["count"] == 1294 + 144 + 359 and r["test"]["accuracy"] == summary["test"]["accuracy"]
    assert main(["eval", str(digits_run), "--split", "all"]) == 0
    assert "all splits: accuracy" in capsys.readouterr().out


def test_resume_edges(digits_run, tmp_path, capsys):
    import shutil
    import tomllib

    run = tmp_path / "copy"
    shutil.copytree(digits_run, run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 0  # finished: says how to continue
    assert "already trained its 1 epochs" in capsys.readouterr().out.replace("epoch ", "epochs ")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--lr", "0.002"]) == 0
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2  # below the epochs done
    assert "below the 2 epochs" in capsys.readouterr().err
    doc = tomllib.loads((run / "config.toml").read_text())
    assert doc["epochs"] == 1 and doc["lr"] == 0.001  # the original settings: they reproduce the first run
    assert doc["resume"] == [{"time": doc["resume"][0]["time"], "from_epoch": 1,
                              "changed": {"epochs": 2, "lr": 0.002}}]
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 2
