"""Memory that does not grow with the data: an image folder stays memory-mapped, a run's parts are `Rows` into
it, preprocessing is fitted in one streaming pass and float32 exists per batch only (bench/memory_folders.py
measures a whole `striate train`; these check the pieces, in seconds)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from striate.data import DataLoader, Preprocessing, Rows, take_rows
from striate.data import rows as rows_mod
from striate.data.preprocess import (
    PCA,
    MeanImage,
    PerChannelMean,
    PerChannelStandardize,
    PerPixelStandardize,
    Whitening,
)


def _memmap(tmp_path, n: int, side: int = 16, seed: int = 0) -> np.memmap:
    images = np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    path = tmp_path / f"images-{n}.npy"
    np.save(path, images)
    return np.load(path, mmap_mode="r")


def _peak(fn) -> int:
    """Peak bytes allocated (numpy's allocations included) while fn() runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rows_index_like_the_array_they_view():
    base = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
    index = np.array([7, 1, 4, 9])
    rows = Rows(base, index)
    assert len(rows) == 4 and rows.shape == (4, 2, 2, 1) and rows.dtype == np.uint8 and rows.ndim == 4
    assert np.array_equal(rows[1], base[1]) and np.array_equal(rows[-1], base[9])
    assert np.array_equal(rows[1:3], base[[1, 4]]) and np.array_equal(rows[[3, 0]], base[[9, 7]])
    assert np.array_equal(rows[np.array([True, False, False, True])], base[[7, 9]])
    assert np.array_equal(np.asarray(rows), base[index])
    taken = rows.take([2, 0])
    assert isinstance(taken, Rows) and np.array_equal(taken[:], base[[4, 7]])
    doubled = rows.map(lambda x: x.astype(np.float32) * 2)
    assert doubled.dtype == np.float32 and np.array_equal(doubled[[0]], base[[7]] * 2.0)
    with pytest.raises(IndexError):
        rows[[4]]


def test_take_rows_copies_out_of_a_memory_map(tmp_path):
    images = _memmap(tmp_path, 20)
    batch = take_rows(images, np.array([5, 2, 5]))
    assert type(batch) is np.ndarray and np.array_equal(batch, np.asarray(images)[[5, 2, 5]])
    part = take_rows(images, slice(3, 6))
    assert type(part) is np.ndarray and part.base is None  # a copy, not a view into the map


@pytest.mark.parametrize("make", [MeanImage, PerChannelMean, PerChannelStandardize, PerPixelStandardize,
                                  lambda: PCA(5), lambda: Whitening("zca", 1e-3), lambda: Whitening("pca", 1e-2, 4)])
def test_a_streaming_fit_equals_a_fit_on_the_whole_array(make):
    x = np.random.default_rng(1).random((37, 3, 2, 2)).astype(np.float32) * 3 + 1
    whole, chunked = make(), make()
    whole.fit_batches([x])
    chunked.fit_batches(x[i:i + 5] for i in range(0, len(x), 5))  # eight chunks, the last one short
    for key, value in whole.state_dict()["arrays"].items():
        np.testing.assert_allclose(chunked.state_dict()["arrays"][key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_streaming_statistics_are_the_textbook_ones():
    x = np.random.default_rng(2).integers(0, 256, (50, 4, 4, 3)).astype(np.uint8)
    flat = x.reshape(-1, 3).astype(np.float64) / 255
    p = Preprocessing.named("standardize").fit(x)
    np.testing.assert_allclose(p.steps[1].mean_, flat.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(p.steps[1].std_, np.sqrt(flat.var(axis=0) + 1e-8), rtol=1e-6)
    centred = x.reshape(50, -1) / 255 - x.reshape(50, -1).mean(axis=0) / 255
    eig = np.linalg.eigvalsh(centred.T @ centred / 49)[::-1]
    np.testing.assert_allclose(Preprocessing.named("pca", 6).fit(x).steps[1].explained_variance_, eig[:6],
                               rtol=1e-4)


def test_fitting_the_preprocessing_does_not_grow_with_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(rows_mod, "CHUNK_BYTES", 256 << 10)  # 256 KB chunks: many of them even here
    small, large = _memmap(tmp_path, 200, 32), _memmap(tmp_path, 800, 32, seed=1)
    peaks = [_peak(lambda x=x: Preprocessing.named("per-pixel-standardize").fit(Rows(x, np.arange(len(x)))))
             for x in (small, large)]
    whole = 800 * 32 * 32 * 3 * 4  # what a float32 copy of the larger set would take
    assert peaks[1] < 1.1 * peaks[0] + (64 << 10) and peaks[1] < whole / 4, peaks


def test_an_epoch_of_the_loader_does_not_grow_with_the_data(tmp_path):
    peaks = []
    for n in (200, 800):
        images = _memmap(tmp_path, n, 32, seed=n)
        prep = Preprocessing.named("per-channel-mean").fit(images)
        loader = DataLoader(Rows(images, np.arange(n)), np.arange(n) % 3, 16, rng=np.random.default_rng(0),
                            transform=prep, keyed=0)

        def epoch(loader=loader):
            for _ in loader:
                pass

        peaks.append(_peak(epoch))
    batch, whole = 16 * 32 * 32 * 3 * 4, 800 * 32 * 32 * 3 * 4  # float32 bytes of a batch, of the larger set
    # a few batches at once (the prefetch thread's one ahead, when it happens to be), never the data set
    assert peaks[1] < peaks[0] + 2 * batch and peaks[1] < whole / 8, peaks


def test_the_loader_yields_the_same_batches_from_rows_as_from_a_copy(tmp_path):
    images = _memmap(tmp_path, 60)
    index = np.sort(np.random.default_rng(3).permutation(60)[:45])
    labels = np.arange(60) % 4
    prep = Preprocessing.named("standardize").fit(images[index])
    copied = DataLoader(np.array(images)[index], labels[index], 8, rng=np.random.default_rng(5), transform=prep,
                        keyed=7)
    lazy = DataLoader(Rows(images, index), labels[index], 8, rng=np.random.default_rng(5), transform=prep, keyed=7)
    for (xa, ya), (xb, yb) in zip(copied, lazy, strict=True):
        assert xa.dtype == xb.dtype == np.float32
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)  # bit-identical


def test_lazy_preprocessing_evaluates_like_the_preprocessed_array(tmp_path):
    from striate import nn
    from striate.train import inference

    images = _memmap(tmp_path, 30, 8)
    labels = np.arange(30) % 2
    prep = Preprocessing.named("per-channel-mean").fit(images)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 3, 2))
    loss = nn.SoftmaxCrossEntropy()
    eager = inference.evaluate(model, loss, (prep(np.array(images)), labels), batch_size=7, keep=True)
    lazy = inference.evaluate(model, loss, (prep.lazy(images), labels), batch_size=7, keep=True)
    assert np.array_equal(eager["scores"], lazy["scores"]) and eager["loss"] == lazy["loss"]


def test_an_image_folder_is_memory_mapped_from_its_cache(tmp_path):
    from PIL import Image

    from striate.data import load_image_folder

    rng = np.random.default_rng(4)
    written = {}
    for cls in ("a", "b"):
        (tmp_path / "f" / cls).mkdir(parents=True)
        for i in range(3):
            written[f"{cls}{i}"] = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
            Image.fromarray(written[f"{cls}{i}"]).save(tmp_path / "f" / cls / f"{i}.png")
    first = load_image_folder(tmp_path / "f", root=tmp_path / "c")  # decoded straight into the cache file
    again = load_image_folder(tmp_path / "f", root=tmp_path / "c")  # read from it
    for data in (first, again):
        assert isinstance(data.images, np.memmap) and data.images.mode == "r"
        assert np.array_equal(data.images[4], written["b1"])
    assert not [p for p in (tmp_path / "c" / "image_folder").iterdir() if p.name.endswith(".part")]
    in_memory = load_image_folder(tmp_path / "f", root=tmp_path / "c", cache=False)
    assert not isinstance(in_memory.images, np.memmap) and np.array_equal(in_memory.images, first.images)


def test_a_runs_parts_are_rows_of_the_split():
    from striate.data import load
    from striate.run.data import load_data

    config = {"data": "digits", "seed": 3, "limit": 0, "val_fraction": 0.2, "image_size": "", "strict": False}
    data = load_data(config)
    train = load("digits", "train")
    assert isinstance(data.train_x, Rows) and isinstance(data.val_x, Rows)
    assert np.array_equal(np.asarray(data.train_x), train.images[data.train_x.index])
    assert np.array_equal(data.train_y, train.labels[data.train_x.index])
    assert len(data.train_x) + len(data.val_x) == len(train)
