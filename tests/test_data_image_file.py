"""Image files opened safely: decompression bombs and odd sizes refused from the header before any decoding,
Pillow's bomb warning/error never escaping, 16-bit greyscale scaled (not clipped), symlink loops and
dangling links in image folders named, and the decode cache checked against the folder's listing."""

import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from striate.data import DataError, load_image_folder, probe_image, read_image
from striate.data.datasets import image_folder as folder_mod
from tests.test_data_datasets import write_folder

SRC = Path(__file__).resolve().parents[1] / "src"


def bomb_png(path, width, height, color_type=2):
    """A PNG of a few hundred bytes whose header declares width x height (8-bit RGB by default): only a few
    rows of pixel data follow, but a decoder allocates the whole image before it finds that out."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(bytes(4 * (1 + 3 * width)), 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def decoded(monkeypatch):
    """The files whose pixels Pillow decoded (ImageFile.load), in order."""
    from PIL import ImageFile

    seen = []
    real = ImageFile.ImageFile.load

    def spy(self):
        seen.append(Path(getattr(self, "filename", "") or "?").name)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen


# ---------------------------------------------------------------- decompression bombs
def test_bomb_in_image_folder_is_refused_from_its_header(tmp_path, rng, decoded):
    write_folder(tmp_path / "f", rng, n_per_class=2, classes=("a", "b"))
    bomb_png(tmp_path / "f" / "a" / "000.png", 12000, 12000)  # sorted first: it would set the folder's size
    with pytest.raises(DataError, match=r"000\.png is 12000x12000 \(144,000,000 pixels\), more than the limit "
                                        r"of 50,000,000: refused before decoding"):
        load_image_folder(tmp_path / "f", root=tmp_path / "c", workers=2, strict=True)
    assert "000.png" not in decoded
    data = load_image_folder(tmp_path / "f", root=tmp_path / "c", workers=2)  # by default: skipped and listed
    assert [rel for rel, _ in data.skipped] == ["a/000.png"] and len(data) == 3


def test_bomb_is_refused_without_memory_blowup():
    """Peak RSS of a process that meets RGB bombs: decoding 12000x12000 would take over 430 MB."""
    code = """
import resource, sys, tempfile, pathlib
from tests.test_data_image_file import bomb_png
from striate.data import DataError, read_image
from striate.data.datasets import image_file
folder = pathlib.Path(tempfile.mkdtemp())
cases = [(bomb_png(folder / "bomb.png", 12000, 12000), image_file.MAX_PIXELS),  # our cap
         (bomb_png(folder / "huge.png", 15000, 15000), 10**9)]  # Pillow's own error
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path, limit in cases:
    try:
        read_image(path, max_pixels=limit)
        sys.exit(f"{path} not refused")
    except DataError as err:
        assert path.name in str(err), err
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{SRC.parent}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=SRC.parent)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 100_000, f"peak RSS grew by {int(out.stdout) / 1024:.0f} MB"  # ru_maxrss is in KB
    assert "DecompressionBomb" not in out.stderr


def test_pillow_bomb_error_and_warning_never_escape(tmp_path, rng):
    # Beyond twice Pillow's MAX_IMAGE_PIXELS Image.open raises DecompressionBombError itself.
    huge = bomb_png(tmp_path / "huge.png", 15000, 15000, color_type=0)
    with pytest.raises(DataError, match=r"huge\.png declares more than .* pixels: refused before decoding"):
        read_image(huge, max_pixels=10**9)
    write_folder(tmp_path / "f", rng, n_per_class=1, classes=("a",))
    bomb_png(tmp_path / "f" / "a" / "000.png", 15000, 15000, color_type=0)
    with pytest.raises(DataError, match=r"000\.png"):
        load_image_folder(tmp_path / "f", root=tmp_path / "c")
    # Between 1x and 2x Pillow warns; with warnings as errors (python -W error) that warning was an exception.
    (tmp_path / "f" / "a" / "000.png").unlink()
    bomb_png(tmp_path / "f" / "a" / "000.png", 12000, 12000, color_type=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"000\.png is 12000x12000"):
            load_image_folder(tmp_path / "f", root=tmp_path / "c")
        with pytest.raises(DataError, match=r"000\.png is 12000x12000"):
            probe_image(tmp_path / "f" / "a" / "000.png")


def test_odd_size_is_refused_before_it_is_decoded(tmp_path, rng, decoded):
    from PIL import Image

    write_folder(tmp_path / "f", rng, n_per_class=2, classes=("x", "y"))
    Image.fromarray(np.zeros((70, 90, 3), np.uint8)).save(tmp_path / "f" / "y" / "odd.png")
    with pytest.raises(DataError, match=r"differ in size \(H×W\): 4 of 5 are 5x6, the others are not: y/odd\.png "
                                        r"\(70x90\); give --image-size 5x6"):
        load_image_folder(tmp_path / "f", root=tmp_path / "c", workers=1)
    assert not decoded  # found from the headers alone: nothing was decoded
    resized = load_image_folder(tmp_path / "f", root=tmp_path / "c", workers=1, size=(5, 6))
    assert resized.images.shape == (5, 5, 6, 3)


def test_decoding_threads_stay_within_the_memory_budget(tmp_path, rng, monkeypatch):
    write_folder(tmp_path / "f", rng, n_per_class=3, classes=("a", "b"), size=(20, 30))
    pools = []
    real = folder_mod.ThreadPoolExecutor

    def recording(max_workers):
        pools.append(max_workers)
        return real(max_workers=max_workers)

    monkeypatch.setattr(folder_mod, "ThreadPoolExecutor", recording)
    monkeypatch.setattr(folder_mod, "DECODE_BUDGET", 2 * 3 * 20 * 30 * 3)  # two RGB 20x30 images' worth
    data = load_image_folder(tmp_path / "f", root=tmp_path / "c", workers=8, cache=False)
    assert pools[-1] == 2 and data.images.shape == (6, 20, 30, 3)  # the decoding pool (the first reads headers)


# ---------------------------------------------------------------- read_image / probe_image
def test_read_image_modes_resize_and_header(tmp_path, rng):
    from PIL import Image

    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    Image.fromarray(np.dstack([rgb, np.full((12, 16, 1), 9, np.uint8)])).save(tmp_path / "a.png")  # RGBA
    header = probe_image(tmp_path / "c.png")
    assert (header.size, header.mode, header.format, header.channels) == ((12, 16), "RGB", "PNG", 3)
    out = read_image(tmp_path / "c.png")
    assert out.dtype == np.uint8 and np.array_equal(out, rgb)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)  # alpha dropped
    grey = read_image(tmp_path / "g.png")
    assert grey.shape == (12, 16, 1) and np.array_equal(grey[..., 0], rgb[..., 0])
    assert read_image(tmp_path / "g.png", mode="RGB").shape == (12, 16, 3)
    assert np.array_equal(read_image(tmp_path / "c.png", mode="L")[..., 0],
                          np.asarray(Image.fromarray(rgb).convert("L")))
    small = read_image(tmp_path / "c.png", size=(6, 8))
    expected = np.asarray(Image.fromarray(rgb).resize((8, 6), Image.Resampling.BILINEAR))
    assert small.shape == (6, 8, 3) and np.array_equal(small, expected)
    assert read_image(tmp_path / "g.png", size=(24, 32)).shape == (24, 32, 1)
    with pytest.raises(DataError, match=r"c\.png is 16x12, expected 8x6"):
        read_image(tmp_path / "c.png", expect=(6, 8))
    with pytest.raises(DataError, match=r"c\.png is 16x12 \(192 pixels\), more than the limit of 100"):
        read_image(tmp_path / "c.png", max_pixels=100)
    with pytest.raises(DataError, match="mode"):
        read_image(tmp_path / "c.png", mode="CMYK")


def test_read_image_unreadable_files_name_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not an image")
    (tmp_path / "eps.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    os.symlink("loop_b.png", tmp_path / "loop_a.png")
    os.symlink("loop_a.png", tmp_path / "loop_b.png")
    for name, why in [("junk.png", "cannot identify"), ("eps.png", "cannot identify"),  # EPS would run Ghostscript
                      ("loop_a.png", "Too many levels of symbolic links"), ("missing.png", "No such file")]:
        with pytest.raises(DataError, match=rf"unreadable image .*{name}: .*{why}"):
            read_image(tmp_path / name)
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "cut.png")
    blob = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(blob[: len(blob) - 30])
    with pytest.raises(DataError, match=r"unreadable image .*cut\.png"):
        read_image(tmp_path / "cut.png")


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    wide = np.array([[0, 257, 32768, 65535], [128, 1000, 40000, 65280]], dtype=np.uint16)
    (tmp_path / "f" / "a").mkdir(parents=True)
    Image.fromarray(wide).save(tmp_path / "f" / "a" / "w.png")
    expected = np.rint(wide / 257.0).astype(np.uint8)
    assert np.array_equal(read_image(tmp_path / "f" / "a" / "w.png")[..., 0], expected)
    data = load_image_folder(tmp_path / "f", root=tmp_path / "c")  # was clipped to 255 by Pillow's convert('L')
    assert data.images.shape == (1, 2, 4, 1) and np.array_equal(data.images[0, ..., 0], expected)


# ---------------------------------------------------------------- image folders: links and the cache
def test_symlink_loops_and_dangling_links_are_named(tmp_path, rng):
    write_folder(tmp_path / "f", rng, n_per_class=2, classes=("a", "b"))
    os.symlink("loop2.png", tmp_path / "f" / "a" / "loop1.png")
    os.symlink("loop1.png", tmp_path / "f" / "a" / "loop2.png")
    with pytest.raises(DataError, match=r"cannot read .*a/loop1\.png: Too many levels of symbolic links"):
        load_image_folder(tmp_path / "f", root=tmp_path / "c")
    for p in (tmp_path / "f" / "a").glob("loop*"):
        p.unlink()
    os.symlink("gone.png", tmp_path / "f" / "a" / "dangling.png")  # was skipped silently
    with pytest.raises(DataError, match=r"broken symbolic link .*a/dangling\.png -> gone\.png"):
        load_image_folder(tmp_path / "f", root=tmp_path / "c")
    (tmp_path / "f" / "a" / "dangling.png").unlink()
    os.symlink("c", tmp_path / "f" / "c")  # a class folder that is a loop
    with pytest.raises(DataError, match=r"cannot read .*f/c: Too many levels"):
        load_image_folder(tmp_path / "f", root=tmp_path / "c")
    (tmp_path / "f" / "c").unlink()
    os.symlink(tmp_path / "f" / "a", tmp_path / "f" / "z")  # a link that resolves is followed
    assert load_image_folder(tmp_path / "f", root=tmp_path / "c").classes == ["a", "b", "z"]


def test_cache_that_disagrees_with_the_folder_is_rebuilt(tmp_path, rng):
    write_folder(tmp_path / "f", rng, n_per_class=2, classes=("a", "b"))
    cache = tmp_path / "c"
    good = load_image_folder(tmp_path / "f", root=cache)
    labels_file = next((cache / "image_folder").glob("*.labels.npz"))
    images_file = next((cache / "image_folder").glob("*.images.npy"))
    np.savez(labels_file, labels=np.zeros(4, np.int64), classes=np.array(["a", "b"]))  # wrong, but well-formed
    again = load_image_folder(tmp_path / "f", root=cache)
    assert np.array_equal(again.labels, good.labels) and np.array_equal(again.images, good.images)
    np.save(images_file, good.images.astype(np.float64) + 0.5)  # a cache of another dtype
    assert np.array_equal(load_image_folder(tmp_path / "f", root=cache).images, good.images)
    blob = images_file.read_bytes()
    images_file.write_bytes(blob[:-10])  # truncated: the header promises more than the file holds
    assert np.array_equal(load_image_folder(tmp_path / "f", root=cache).images, good.images)
    assert not [p for p in (cache / "image_folder").iterdir() if p.name.endswith((".part", ".tmp"))]


def test_a_cache_that_cannot_be_written_only_warns(tmp_path, rng, monkeypatch):
    write_folder(tmp_path / "f", rng, n_per_class=1, classes=("a", "b"))

    def disk_full(path, write):
        raise OSError(28, "No space left on device")

    from striate.data.datasets import partial

    monkeypatch.setattr(partial, "save", disk_full)
    with pytest.warns(RuntimeWarning, match="could not cache the decoded images of .*: No space left on device"):
        data = load_image_folder(tmp_path / "f", root=tmp_path / "c")
    assert len(data) == 2
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(DataError, match=r"cannot use .*file/sub as the data cache folder"):
        load_image_folder(tmp_path / "f", root=tmp_path / "file" / "sub")
