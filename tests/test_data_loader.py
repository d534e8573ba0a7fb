"""DataLoader (without replacement, drop_last, determinism, prefetch == no prefetch, exact resume) and the
vectorised augmentations (shapes, determinism, agreement with a per-sample reference, flip correctness)."""

import numpy as np
import pytest

from striate.data import Compose, DataError, DataLoader, RandomCrop, RandomFlip, Scale


def indexed(n, h=4, w=4, c=1):
    """uint8 images whose every pixel holds the sample index, so a batch tells which samples it holds."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, c)).copy()
    return images, np.arange(n, dtype=np.int64) % 10


def epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_each_sample_once_per_epoch_without_replacement():
    images, labels = indexed(23)
    loader = DataLoader(images, labels, 5, rng=np.random.default_rng(1))
    assert len(loader) == 5
    orders = []
    for _ in range(3):
        batches = epoch(loader)
        assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
        ids = np.concatenate([x[:, 0, 0, 0] for x, _ in batches]).astype(int)
        assert sorted(ids) == list(range(23))  # every sample exactly once
        assert np.array_equal(np.concatenate([y for _, y in batches]), labels[ids])  # labels follow images
        orders.append(ids)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch
    assert loader.epoch == 3


def test_drop_last_and_no_shuffle_and_dtypes():
    images, labels = indexed(23)
    loader = DataLoader(images, labels, 5, drop_last=True, rng=np.random.default_rng(1))
    batches = epoch(loader)
    assert len(loader) == 4 and len(batches) == 4 and all(len(y) == 5 for _, y in batches)
    ids = np.concatenate([x[:, 0, 0, 0] for x, _ in batches]).astype(int)
    assert len(set(ids)) == 20
    x, y = batches[0]
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (5, 4, 4, 1)
    plain = DataLoader(images, labels, 10, shuffle=False)
    ids = np.concatenate([x[:, 0, 0, 0] for x, _ in plain]).astype(int)
    assert ids.tolist() == list(range(23)) and len(plain) == 3


@pytest.mark.parametrize("prefetch", [True, False])
def test_deterministic_with_seed_and_prefetch_changes_nothing(prefetch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 37)
    aug = Compose([RandomCrop(8, padding=2), RandomFlip()])
    ref = DataLoader(images, labels, 8, rng=np.random.default_rng(7), transform=aug, prefetch=True)
    other = DataLoader(images, labels, 8, rng=np.random.default_rng(7), transform=aug, prefetch=prefetch)
    for _ in range(2):
        for (xa, ya), (xb, yb) in zip(epoch(ref), epoch(other), strict=True):
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    different = DataLoader(images, labels, 8, rng=np.random.default_rng(8), transform=aug)
    assert not np.array_equal(epoch(different)[0][1], epoch(DataLoader(images, labels, 8,
                              rng=np.random.default_rng(7), transform=aug))[0][1])


@pytest.mark.parametrize("prefetch", [True, False])
def test_exact_resume_mid_epoch(prefetch):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (29, 6, 6, 2), dtype=np.uint8)
    labels = rng.integers(0, 10, 29)
    aug = Compose([RandomCrop(6, padding=1), RandomFlip()])  # draws from the generator too

    def make(seed, pf=prefetch):
        return DataLoader(images, labels, 4, rng=np.random.default_rng(seed), transform=aug, prefetch=pf)

    full = make(11)
    expected = epoch(full) + epoch(full) + epoch(full)  # 3 epochs of 8 batches

    run = make(11)
    seen = epoch(run)
    it = iter(run)
    for _ in range(3):
        x, y = next(it)
        seen.append((x.copy(), y.copy()))
    state = run.state_dict()  # taken while the producer thread may already be ahead
    assert state["batch"] == 3 and state["epoch"] == 1 and sorted(state["perm"]) == list(range(29))

    resumed = make(999, pf=not prefetch)  # another seed and prefetch mode: the state decides everything
    resumed.load_state_dict(state)
    rest = epoch(resumed) + epoch(resumed)
    for (xa, ya), (xb, yb) in zip(expected, seen + rest, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert resumed.epoch == 3

    # The interrupted loader itself: abandoning the iterator and iterating again continues the epoch.
    del it
    again = epoch(run) + epoch(run)
    for (xa, ya), (xb, yb) in zip(expected[len(seen):], again, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_state_between_epochs_and_mismatch():
    images, labels = indexed(10)
    a = DataLoader(images, labels, 3, rng=np.random.default_rng(5))
    epoch(a)
    state = a.state_dict()
    assert state["perm"] is None and state["batch"] == 0
    b = DataLoader(images, labels, 3, rng=np.random.default_rng(0))
    b.load_state_dict(state)
    for (xa, _), (xb, _) in zip(epoch(a), epoch(b), strict=True):
        assert np.array_equal(xa, xb)
    with pytest.raises(DataError, match="does not fit"):
        DataLoader(images, labels, 4, rng=np.random.default_rng(0)).load_state_dict(state)


def test_loader_errors():
    images, labels = indexed(6)
    with pytest.raises(DataError, match="shuffle=True needs rng"):
        DataLoader(images, labels, 2)
    with pytest.raises(DataError, match="5 labels for 6"):
        DataLoader(images, labels[:5], 2, shuffle=False)
    with pytest.raises(DataError, match="batch_size"):
        DataLoader(images, labels, 0, shuffle=False)
    bad = images.astype(np.float32)
    bad[2, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        DataLoader(bad, labels, 2, shuffle=False)
    with pytest.raises(DataError, match=r"\(N, H, W, C\)"):
        DataLoader(images[..., 0], labels, 2, shuffle=False)

    def boom(x, rng):
        raise RuntimeError("augmentation failed")

    with pytest.raises(RuntimeError, match="augmentation failed"):
        epoch(DataLoader(images, labels, 2, shuffle=False, transform=boom))


def test_transform_sees_raw_batch_and_preprocessing_runs_in_loader():
    images, labels = indexed(8)
    seen = []

    def spy(x, rng):
        seen.append(x.dtype)
        return x

    x, _ = next(iter(DataLoader(images, labels, 4, shuffle=False, transform=Compose([spy, Scale()]))))
    assert seen and set(seen) == {np.dtype(np.uint8)} and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0, 0], np.arange(4) / 255, rtol=1e-6)


# ---------------------------------------------------------------- augmentation
def crop_reference(x, size, padding, oy, ox):
    out = []
    for i in range(len(x)):  # per-sample loop: the oracle only
        padded = np.pad(x[i], ((padding, padding), (padding, padding), (0, 0)))
        out.append(padded[oy[i]:oy[i] + size, ox[i]:ox[i] + size])
    return np.stack(out)


@pytest.mark.parametrize(("size", "padding"), [(32, 4), (28, 0), (10, 3)])
def test_random_crop_matches_reference(size, padding):
    x = np.random.default_rng(0).integers(1, 256, (16, 32, 32, 3), dtype=np.uint8)
    out = RandomCrop(size, padding)(x, np.random.default_rng(42))
    assert out.shape == (16, size, size, 3) and out.dtype == np.uint8
    draws = np.random.default_rng(42)
    span = 32 + 2 * padding - size + 1
    oy, ox = draws.integers(0, span, 16), draws.integers(0, span, 16)
    assert np.array_equal(out, crop_reference(x, size, padding, oy, ox))
    assert np.array_equal(out, RandomCrop(size, padding)(x, np.random.default_rng(42)))  # deterministic
    if padding:
        assert (out == 0).any()  # some windows reach into the zero border (never zero inside: values >= 1)
        assert len({(a, b) for a, b in zip(oy, ox, strict=True)}) > 1  # offsets differ per sample


def test_random_crop_float_and_errors():
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 2)).astype(np.float32)
    assert RandomCrop((3, 4), 1)(x, np.random.default_rng(0)).dtype == np.float32
    with pytest.raises(DataError, match="larger than padded"):
        RandomCrop(8, 1)(x, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"\(N, H, W, C\)"):
        RandomCrop(3)(x[0], np.random.default_rng(0))


def test_random_flip():
    x = np.random.default_rng(1).integers(0, 256, (50, 4, 6, 3), dtype=np.uint8)
    before = x.copy()
    assert np.array_equal(RandomFlip(1.0)(x, np.random.default_rng(0)), x[:, :, ::-1])
    assert np.array_equal(RandomFlip(0.0)(x, np.random.default_rng(0)), x)
    out = RandomFlip()(x, np.random.default_rng(5))
    mask = np.random.default_rng(5).random(50) < 0.5
    assert np.array_equal(out[mask], x[mask][:, :, ::-1]) and np.array_equal(out[~mask], x[~mask])
    assert 10 < mask.sum() < 40
    assert np.array_equal(out[mask][:, :, 0], x[mask][:, :, -1])  # left column <- right column
    assert np.array_equal(x, before)  # input untouched
    assert np.array_equal(out, RandomFlip()(x, np.random.default_rng(5)))
