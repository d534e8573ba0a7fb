"""FC→CONV: the notes' claim, within float32 rounding, on a small unpadded net trained on 32×32 images; the gap
on a padded (VGG-style) net, measured and located; one-pass dense evaluation against the crop loop."""

import time

import numpy as np
import pytest

import striate as st
from striate.models.convert import (
    crop_scores,
    dense_predict,
    dense_scores,
    padding_gap,
    to_fully_convolutional,
    total_stride,
)
from striate.nn.activation import ReLU
from tests.zoo_helpers import accuracy, digits, on_canvas, train


def unpadded(rng, c1=8, c2=16):
    """conv5 - relu - pool2 - conv5 - relu - pool2 - fc64 - relu - fc10: 32 → 28 → 14 → 10 → 5, stride 4."""
    return st.nn.Sequential(
        st.nn.Conv2d(1, c1, 5, rng=rng), ReLU(), st.nn.MaxPool2d(2), st.nn.Conv2d(c1, c2, 5, rng=rng), ReLU(),
        st.nn.MaxPool2d(2), st.nn.Flatten(), st.nn.Linear(5 * 5 * c2, 64, rng=rng), ReLU(),
        st.nn.Dropout(0.2, rng=rng), st.nn.Linear(64, 10, rng=rng))


def padded(rng, c1=4, c2=8):
    """VGG-style: [conv3 pad1 - relu]×2 - pool2 - [conv3 pad1 - relu]×2 - pool2 - fc64 - relu - fc10."""
    layers, c = [], 1
    for width in (c1, c2):
        for _ in range(2):
            layers += [st.nn.Conv2d(c, width, 3, padding=1, rng=rng), ReLU()]
            c = width
        layers.append(st.nn.MaxPool2d(2))
    return st.nn.Sequential(*layers, st.nn.Flatten(), st.nn.Linear(8 * 8 * c, 64, rng=rng), ReLU(),
                            st.nn.Linear(64, 10, rng=rng))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x, y = digits("train")
    xt, yt = digits("test")
    big = on_canvas(xt[:6], 64, np.random.default_rng(5))
    return on_canvas(x, 32, rng), y, on_canvas(xt, 32, rng), yt, big


@pytest.fixture(scope="module")
def trained_unpadded(data):
    x, y, xt, yt, _ = data
    model = train(unpadded(np.random.default_rng(1)), x, y, 200, np.random.default_rng(2))
    assert accuracy(model, xt, yt) > 0.6  # it learned something: the weights are not a random init
    return model


def test_same_size_gives_the_same_scores(trained_unpadded, data):
    _, _, xt, _, _ = data
    fc = to_fully_convolutional(trained_unpadded, (32, 32, 1)).eval()
    assert fc.stride == 4 and fc.crop_shape == (32, 32, 1)
    assert not any(isinstance(m, st.nn.Linear | st.nn.Flatten) for m in fc)
    kinds = [m.kernel_size for m in fc if isinstance(m, st.nn.Conv2d)]
    assert kinds == [(5, 5), (5, 5), (5, 5), (1, 1)]  # the first FC covers the 5×5×16 volume
    with st.no_grad():
        ref = trained_unpadded.forward(xt[:16])
        out = fc.forward(xt[:16])
    assert out.shape == (16, 1, 1, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], ref, rtol=1e-5, atol=1e-5)
    assert fc.num_parameters() == trained_unpadded.num_parameters()


def test_score_map_equals_crop_loop_within_rounding(trained_unpadded, data):
    """Every entry of the 9×9 map on a 64×64 image = the original net on the 32×32 crop at stride 4, within
    float32 rounding: one pass multiplies 64×64-input matrices, the loop 32×32 ones, and BLAS blocks (and so
    sums) differently by shape and by CPU kernel, so the two agree to a few ulps, not bit for bit."""
    big = data[4]
    fc = to_fully_convolutional(trained_unpadded, (32, 32, 1)).eval()
    dense = dense_scores(fc, big)
    loop = crop_scores(trained_unpadded, big, (32, 32), stride=4)
    assert dense.shape == loop.shape == (6, 9, 9, 10)
    np.testing.assert_allclose(dense, loop, rtol=1e-5, atol=1e-5 * np.abs(loop).max())
    # spot-check one entry against a hand-cut crop
    with st.no_grad():
        one = trained_unpadded.forward(np.ascontiguousarray(big[2:3, 12:44, 20:52]))
    np.testing.assert_allclose(dense[2, 3, 5], one[0], rtol=1e-5, atol=1e-5)
    # two convolutions deep, relative to the largest feature: a few ulps (float32 ε = 1.2e-7), nothing more
    assert padding_gap(trained_unpadded, big, (32, 32)).max() < 1e-5


def test_one_pass_beats_the_crop_loop(trained_unpadded, data):
    big = data[4]
    fc = to_fully_convolutional(trained_unpadded, (32, 32, 1)).eval()

    def best(fn, repeats=3):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    dense = best(lambda: dense_scores(fc, big))
    loop = best(lambda: crop_scores(trained_unpadded, big, (32, 32), 4))
    # measured ≈ 4 ms vs ≈ 60 ms for 6 images × 81 positions; demand a clear margin, not the full ratio
    assert dense * 2 < loop, (dense, loop)


def test_padded_net_gap_is_a_border_ring(data):
    """With zero padding the maps differ; the difference sits in a ring at the border of each crop's last
    feature volume (8×8 here, ring 2 cells wide), and the interior agrees within float32 rounding."""
    x, y, _, _, big = data
    model = train(padded(np.random.default_rng(3)), x[:600], y[:600], 60, np.random.default_rng(4))
    fc = to_fully_convolutional(model, (32, 32, 1)).eval()
    dense, loop = dense_scores(fc, big), crop_scores(model, big, (32, 32), 4)
    rel = np.abs(dense - loop).max() / np.abs(loop).max()
    assert rel > 1e-3  # not float noise: a real gap
    gap = padding_gap(model, big, (32, 32))
    assert gap.shape == (8, 8)
    interior, ring = gap[2:6, 2:6], np.concatenate([gap[:2].ravel(), gap[6:].ravel(), gap[:, :2].ravel(),
                                                     gap[:, 6:].ravel()])
    assert interior.max() < 1e-5
    assert ring.min() > 1e-3


def test_global_pool_head_converts(rng):
    """GlobalAvgPool + Linear → AvgPool over the training-size map + 1×1 conv; on an unpadded net the map
    equals the crops within float32 rounding."""
    model = st.nn.Sequential(st.nn.Conv2d(2, 6, 3, rng=rng), ReLU(), st.nn.GlobalAvgPool2d(),
                             st.nn.Linear(6, 4, rng=rng)).eval()
    fc = to_fully_convolutional(model, (10, 10, 2))
    assert total_stride(model) == 1
    img = rng.standard_normal((2, 13, 12, 2)).astype(np.float32)
    np.testing.assert_allclose(dense_scores(fc, img), crop_scores(model, img, (10, 10), 1), rtol=1e-5, atol=1e-5)


def test_dense_predict_averages_probabilities(trained_unpadded, data):
    big = data[4]
    # 66×66 does not tile (66 − 32 is not a multiple of 4): its top-left 64×64 is used (the shifted passes of
    # dense_map start from the top-left corner too, so their positions interleave)
    img = np.pad(big, ((0, 0), (1, 1), (1, 1), (0, 0)))
    probs, scores = dense_predict(trained_unpadded, img, (32, 32, 1))
    assert scores.shape == (6, 9, 9, 10) and probs.shape == (6, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    fc = to_fully_convolutional(trained_unpadded, (32, 32, 1)).eval()
    np.testing.assert_allclose(scores, dense_scores(fc, img[:, :64, :64]), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="smaller"):
        dense_predict(trained_unpadded, big[:, :20, :20], (32, 32, 1))


def test_model_untouched_and_errors(rng):
    model = unpadded(rng)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    fc = to_fully_convolutional(model, (32, 32, 1))
    for p in fc.parameters():
        p.data += 1
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ValueError, match="not a spatial volume"):
        to_fully_convolutional(st.nn.Sequential(st.nn.Linear(4, 2, rng=rng)), (4,))
    with pytest.raises(TypeError):
        to_fully_convolutional(st.nn.Linear(4, 2, rng=rng), (4,))
