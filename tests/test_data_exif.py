"""Photos are read the way they are shown: the EXIF Orientation tag (a phone's sideways JPEG) is applied as
Pillow's `ImageOps.exif_transpose` applies it, by `read_image` and `probe_image`, the image-folder loader
(training) and `striate predict`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from striate.cli import main
from striate.data import load_image_folder, probe_image, read_image

ORIENTATION = 0x0112


def save(path, arr: np.ndarray, orientation: int | None, fmt: str | None = None):
    """`arr` (H, W[, C]) stored as it is, with an EXIF Orientation tag when given."""
    from PIL import Image

    img = Image.fromarray(arr)
    kw = {"quality": 95} if path.suffix == ".jpg" else {}
    if fmt == "WEBP":
        kw = {"lossless": True}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        kw["exif"] = exif
    img.save(path, format=fmt, **kw)
    return path


def shown(path, mode: str) -> np.ndarray:
    """What Pillow's own `ImageOps.exif_transpose` shows."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert(mode))


def stored(rng, h=5, w=7, channels=3) -> np.ndarray:
    """A non-square picture with no symmetry (random pixels)."""
    return rng.integers(0, 256, (h, w, channels) if channels > 1 else (h, w), dtype=np.uint8)


@pytest.mark.parametrize("suffix, fmt", [(".png", None), (".jpg", None), (".webp", "WEBP"), (".tif", None)])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_image_and_probe_apply_the_exif_orientation(tmp_path, rng, orientation, suffix, fmt):
    from PIL import features

    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow without WebP")
    path = save(tmp_path / f"photo{suffix}", stored(rng), orientation, fmt)
    expected = shown(path, "RGB")
    assert expected.shape[:2] == ((7, 5) if orientation >= 5 else (5, 7))
    np.testing.assert_array_equal(read_image(path), expected)
    np.testing.assert_array_equal(read_image(path, mode="L")[..., 0], shown(path, "L"))
    assert probe_image(path).size == expected.shape[:2]  # the header's size is the size as shown
    # a size or an expected size is the size as shown, too
    assert read_image(path, expect=expected.shape[:2]).shape == expected.shape
    assert read_image(path, size=(3, 4)).shape == (3, 4, 3)


def test_orientation_6_is_a_quarter_turn_clockwise(tmp_path, rng):
    """The phone case, written out: the sensor's rows become the columns, the bottom row on the left."""
    arr = stored(rng)
    path = save(tmp_path / "phone.png", arr, 6)
    out = read_image(path)
    assert out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, np.rot90(arr, -1))
    np.testing.assert_array_equal(out[0, :, :], arr[::-1, 0, :])  # the first row shown: the first column, bottom up
    grey = stored(rng, channels=1)
    np.testing.assert_array_equal(read_image(save(tmp_path / "grey.png", grey, 6))[..., 0], np.rot90(grey, -1))


def test_a_malformed_or_out_of_range_orientation_is_ignored(tmp_path, rng):
    arr = stored(rng)
    for value in (0, 9, 300):
        path = save(tmp_path / f"o{value}.png", arr, value)
        np.testing.assert_array_equal(read_image(path), arr)


def test_the_image_folder_loader_applies_the_orientation(tmp_path, rng):
    """A folder of phone photos stored landscape and tagged 6 (or 8) trains on them upright."""
    written = {}
    for cls, orientation in (("cats", 6), ("dogs", 8)):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(2):
            arr = stored(rng, 4, 6)
            save(tmp_path / "f" / cls / f"{i}.png", arr, orientation)
            written[(cls, i)] = np.rot90(arr, -1 if orientation == 6 else 1)
    data = load_image_folder(tmp_path / "f", root=tmp_path / "cache", workers=1)
    assert data.images.shape == (4, 6, 4, 3)  # shown 6 high, 4 wide: no mixed sizes, no resize
    for (cls, i), arr in written.items():
        np.testing.assert_array_equal(data.images[data.classes.index(cls) * 2 + i], arr)
    again = load_image_folder(tmp_path / "f", root=tmp_path / "cache", workers=1)  # from the cache: the same
    np.testing.assert_array_equal(again.images, data.images)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exif") / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", "--limit", "200", "--report", "off",
                 "--diagnostics", "0"]) == 0
    return out


def test_predict_sees_the_photo_upright(digits_run, tmp_path, capsys, rng):
    """predict on a sideways-stored photo tagged 6 answers as on the same photo stored upright."""
    arr = stored(rng, 8, 12, channels=1)
    tagged = save(tmp_path / "tagged.png", arr, 6)
    upright = save(tmp_path / "upright.png", np.ascontiguousarray(np.rot90(arr, -1)), None)
    sideways = save(tmp_path / "sideways.png", arr, None)
    capsys.readouterr()
    assert main(["predict", str(digits_run), str(tagged), str(upright), str(sideways), "--json",
                 "--top-k", "10"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    probs = [{c["class"]: c["probability"] for c in r["top"]} for r in results]
    assert probs[0] == pytest.approx(probs[1], abs=1e-6)
    assert probs[0] != pytest.approx(probs[2], abs=1e-6)  # the orientation made a difference
