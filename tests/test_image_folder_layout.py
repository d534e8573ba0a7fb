"""A folder of one's own photos, laid out as a person lays it out: every image is used or listed. Nested
folders belong to their class, every readable format (image_file.READABLE, the one list) is read by training
and by `striate predict`, a flat folder is told it lacks class folders, and `striate predict RUN folder/`
predicts every image below it, in batches, with a summary."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from striate.cli import main
from striate.data import DataError, load_image_folder
from striate.data.datasets.image_file import EXTENSIONS, FORMAT_NAMES

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"  # ../shared beside the repo
RUN = ["--epochs", "1", "--report", "off", "--diagnostics", "0", "--model", "three_layer"]


def _png(path: Path, value: int, size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def _nested(root: Path) -> list[int]:
    """cat/ and dog/, each 75 images at the top and 25 in a nested 2019/ folder (200 on disk), image k filled
    with the value k; returns the values in the order a depth-first walk by name reads them."""
    order = []
    for c, cls in enumerate(("cat", "dog")):
        nested = [c * 100 + i for i in range(25)]
        top = [c * 100 + 25 + i for i in range(75)]
        for i, v in enumerate(nested):
            _png(root / cls / "2019" / f"img{i:03d}.png", v)
        for i, v in enumerate(top):
            _png(root / cls / f"img{i:03d}.png", v)
        order += nested + top  # "2019" sorts before "img…"
    return order


def test_nested_folders_belong_to_their_class_in_a_fixed_order(tmp_path):
    order = _nested(tmp_path / "photos")
    data = load_image_folder(tmp_path / "photos", root=tmp_path / "cache")
    assert len(data) == 200 and data.classes == ["cat", "dog"] and data.skipped == []
    assert data.images[:, 0, 0, 0].tolist() == order
    assert data.labels.tolist() == [0] * 100 + [1] * 100
    # the cache key covers the file list: one more nested file, or one fewer, is a new entry
    _png(tmp_path / "photos" / "dog" / "2020" / "deep" / "new.png", 7)
    more = load_image_folder(tmp_path / "photos", root=tmp_path / "cache")
    assert len(more) == 201 and more.labels.tolist().count(1) == 101
    (tmp_path / "photos" / "cat" / "2019" / "img000.png").unlink()
    assert len(load_image_folder(tmp_path / "photos", root=tmp_path / "cache")) == 200


def _frames(path: Path, colours) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(np.full((8, 8, 3), c, np.uint8)) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def test_every_readable_format_is_read_by_training_and_by_predict(pets_run, tmp_path, capsys):
    """The one list: a file of each READABLE ending is a training image and a predicted one."""
    red = np.full((8, 8, 3), (255, 0, 0), np.uint8)
    (tmp_path / "data" / "a").mkdir(parents=True)
    for ext in EXTENSIONS:  # Pillow writes the format the name ends in
        lossless = {"lossless": True} if ext == ".webp" else {}
        Image.fromarray(red).save(tmp_path / "data" / "a" / f"sample{ext}", **lossless)
    _png(tmp_path / "data" / "b" / "base.png", 10)
    data = load_image_folder(tmp_path / "data", root=tmp_path / "cache")
    assert len(data) == len(EXTENSIONS) + 1 and data.skipped == []
    names = sorted(f"sample{ext}" for ext in EXTENSIONS)  # the walk's order
    exact = [i for i, name in enumerate(names) if not name.endswith((".jpg", ".jpeg"))]
    assert (data.images[exact] == red).all()
    capsys.readouterr()
    assert main(["predict", str(pets_run), str(tmp_path / "data")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXTENSIONS) + 2 and lines[-1].startswith(f"predicted {len(EXTENSIONS) + 1} images")
    assert lines[-1].endswith("; skipped 0")
    for command in ("train", "predict"):  # and their help texts name the same formats
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert FORMAT_NAMES in " ".join(capsys.readouterr().out.split())


def test_gif_is_its_first_frame_and_other_files_are_listed(tmp_path):
    _frames(tmp_path / "d" / "cat" / "anim.gif", [(0, 255, 0), (0, 0, 255)])
    for name in ("img.tiff", "img.tif", "img.bmp", "img.webp"):
        _png(tmp_path / "d" / "dog" / name, 50)  # Pillow writes the format the name ends in
    (tmp_path / "d" / "dog" / "IMG_0001.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (tmp_path / "d" / "dog" / "Thumbs.db").write_bytes(b"windows")  # the system's, not the user's: left out
    (tmp_path / "d" / "dog" / ".hidden.png").write_bytes(b"macOS ._ copy")
    _png(tmp_path / "d" / "loose.png", 1)  # beside the class folders: no class
    data = load_image_folder(tmp_path / "d", root=tmp_path / "cache")
    assert len(data) == 5 and data.images[0, 0, 0].tolist() == [0, 255, 0]
    assert [rel for rel, _ in data.skipped] == ["dog/IMG_0001.heic", "loose.png"]
    assert FORMAT_NAMES in dict(data.skipped)["dog/IMG_0001.heic"]
    assert "outside the class folders" in dict(data.skipped)["loose.png"]
    with pytest.raises(DataError, match="IMG_0001.heic"):
        load_image_folder(tmp_path / "d", root=tmp_path / "cache", strict=True)


def test_a_flat_folder_is_told_it_has_images_but_no_class_folders(tmp_path, capsys):
    for i in range(5):
        _png(tmp_path / "flat" / f"{i}.jpg", i)
    with pytest.raises(DataError, match=r"holds 5 images \(e.g. 0.jpg\) but no class folders") as err:
        load_image_folder(tmp_path / "flat", root=tmp_path / "cache")
    assert "cat" in str(err.value) and "001.jpg" in str(err.value)  # an example layout
    assert main(["train", "--data", str(tmp_path / "flat"), "--out", str(tmp_path / "r"), *RUN]) != 0
    assert "no class folders" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty image folder"):
        load_image_folder(tmp_path / "empty", root=tmp_path / "cache")


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    for cls, v in (("cat", 30), ("dog", 220)):
        for i in range(10):
            _png(root / "data" / cls / f"{i}.png", v + i)
    assert main(["train", "--data", str(root / "data"), "--out", str(root / "run"), *RUN]) == 0
    return root / "run"


def test_predict_on_a_folder_predicts_every_image_below_it_in_batches(pets_run, tmp_path, capsys, monkeypatch):
    from striate.train import inference

    shots = tmp_path / "shots"
    for i in range(4):
        _png(shots / f"{i}.png", 20 * i)
    for i in range(3):
        _png(shots / "2019" / "june" / f"{i}.jpg", 200 + 10 * i)
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(shots / "2019" / "big.webp")
    (shots / "notes.txt").write_text("not a photo")
    (shots / "2019" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    calls = []
    real = inference.probabilities
    monkeypatch.setattr(inference, "probabilities", lambda model, x, *a, **k: calls.append(len(x)) or real(model, x))
    capsys.readouterr()
    assert main(["predict", str(pets_run), str(shots)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert calls == [8]  # one batch, not a model call per image
    assert len(lines) == 10 + 1  # every file a line, then the summary
    by_file = dict(line.split(": ", 1) for line in lines[:-1])
    assert list(by_file) == [str(shots / rel) for rel in ("0.png", "1.png", "2.png", "2019/big.webp",
                                                            "2019/broken.jpg", "2019/june/0.jpg", "2019/june/1.jpg",
                                                            "2019/june/2.jpg", "3.png", "notes.txt")]
    assert by_file[str(shots / "notes.txt")].startswith("skipped: not a format")
    assert by_file[str(shots / "2019" / "broken.jpg")].startswith("skipped: unreadable image")
    top = [text.split(" (")[0] for text in by_file.values() if not text.startswith("skipped")]
    counts = {c: top.count(c) for c in sorted(set(top), key=lambda c: (-top.count(c), c))}
    assert lines[-1] == "predicted 8 images: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + "; skipped 2"

    assert main(["predict", str(pets_run), str(shots), "--json", "--top-k", "2"]) == 0
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]  # JSON Lines: one object an image
    assert len(records) == 10 and sum("skipped" in r for r in records) == 2
    assert all(len(r["top"]) == 2 for r in records if "skipped" not in r)
    assert "predicted 8 images" in out.err and "skipped 2" in out.err


def test_predict_on_a_folder_without_images_says_so(pets_run, tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    assert main(["predict", str(pets_run), str(tmp_path / "docs")]) == 1
    assert "no images" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.exists(), reason="shared CIFAR-10 archive not present")
def test_real_photos_sorted_by_a_person_are_all_used(tmp_path):
    """Real JPEGs of two classes, some moved into a nested folder and some saved as WebP, GIF and PNG."""
    wanted: dict[str, list] = {}
    with tarfile.open(SHARED, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != "train" or not member.isfile():
                continue
            if len(wanted) == 2 and parts[1] not in wanted:
                break
            files = wanted.setdefault(parts[1], [])
            if len(files) < 60:
                files.append(tar.extractfile(member).read())
    assert len(wanted) == 2
    for cls, blobs in wanted.items():
        for i, blob in enumerate(blobs):
            folder = tmp_path / "photos" / cls / ("2019" if i % 4 == 0 else "")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:03d}.jpg").write_bytes(blob)
        for i, ext in enumerate((".webp", ".gif", ".png")):  # re-saved in another format, the JPEG removed
            jpg = tmp_path / "photos" / cls / f"{i * 4 + 1:03d}.jpg"
            Image.open(jpg).save(jpg.with_suffix(ext))
            jpg.unlink()
    data = load_image_folder(tmp_path / "photos", root=tmp_path / "cache")
    assert len(data) == 120 and data.skipped == [] and data.images.shape[1:] == (32, 32, 3)
    assert np.bincount(data.labels).tolist() == [60, 60]
