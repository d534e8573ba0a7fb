"""Results lead back to the files: an image folder's paths are kept through loading, the run's train/val split
and --limit; evaluation.json's top losses and most-confused pairs name their images, `striate eval
--top-losses K` prints them, report.html shows them and the skipped files; a run without a test split is
pointed to --split val."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from striate.cli import main

RUN = ["--epochs", "1", "--diagnostics", "0", "--model", "three_layer"]


def _split(root, n, seed):
    """root/<class>/<i>.png, 8×8 RGB, n per class: 'dark' and 'bright' differ in brightness, and every image
    is its own (noise), so a file can be recognised from its pixels."""
    rng = np.random.default_rng(seed)
    for k, c in enumerate(("bright", "dark")):
        (root / c).mkdir(parents=True)
        for i in range(n):
            pixels = np.clip(200 - 150 * k + rng.normal(0, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{c}{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """root/train/<class> and root/test/<class>; in the test split a few images sit in the wrong class folder
    (mislabelled photos), and the training split holds one unreadable file."""
    root = tmp_path_factory.mktemp("photos")
    _split(root / "train", 24, 0)
    test = _split(root / "test", 8, 1)
    for i in range(3):  # dark images filed as bright: the mistakes a user wants to find
        os.replace(test / "dark" / f"dark{i:02d}.png", test / "bright" / f"mislabelled{i}.png")
    (root / "train" / "dark" / "broken.png").write_bytes(b"not a png at all")
    return root


@pytest.fixture(scope="module")
def photo_run(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", "--data", str(photos), "--out", str(out), "--seed", "0", "--lr", "0.01", *RUN]) == 0
    return out


def test_paths_follow_the_split_and_the_limit(photos):
    from striate.data import load
    from striate.run.data import load_data

    test = load(str(photos), "test")
    assert len(test.paths) == len(test) and all(os.path.isabs(p) for p in test.paths)
    assert test.sources[0] == test.paths[0] and os.path.basename(test.paths[0]) == "bright00.png"
    config = {"data": str(photos), "seed": 3, "limit": 30, "val_fraction": 0.2, "image_size": "", "strict": False}
    data = load_data(config)
    assert len(data.train_sources) == len(data.train_x) and len(data.val_sources) == len(data.val_x) == 6
    for x, sources in ((data.train_x, data.train_sources), (data.val_x, data.val_sources)):
        for i in range(len(x)):  # each image is the file its source names
            assert np.array_equal(np.asarray(Image.open(sources[i]).convert("RGB")), x[i]), sources[i]
    digits = load_data({**config, "data": "digits"})
    assert digits.val_sources[0] == f"digits[train] #{digits.val_sources.index[0]}"  # no file: dataset, position


def test_evaluation_json_names_the_files_of_the_top_losses_and_confused_pairs(photo_run, photos):
    evaluation = json.loads((photo_run / "evaluation.json").read_text())
    worst = evaluation["top_losses"]
    assert len(worst) >= 3
    for item in worst:
        assert os.path.isfile(item["source"]) and item["source"].startswith(str(photos / "test"))
        assert os.path.basename(os.path.dirname(item["source"])) == item["true"]  # the class folder it sits in
    pairs = evaluation["most_confused"]
    assert pairs and all(1 <= len(p["examples"]) <= min(3, p["count"]) for p in pairs)
    for p in pairs:
        assert all(os.path.basename(os.path.dirname(f)) == p["true"] for f in p["examples"])


def test_eval_top_losses_prints_the_worst_with_their_files(photo_run, photos, capsys):
    capsys.readouterr()
    assert main(["eval", str(photo_run), "--top-losses", "3"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if str(photos / "test") in line and "loss" in line]
    assert len(lines) == 3 and "top 3 losses" in out
    assert "most confused" in out
    assert main(["eval", str(photo_run), "--top-losses", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert len(r["top_losses"]) == 2 and all(os.path.isfile(t["source"]) for t in r["top_losses"])
    assert main(["eval", str(photo_run), "--split", "val", "--top-losses", "50", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert all(t["source"].startswith(str(photos / "train")) for t in r["top_losses"])
    with pytest.raises(SystemExit) as bad:
        main(["eval", str(photo_run), "--top-losses", "-1"])
    assert bad.value.code == 2 and "'-1': expected a whole number" in capsys.readouterr().err


def test_report_shows_the_files_and_the_skipped_ones(photo_run, photos):
    import html

    page = html.unescape((photo_run / "report.html").read_text())
    evaluation = json.loads((photo_run / "evaluation.json").read_text())
    assert all(item["source"] in page for item in evaluation["top_losses"])
    assert all(f in page for p in evaluation["most_confused"] for f in p["examples"])
    assert "Skipped files" in page and "1 file was left out of the data folder: unreadable, not images" in page
    assert "dark/broken.png" in page and str(photo_run / "skipped_images.txt") in page


def test_eval_without_a_test_split_suggests_the_validation_split(photos, tmp_path, capsys):
    out = tmp_path / "flat"
    assert main(["train", "--data", str(photos / "test"), "--out", str(out), "--report", "off", *RUN]) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) != 0
    assert "--split val" in capsys.readouterr().err
