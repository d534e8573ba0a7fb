"""The 1-NN "labels match inputs" test claims shuffled labels only where neighbours are informative: correctly
labelled natural photos (CIFAR-10 cats and dogs from ../shared/data, skipped when absent) draw no start-up
warning, while shuffled digits are still caught; the label-free neighbour contrast and the permutation null."""

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import striate as st
from striate.diagnose import FAIL, PASS, SKIP, THRESHOLDS, check_inputs
from striate.diagnose.data_check import nearest_neighbours, permutation_null
from striate.run.execute import data_warnings

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"  # ../shared beside the repo


def photos(classes=("cat", "dog"), each: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """`each` training photos (32×32×3 uint8) of each of `classes`, read from the archive into memory (no
    extraction), and their labels (the index into `classes`)."""
    from PIL import Image

    images, labels = [], []
    with tarfile.open(SHARED) as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 3 or parts[0] != "train" or parts[1] not in classes:
                continue
            c = classes.index(parts[1])
            if labels.count(c) < each:
                images.append(np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")))
                labels.append(c)
            if len(labels) == each * len(classes):
                break
    return np.stack(images), np.array(labels, np.int64)


@pytest.fixture(scope="module")
def catdog():
    if not SHARED.exists():
        pytest.skip("../shared/data/cifar10-jpg.tar.gz is absent")
    return photos()


def startup_warnings(images: np.ndarray, labels: np.ndarray, val: int = 60) -> list:
    """Training's start-up data warnings (`run.execute.data_warnings`) for a run on `images` with the default
    preprocessing, the last `val` images as its validation split."""
    pre = st.data.Preprocessing.named("per-channel-mean")
    pre.fit(images[:-val])
    run = SimpleNamespace(data=SimpleNamespace(train_x=images[:-val], train_y=labels[:-val], classes=["cat", "dog"]),
                          val=(pre(images[-val:]), labels[-val:]), preprocess=pre, config={"seed": 0})
    return data_warnings(run)


def test_correctly_labelled_photos_draw_no_warning(catdog):
    images, labels = catdog
    order = np.random.default_rng(0).permutation(len(labels))  # the archive's order, mixed: classes in both splits
    images, labels = images[order], labels[order]
    assert startup_warnings(images, labels) == []
    pre = st.data.Preprocessing.named("per-channel-mean")
    pre.fit(images)
    match = next(v for v in check_inputs(pre(images), labels, 2) if v.check == "labels match inputs")
    assert match.status in (PASS, SKIP) and match.cause == ""
    if match.status == SKIP:  # near chance on photos: said to be inconclusive, with the measured contrast
        assert "inconclusive" in match.value and match.details["contrast"] > THRESHOLDS.inputs.match_contrast


def test_shuffled_photos_are_inconclusive_not_accused_nor_passed(catdog):
    images, labels = catdog
    pre = st.data.Preprocessing.named("per-channel-mean")
    pre.fit(images)
    shuffled = np.random.default_rng(0).permutation(labels)
    match = next(v for v in check_inputs(pre(images), shuffled, 2) if v.check == "labels match inputs")
    assert match.status == SKIP and "inconclusive" in match.advice  # no evidence either way: no claim


def test_shuffled_digits_are_still_caught():
    d = st.data.load("digits")
    x = d.images.astype(np.float32) / 255
    x -= x.mean()
    y = np.random.default_rng(0).permutation(d.labels.astype(np.int64))
    match = next(v for v in check_inputs(x, y, 10) if v.check == "labels match inputs")
    assert match.status == FAIL and match.cause == "labels_shuffled"
    assert match.details["contrast"] < THRESHOLDS.inputs.match_contrast - 0.05  # digits: tight groups


def test_neighbour_contrast_separates_tight_groups_from_diffuse_inputs():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, 64)) * 3
    grouped = centres[np.arange(300) % 10] + 0.3 * rng.standard_normal((300, 64))
    diffuse = rng.standard_normal((300, 64))
    assert nearest_neighbours(grouped)[1] < 0.2
    assert nearest_neighbours(diffuse)[1] > 0.7
    nn, c = nearest_neighbours(diffuse[:50], ref=diffuse[50:])  # against a reference set: indices into it
    assert nn.shape == (50,) and nn.max() < 250 and 0 < c < 1


def test_the_permutation_null_sits_at_chance():
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    nn = rng.integers(0, 400, 400)
    mean, spread = permutation_null(y, nn, rounds=200)
    assert abs(mean - 0.25) < 0.01 and 0.01 < spread < 0.04  # Σ p_c² = 0.25; binomial √(p(1 − p)/n) ≈ 0.022
    yr = np.zeros(400, np.int64)  # every neighbour of class 0, a quarter of the validation labels too
    assert permutation_null(y, nn, yr, rounds=20) == (0.25, 0.0)
