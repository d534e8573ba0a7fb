"""airbench's data pieces: translate:P (reflect padding), altflip (alternating flip), drop_last and the
flip-translate test-time augmentation — each against a per-sample reference, keyed like the other augmentations."""

import numpy as np
import pytest

from striate.data import Compose, DataError, DataLoader
from striate.data.augment import AlternatingFlip, RandomTranslate
from striate.data.pipeline import augmentation, check_augment
from striate.kernels.keyed_random import KeyedRandom


def _images(n=12, h=6, w=7, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def test_translate_matches_a_per_sample_reflect_pad_and_crop():
    x = _images()
    out = RandomTranslate(2)(x, np.random.default_rng(42))
    draws = np.random.default_rng(42)
    oy, ox = draws.integers(0, 5, 12), draws.integers(0, 5, 12)
    for i in range(12):
        padded = np.pad(x[i], ((2, 2), (2, 2), (0, 0)), mode="reflect")
        assert np.array_equal(out[i], padded[oy[i]:oy[i] + 6, ox[i]:ox[i] + 7])
    assert out.shape == x.shape and out.dtype == np.uint8 and len(set(zip(oy, ox, strict=True))) > 1
    zeros = RandomTranslate(1, mode="constant")(x + 1, np.random.default_rng(1))
    assert (zeros == 0).any()  # the constant border reaches into some windows
    with pytest.raises(DataError, match="larger than 6"):
        RandomTranslate(6)(x, np.random.default_rng(0))
    with pytest.raises(DataError, match="pad must be an int ≥ 1"):
        RandomTranslate(0)


def test_numpy_reflect_padding_is_torchs():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)  # NCHW
    ours = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    np.testing.assert_array_equal(ours, torch.nn.functional.pad(torch.from_numpy(x), (2,) * 4, "reflect").numpy())


def _flipped(out, x):
    """Which samples of `out` are x's mirror (x's columns all differ from their mirror in these tests)."""
    same, mirror = (out == x).all(axis=(1, 2, 3)), (out == x[:, :, ::-1]).all(axis=(1, 2, 3))
    assert (same ^ mirror).all()
    return mirror


def test_altflip_flips_fixed_samples_on_even_epochs_and_the_others_on_odd_ones():
    x = np.tile(np.arange(5, dtype=np.uint8)[None, None, :, None], (40, 3, 1, 2))
    ids = np.arange(100, 140)
    aug = AlternatingFlip()
    even = _flipped(aug(x, KeyedRandom(7, epoch=0, batch=3, ids=ids)), x)
    assert 8 < even.sum() < 32
    for epoch, batch in ((2, 0), (4, 9)):
        assert np.array_equal(_flipped(aug(x, KeyedRandom(7, epoch, batch, ids)), x), even)
    for epoch, batch in ((1, 3), (3, 5)):
        assert np.array_equal(_flipped(aug(x, KeyedRandom(7, epoch, batch, ids)), x), ~even)
    # a per-sample reference: each sample's own base bit, whatever else is in its batch
    bits = [KeyedRandom(7, 0, 0, [i], stream=AlternatingFlip.STREAM).random(1)[0] < 0.5 for i in ids]
    assert np.array_equal(even, np.array(bits))
    assert not np.array_equal(_flipped(aug(x, KeyedRandom(8, 0, 0, ids)), x), even)  # another seed


def test_altflip_needs_keys_and_contradicts_flip():
    x = _images()
    with pytest.raises(DataError, match="needs a keyed loader.*Generator"):
        AlternatingFlip()(x, np.random.default_rng(0))
    with pytest.raises(DataError, match="needs a keyed loader"):
        AlternatingFlip()(x, KeyedRandom(0))
    with pytest.raises(DataError, match="flip and altflip contradict"):
        check_augment(["altflip", "crop", "flip"])
    loader = DataLoader(x, np.zeros(12, np.int64), 4, rng=np.random.default_rng(0), transform=AlternatingFlip(),
                        prefetch=False)
    with pytest.raises(DataError, match="keyed"):
        next(iter(loader))


@pytest.mark.parametrize(("name", "message"), [
    ("translate:0", "translate:P with P ≥ 1"), ("translate:1.5", "translate:P"), ("translate:", "translate:P"),
    ("translat", "unknown augmentation 'translat'.*translate:P, noise:σ"), ("altflip:2", "unknown")])
def test_malformed_augmentation_names(name, message):
    with pytest.raises(DataError, match=message):
        check_augment([name])


def test_translate_names_and_default():
    before, _ = augmentation(["translate", "altflip", "translate:3"], (32, 32, 3))
    assert [repr(s) for s in before] == ["RandomTranslate(pad=2, mode='reflect')", "AlternatingFlip()",
                                         "RandomTranslate(pad=3, mode='reflect')"]
    assert augmentation(["translate"], (8, 8, 1))[0][0].pad == 1
    with pytest.raises(DataError, match="larger than 8 pixels"):
        augmentation(["translate:8"], (8, 8, 1))


def test_keyed_translate_and_altflip_do_not_depend_on_batch_mates():
    x = _images(n=24)
    transform = Compose([RandomTranslate(2), AlternatingFlip()])
    ids = np.array([4, 9, 2, 17, 0, 21])
    whole = transform(x[ids], KeyedRandom(11, 1, 2, ids))
    for part in (slice(0, 2), slice(2, 6), slice(5, 6)):  # the batch split over processes, or a sample alone
        np.testing.assert_array_equal(transform(x[ids[part]], KeyedRandom(11, 1, 2, ids[part])), whole[part])
    assert not np.array_equal(transform(x[ids], KeyedRandom(11, 2, 2, ids)), whole)  # a new epoch, new draws


def test_drop_last_run_option_gives_floor_n_over_b_batches(tmp_path):
    from striate.run import RunDir, build
    from striate.run import config as cfg

    base = {"epochs": 2, "batch_size": 64, "limit": 300, "val_fraction": 0.0, "report": "off", "diagnostics": 0,
            "schedule": "cosine"}
    runs = {d: build(cfg.resolve({**base, "drop_last": d}), RunDir(tmp_path / str(d)), test=False)
            for d in (False, True)}
    n = len(runs[True].data.train_x)
    assert n == 300 and len(runs[True].train_loader) == n // 64 and len(runs[False].train_loader) == -(-n // 64)
    assert sum(1 for _ in runs[True].train_loader) == n // 64
    # the schedule spans the steps the loader gives: cosine reaches its end at epochs · len(loader)
    steps = 2 * (n // 64)
    assert runs[True].trainer.schedule(steps) == pytest.approx(0, abs=1e-12)
    assert runs[False].trainer.schedule(steps) > 0
    with pytest.raises(cfg.ConfigError, match="leaves no batch"):
        build(cfg.resolve({**base, "drop_last": True, "batch_size": 512}), RunDir(tmp_path / "x"), test=False)


def test_flip_translate_tta_is_the_weighted_mean_of_six_views_logits():
    from striate.nn.activation import ReLU
    from striate.nn.containers import Sequential
    from striate.nn.conv import Conv2d
    from striate.nn.linear import Linear
    from striate.nn.losses import SoftmaxCrossEntropy
    from striate.nn.shape import Flatten
    from striate.train import inference
    from striate.train.tta import averages_logits, tta_scores, weighted_views

    rng = np.random.default_rng(0)
    net = Sequential(Conv2d(2, 4, 3, padding=1, rng=rng), ReLU(), Flatten(), Linear(4 * 6 * 5, 3, rng=rng)).eval()
    x = rng.standard_normal((7, 6, 5, 2)).astype(np.float32)
    for p in (1, 2):
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        shifted = [padded[:, :6, :5], padded[:, 2 * p:2 * p + 6, 2 * p:2 * p + 5]]
        logits = [net.forward(np.ascontiguousarray(v)) for v in (x, x[:, :, ::-1], shifted[0], shifted[0][:, :, ::-1],
                                                               shifted[1], shifted[1][:, :, ::-1])]
        expected = 0.5 * (logits[0] + logits[1]) / 2 + 0.5 * (logits[2] + logits[3] + logits[4] + logits[5]) / 4
        got = tta_scores(net, x, "flip-translate" if p == 1 else f"flip-translate:{p}")
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert [w for _, w in weighted_views(x, "flip-translate")] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    assert [w for _, w in weighted_views(x, "flip")] == [0.5, 0.5] and averages_logits("flip-translate:2")
    assert not averages_logits("flip")
    # where tta works today: batched inference and evaluation
    np.testing.assert_allclose(inference.scores(net, x, batch_size=3, tta="flip-translate"),
                               tta_scores(net, x, "flip-translate"), rtol=1e-6)
    r = inference.evaluate(net, SoftmaxCrossEntropy(), (x, np.zeros(7, np.int64)), tta="flip-translate", keep=True)
    np.testing.assert_allclose(r["scores"], tta_scores(net, x, "flip-translate"), rtol=1e-6)
    with pytest.raises(ValueError, match="larger than 5 pixels"):
        weighted_views(x, "flip-translate:5")
    with pytest.raises(ValueError, match="flip-translate:N with N ≥ 1"):
        weighted_views(x, "flip-translate:0")


def test_run_options_check_the_names():
    from striate.run import config as cfg

    config = cfg.resolve({"augment": "translate:2,altflip", "tta": "flip-translate:2", "drop_last": "true"})
    assert config["augment"] == ["translate:2", "altflip"] and config["tta"] == "flip-translate:2"
    assert config["drop_last"] is True
    for bad, message in ((({"augment": ["flip", "altflip"]}), "contradict"), ({"augment": ["translate:-1"]}, "P ≥ 1"),
                         ({"tta": "flip-translate:x"}, "flip-translate:N")):
        with pytest.raises(cfg.ConfigError, match=message):
            cfg.resolve(bad)
