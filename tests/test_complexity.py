import numpy as np
import pytest

import striate as st
from striate.complexity import cache_bytes, complexity, parse_input_shape
from striate.models import alexnet, googlenet, lenet, vgg
from striate.nn.activation import ReLU
from striate.optim.registry import STATE_SLOTS


@pytest.fixture(scope="module")
def vgg16():
    return vgg.vgg16(rng=np.random.default_rng(0))


def test_totals_match_the_model(vgg16):
    c = complexity(vgg16, (224, 224, 3))
    assert c.total_params == vgg16.num_parameters() == 138_357_544
    assert c.total_macs == vgg16.macs((1, 224, 224, 3)) == 15_470_264_320
    assert c.output_shape == (1, 1000)
    assert len(c.rows) == len(vgg16)


def test_vgg16_memory_as_in_the_notes(vgg16):
    """The notes' VGG-16 walk-through counts the input and every CONV/POOL/FC output (ReLU in place)."""
    c = complexity(vgg16, (224, 224, 3))
    counted = sum(r.activation_bytes for r in c.rows if r.layer.split("(")[0] in ("Conv2d", "MaxPool2d", "Linear"))
    convs = 224**2 * 64 * 2 + 112**2 * 128 * 2 + 56**2 * 256 * 3 + 28**2 * 512 * 3 + 14**2 * 512 * 3
    pools = 112**2 * 64 + 56**2 * 128 + 28**2 * 256 + 14**2 * 512 + 7**2 * 512
    assert counted // 4 + 224 * 224 * 3 == convs + pools + 4096 + 4096 + 1000 + 224 * 224 * 3  # ≈ 15.2 M values
    # per-layer MACs of the first two layers as in the notes: 224·224·64·3·3·3 and 224·224·64·3·3·64
    assert c.rows[0].macs == 224 * 224 * 64 * 27 and c.rows[2].macs == 224 * 224 * 64 * 576
    assert c.rows[0].params == 1_792


def test_alexnet_and_googlenet_rows():
    a = complexity(alexnet.alexnet(rng=np.random.default_rng(0), width=0.25, num_classes=10), (227, 227, 3))
    assert a.rows[0].output_shape == (1, 55, 55, 24)
    assert a.rows[3].output_shape == (1, 27, 27, 24)  # conv, relu, LRN, overlapping pool
    g = googlenet.googlenet(rng=np.random.default_rng(0), width=0.125, num_classes=10)
    c = complexity(g, (224, 224, 3), batch_size=2)
    assert c.total_params == g.num_parameters() and c.total_macs == g.macs((2, 224, 224, 3))
    concat_rows = [r for r in c.rows if r.layer.startswith("Concat")]
    assert len(concat_rows) == 9 and concat_rows[-1].output_shape == (2, 7, 7, 128)
    assert any(r.name.endswith(".3.2") and r.layer.startswith("Conv2d") for r in c.rows)  # pool-projection branch


def test_training_memory_hand_count():
    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Conv2d(3, 4, 3, padding=1, rng=rng), ReLU(), st.nn.Flatten(),
                           st.nn.Linear(4 * 8 * 8, 10, rng=rng))
    c = complexity(net, (8, 8, 3), batch_size=2)
    params = 3 * 9 * 4 + 4 + 256 * 10 + 10
    per_sample = 8 * 8 * 3 + 8 * 8 * 4 * 3 + 10  # input, conv, relu, flatten, linear
    assert c.activation_bytes == 2 * per_sample * 4
    m = c.training_memory(16, "adam", threads=1)
    assert (m.activations, m.parameters, m.gradients, m.optimizer_state) == (
        16 * per_sample * 4, params * 4, params * 4, 2 * params * 4)
    columns = 8 * 8 * 3 * 3 * 3 * 4  # the conv's im2col matrix per image: Ho·Wo rows of KH·KW·C values
    assert m.workspace == 2 * 16 * columns  # the columns and their gradient, the batch in one chunk
    assert m.total == m.activations + m.workspace + 4 * params * 4
    assert c.training_memory(optimizer="sgd").optimizer_state == 0
    assert c.training_memory(optimizer=3).optimizer_state == 3 * params * 4
    for name, slots in STATE_SLOTS.items():  # every optimizer of the registry, with the registry's count
        assert c.training_memory(optimizer=name).optimizer_state == slots * params * 4
    # frozen layers need no gradient or optimizer state
    net.freeze(upto=2)
    frozen = complexity(net, (8, 8, 3)).training_memory(1, "momentum")
    assert frozen.gradients == frozen.optimizer_state == (256 * 10 + 10) * 4
    assert frozen.parameters == params * 4
    with pytest.raises(ValueError, match="unknown optimizer"):
        c.training_memory(optimizer="lbfgs")


def test_estimate_against_measured_caches():
    """The textbook count (outputs kept once) against what striate's caches really hold: same order."""
    rng = np.random.default_rng(0)
    net = lenet.lenet5_cifar(rng=rng)
    x = rng.standard_normal((8, 32, 32, 3)).astype(np.float32)
    net.train()
    net(x)
    measured = cache_bytes(net)
    estimate = complexity(net, (32, 32, 3), batch_size=8).training_memory().activations
    assert 0.5 < estimate / measured < 2
    net.clear_state()
    assert cache_bytes(net) == 0


def test_table_and_errors(vgg16):
    text = str(complexity(vgg16, (224, 224, 3)))
    assert "138,357,544" in text and "15,470,264,320" in text and "Conv2d(3→64, 3×3, pad=1)" in text
    assert "138.36 M parameters" in text and "15.47 G MACs" in text
    assert "GiB" in str(complexity(vgg16, (224, 224, 3)).training_memory(64, "momentum"))
    with pytest.raises(st.nn.LayerError, match="not an integer"):
        complexity(alexnet.alexnet_cifar(rng=np.random.default_rng(0), width=0.125), (30, 30, 3))
    assert parse_input_shape("224x224x3") == (224, 224, 3) == parse_input_shape("224×224×3")
    with pytest.raises(ValueError, match="HxWxC"):
        parse_input_shape("224x224")
