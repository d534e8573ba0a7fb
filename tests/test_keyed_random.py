"""Keyed random numbers: a sample's numbers depend on (seed, epoch, batch, sample id) only — not on the other
samples of its batch, how the batch is split, or the order of the draws of other samples — so augmentation
and dropout agree under any number of processes."""

import numpy as np
import pytest

from striate.data import Compose, DataLoader, RandomCrop, RandomFlip
from striate.kernels.keyed_random import KeyedRandom, layer_random, scope
from striate.nn import Dropout, Dropout2d


def test_a_samples_numbers_do_not_depend_on_its_batch():
    ids = np.array([7, 3, 11, 0, 5, 9])
    whole = KeyedRandom(1, epoch=2, batch=4, ids=ids)
    u, k, z = whole.random((6, 3, 5)), whole.integers(0, 10, size=6), whole.standard_normal((6, 4))
    for rows in (slice(0, 2), slice(2, 6)):  # two processes, each its part of the batch
        part = ids[rows]
        mine = KeyedRandom(1, epoch=2, batch=4, ids=part)
        np.testing.assert_array_equal(mine.random((len(part), 3, 5)), u[rows])
        np.testing.assert_array_equal(mine.integers(0, 10, size=len(part)), k[rows])
        np.testing.assert_array_equal(mine.standard_normal((len(part), 4)), z[rows])


def test_keys_separate_streams():
    ids = np.arange(4)
    a = KeyedRandom(1, 0, 0, ids).random((4, 8))
    for other in (KeyedRandom(2, 0, 0, ids), KeyedRandom(1, 1, 0, ids), KeyedRandom(1, 0, 1, ids),
                  KeyedRandom(1, 0, 0, ids + 4)):
        assert not np.any(other.random((4, 8)) == a)
    twice = KeyedRandom(1, 0, 0, ids)
    first, second = twice.random((4, 8)), twice.random((4, 8))  # the next draw is a new stream
    np.testing.assert_array_equal(first, a)
    assert not np.any(first == second)


def test_distributions():
    r = KeyedRandom(3, ids=np.arange(20000))
    u = r.random((20000, 10))
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    f = r.random((20000, 10), dtype=np.float32)
    assert f.dtype == np.float32 and f.max() < 1
    counts = np.bincount(r.integers(2, 9, size=20000) - 2)
    assert len(counts) == 7 and counts.min() > 2600 and counts.max() < 3100
    z = r.normal(1.0, 2.0, size=(20000, 5))
    assert abs(z.mean() - 1.0) < 0.05 and abs(z.std() - 2.0) < 0.05
    lag = np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]  # neighbouring sample ids are independent
    assert abs(lag) < 0.03


def test_shared_draws_and_shape_errors():
    r = KeyedRandom(5, 1, 2, ids=np.arange(3))
    s1, s2 = r.shared(), KeyedRandom(5, 1, 2, ids=np.arange(100, 140)).shared()
    np.testing.assert_array_equal(s1.random((4, 4)), s2.random((4, 4)))  # the whole batch's, whoever asks
    assert isinstance(s1.integers(6), np.int64 | int) and 0 <= s1.integers(6) < 6
    with pytest.raises(ValueError, match=r"size \(n, ...\) with n = 3"):
        r.random((4, 2))
    assert KeyedRandom(5, ids=np.zeros(0, np.int64)).random((0, 3)).shape == (0, 3)  # an empty part of a batch


def test_layer_random_inside_and_outside_a_scope():
    own = np.random.default_rng(0)
    assert layer_random(own) is own
    with scope(9, 0, 0, np.arange(4)):
        first, second = layer_random(own), layer_random(own)
        assert isinstance(first, KeyedRandom) and first.stream != second.stream  # one stream per layer call
    assert layer_random(own) is own


def test_dropout_masks_per_sample_under_a_scope():
    x = np.ones((6, 5, 5, 3), np.float32)
    for layer in (Dropout(0.5, rng=np.random.default_rng(0)), Dropout2d(0.5, rng=np.random.default_rng(0))):
        ids = np.array([4, 8, 15, 16, 23, 42])
        with scope(1, 2, 3, ids):
            whole = layer.forward(x)
        with scope(1, 2, 3, ids[3:]):
            part = layer.forward(x[3:])
        np.testing.assert_array_equal(part, whole[3:])
        assert 0.3 < float(np.mean(whole == 0)) < 0.7
        outside = layer.forward(x)  # no scope: the layer's own generator, as always
        assert not np.array_equal(outside, whole)


def test_loader_shards_split_each_global_batch_and_augment_alike():
    images = np.random.default_rng(0).integers(0, 255, (23, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(23) % 3
    aug = Compose([RandomCrop(8, padding=2), RandomFlip()])

    def loader(rank, ranks):
        return DataLoader(images, labels, 8, rng=np.random.default_rng(5), keyed=7, shard=(rank, ranks),
                          transform=aug, prefetch=rank % 2 == 0)

    whole = [(x, y, loader_keys[3]) for loader_keys, (x, y) in _with_keys(loader(0, 1))]
    parts = [[(x, y, k[3]) for k, (x, y) in _with_keys(loader(r, 3))] for r in range(3)]
    assert len(whole) == 3 and all(len(p) == 3 for p in parts)
    for b, (x, y, ids) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[b][2] for p in parts]), ids)
        np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), y)
        np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), x)  # the same crops and flips
    assert [len(p[2][1]) for p in parts] == [3, 2, 2]  # the short last batch of 7, as evenly as it goes


def test_a_shard_can_be_empty_and_shards_need_keys():
    images = np.zeros((9, 4, 4, 1), np.uint8)
    batches = list(DataLoader(images, np.zeros(9, np.int64), 4, rng=np.random.default_rng(0), keyed=1,
                              shard=(2, 3), prefetch=False))
    assert [len(y) for _, y in batches] == [1, 1, 0]  # the last global batch has one sample, for rank 0
    with pytest.raises(ValueError, match="keyed=seed"):
        DataLoader(images, np.zeros(9, np.int64), 4, rng=np.random.default_rng(0), shard=(0, 2))
    with pytest.raises(ValueError, match="0 ≤ rank < ranks"):
        DataLoader(images, np.zeros(9, np.int64), 4, rng=np.random.default_rng(0), keyed=1, shard=(2, 2))


def test_loader_position_is_global_so_a_resume_may_change_the_split():
    images = np.random.default_rng(1).integers(0, 255, (40, 4, 4, 1), dtype=np.uint8)
    labels = np.zeros(40, np.int64)

    def loader(rank, ranks):
        return DataLoader(images, labels, 10, rng=np.random.default_rng(3), keyed=2, shard=(rank, ranks),
                          transform=RandomFlip())

    two = loader(0, 2)
    it = iter(two)
    next(it)
    next(it)
    it.close()
    state = two.state_dict()
    one = loader(0, 1)
    one.load_state_dict(state)  # the rest of the epoch on one process: the same samples, the same flips
    rest = [x for x, _ in one]
    reference = [x for x, _ in loader(0, 1)][2:]
    assert len(rest) == 2
    for a, b in zip(rest, reference, strict=True):
        np.testing.assert_array_equal(a, b)


def _with_keys(loader):
    for x, y in loader:
        yield loader.keys, (x, y)
