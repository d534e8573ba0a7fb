"""Transfer learning: freeze / unfreeze, new heads, pretrained weights from striate and from PyTorch
(torchvision layouts and names), and the fine-tuning claim on small data."""

from collections import OrderedDict

import numpy as np
import pytest

import striate as st
from striate.models import alexnet, lenet, vgg
from striate.models.transfer import (
    frozen_parameters,
    load_pretrained,
    load_torch_weights,
    read_weights,
    replace_head,
    torch_name_map,
    trainable_parameters,
)
from striate.nn.activation import ReLU
from tests.zoo_helpers import accuracy, digits, train


def small(rng, classes=10):
    return st.nn.Sequential(st.nn.Conv2d(1, 4, 3, padding=1, rng=rng), ReLU(), st.nn.MaxPool2d(2),
                            st.nn.Conv2d(4, 8, 3, padding=1, rng=rng), ReLU(), st.nn.MaxPool2d(2), st.nn.Flatten(),
                            st.nn.Linear(32, 16, rng=rng), ReLU(), st.nn.Linear(16, classes, rng=rng))


# ----- freezing ------------------------------------------------------------------------------
def test_freeze_marks_parameters_and_backward_stops(rng):
    net = small(rng)
    net.freeze(upto=3)
    assert frozen_parameters(net) == ["0.weight", "0.bias"]
    net.unfreeze().freeze(upto=6)
    assert frozen_parameters(net) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert trainable_parameters(net) == ["7.weight", "7.bias", "9.weight", "9.bias"]
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    y = net(x)
    assert net.backward(np.ones_like(y)) is None  # no input gradient: nobody uses it
    assert net[3]._cache is not None  # forward cached it, but backward never reached layer 3 …
    assert not net[3].weight.grad.any() and net[7].weight.grad.any()
    net.unfreeze()
    assert frozen_parameters(net) == []
    net.zero_grad()
    y = net(x)
    assert net.backward(np.ones_like(y)).shape == x.shape and net[0].weight.grad.any()


def test_freeze_counts_layers_with_weights(rng):
    """`freeze(k)` (and `--freeze K`) counts what a person counts: convolutions and fully-connected layers, not
    ReLU or pooling; a BatchNorm after the k-th layer goes with it. `upto=k` still counts children."""
    net = small(rng)
    assert net.weighted_layers() == ["0", "3", "7", "9"]
    net.freeze(2)
    assert frozen_parameters(net) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    net.unfreeze().freeze(upto=2)
    assert frozen_parameters(net) == ["0.weight", "0.bias"]
    net.unfreeze().freeze(4)
    assert trainable_parameters(net) == []
    bn = st.nn.Sequential(st.nn.Conv2d(1, 4, 3, rng=rng), st.nn.BatchNorm(4), ReLU(), st.nn.Conv2d(4, 4, 3, rng=rng),
                          st.nn.BatchNorm(4), st.nn.Flatten(), st.nn.Linear(16, 3, rng=rng))
    bn.freeze(1)
    assert frozen_parameters(bn) == ["0.weight", "0.bias", "1.gamma", "1.beta"]
    nested = st.nn.Sequential(st.nn.Sequential(st.nn.Conv2d(1, 4, 3, rng=rng), ReLU()), st.nn.Flatten(),
                              st.nn.Linear(144, 3, rng=rng))
    assert nested.weighted_layers() == ["0.0", "2"]
    nested.freeze(1)
    assert frozen_parameters(nested) == ["0.0.weight", "0.0.bias"]
    with pytest.raises(ValueError, match=r"layers=5 is outside 0..4 \(the layers with weights: 0, 3, 7, 9\)"):
        small(rng).freeze(5)


def test_freeze_by_name_and_errors(rng):
    net = small(rng)
    net.freeze(names=["3", "9.bias"])
    assert frozen_parameters(net) == ["3.weight", "3.bias", "9.bias"]
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    net.backward(np.ones_like(net(x)))
    assert not net[3].weight.grad.any() and not net[9].bias.grad.any() and net[0].weight.grad.any()
    with pytest.raises(KeyError, match="no parameter named '12'"):
        net.freeze(names="12")
    with pytest.raises(ValueError, match="outside"):
        net.freeze(upto=99)
    with pytest.raises(ValueError, match="layers=k"):
        net.freeze()


def test_frozen_layers_bit_identical_after_training(rng):
    x, y = digits("train")
    net = small(rng)
    frozen_before = {k: v.copy() for k, v in net.state_dict().items() if k.split(".")[0] in ("0", "3")}
    head_before = net[9].weight.data.copy()
    net.freeze(upto=7)
    opt = st.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    loss = st.nn.SoftmaxCrossEntropy()
    for i in range(20):
        opt.zero_grad()
        loss(net.forward(x[i * 32:(i + 1) * 32]), y[i * 32:(i + 1) * 32])
        net.backward(loss.backward())
        opt.step()
    for k, v in net.state_dict().items():
        if k in frozen_before:
            np.testing.assert_array_equal(v, frozen_before[k])
    assert not np.array_equal(net[9].weight.data, head_before)
    # an optimizer built before freezing skips them too (weight decay would otherwise move them)
    late = small(np.random.default_rng(9))
    opt2 = st.optim.SGD(late, lr=0.1, weight_decay=0.1)
    late.freeze(upto=1)
    w0 = late[0].weight.data.copy()
    late.backward(np.ones_like(late(x[:2])))
    opt2.step()
    np.testing.assert_array_equal(late[0].weight.data, w0)
    assert not np.array_equal(late[3].weight.data, small(np.random.default_rng(9))[3].weight.data)


def test_replace_head(rng):
    net = lenet.lenet5_cifar(rng=rng)
    old = net[-1]
    head = net.replace_head(2, rng)
    assert net[-1] is head and head.in_features == old.in_features == 84 and head.out_features == 2
    assert net.build_config["num_classes"] == 2
    assert net.output_shape((3, 32, 32, 3)) == (3, 2)
    nested = st.nn.Sequential(st.nn.Flatten(), st.nn.Sequential(st.nn.Linear(4, 3, rng=rng), ReLU()))
    assert replace_head(nested, 5, rng).out_features == 5
    with pytest.raises(ValueError, match="no Linear"):
        st.nn.Sequential(st.nn.Linear(4, 3, rng=rng), st.nn.Conv2d(3, 3, 1, rng=rng)).replace_head(2, rng)


# ----- fine-tuning beats training from scratch ----------------------------------------------------
def test_finetuning_beats_scratch():
    """The issue's claim on small data: pre-train on the 10 digit classes, fine-tune to a different label set
    of the same images (a 2-class split: even / odd) on 40 labelled images for 20 steps with the features
    frozen, against the same network trained from scratch for the same steps on the same images. Four seeds;
    frozen layers must be bit-identical afterwards."""
    x, y = digits("train")
    xt, yt = digits("test")
    margins = []
    for seed in range(4):
        pre = train(small(np.random.default_rng(seed)), x, y, 150, np.random.default_rng(seed + 10), lr=0.05)
        assert accuracy(pre, xt, yt) > 0.7
        pick = np.random.default_rng(seed + 50).permutation(len(x))[:40]
        xb, yb = x[pick], y[pick] % 2
        pre.replace_head(2, np.random.default_rng(2))
        pre.freeze(upto=6)  # conv - relu - pool - conv - relu - pool: the feature extractor
        frozen = {k: v.copy() for k, v in pre.state_dict().items() if int(k.split(".")[0]) < 6}
        tuned = train(pre, xb, yb, 20, np.random.default_rng(3), lr=0.05, batch=10)
        scratch = train(small(np.random.default_rng(seed + 100), 2), xb, yb, 20, np.random.default_rng(3), lr=0.05,
                        batch=10)
        acc_tuned, acc_scratch = accuracy(tuned, xt, yt % 2), accuracy(scratch, xt, yt % 2)
        assert acc_tuned > acc_scratch, (seed, acc_tuned, acc_scratch)
        margins.append(acc_tuned - acc_scratch)
        for k, v in frozen.items():
            np.testing.assert_array_equal(tuned.state_dict()[k], v)
    assert np.mean(margins) > 0.1, margins  # measured: +0.42, +0.05, +0.10, +0.22


# ----- striate weights ---------------------------------------------------------------------------
def test_load_pretrained_from_file_and_run(rng, tmp_path):
    from safetensors.numpy import save_file

    from striate.train.checkpoint import CheckpointStore

    src = lenet.lenet5_cifar(rng=rng)
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    dst = lenet.lenet5_cifar(2, rng=np.random.default_rng(5))
    with pytest.raises(KeyError, match="shape mismatch: 11.weight"):
        load_pretrained(dst, tmp_path / "w.safetensors")
    report = load_pretrained(dst, tmp_path / "w.safetensors", skip_mismatched=True)
    assert sorted(report.skipped) == ["11.bias", "11.weight"] and report.ok
    np.testing.assert_array_equal(dst[0].weight.data, src[0].weight.data)
    assert not np.array_equal(dst[9].weight.data, np.zeros_like(dst[9].weight.data))

    store = CheckpointStore(tmp_path / "run" / "checkpoints")
    store.save(src.state_dict(), {"meta": {}}, tags=("last",))
    fresh = lenet.lenet5_cifar(rng=np.random.default_rng(6))
    report = load_pretrained(fresh, tmp_path / "run")
    assert "last checkpoint" in report.source and len(report.loaded) == 10
    np.testing.assert_array_equal(fresh[11].bias.data, src[11].bias.data)
    partial = {k: v for k, v in src.state_dict().items() if not k.startswith("0.")}
    partial["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(KeyError) as info:
        load_pretrained(fresh, partial)
    assert "missing (left as initialised): 0.bias, 0.weight" in str(info.value)
    assert "unexpected (unused): extra.weight" in str(info.value)
    r = load_pretrained(fresh, partial, strict=False, exclude=["extra"])
    assert r.ignored == ["extra.weight"] and r.missing == ["0.bias", "0.weight"]
    with pytest.raises(FileNotFoundError):
        read_weights(tmp_path / "nowhere")


# ----- torch weights -----------------------------------------------------------------------------
def _torch_alexnet(torch, widths, hidden, classes):
    nn = torch.nn
    c1, c2, c3, c4, c5 = widths
    features = nn.Sequential(nn.Conv2d(3, c1, 11, 4, 0), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(c1, c2, 5, padding=2),
                             nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(), nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(),
                             nn.MaxPool2d(3, 2))
    classifier = nn.Sequential(nn.Dropout(), nn.Linear(c5 * 36, hidden), nn.ReLU(), nn.Dropout(),
                               nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return nn.Sequential(OrderedDict(features=features, flatten=nn.Flatten(), classifier=classifier)).eval()


def _torch_vgg11_bn(torch, width, hidden, classes, volume):
    nn = torch.nn
    layers, c = [], 3
    for v in vgg.CONFIGS[11]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        out = int(v * width)
        layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        c = out
    classifier = nn.Sequential(nn.Linear(c * volume, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, hidden),
                               nn.ReLU(), nn.Dropout(), nn.Linear(hidden, classes))
    net = nn.Sequential(OrderedDict(features=nn.Sequential(*layers), flatten=nn.Flatten(), classifier=classifier))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(7)
    return net.eval()


def _compare(torch, tnet, snet, shape, rng, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "torch.safetensors"
    save_file({k: v.contiguous() for k, v in tnet.state_dict().items()}, str(path))
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    with torch.no_grad():
        ref = tnet(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    return path, x, ref


def test_torchvision_alexnet_weights(rng, torch, tmp_path):
    torch.manual_seed(0)
    tnet = _torch_alexnet(torch, (16, 48, 96, 64, 64), 1024, 10)
    snet = alexnet.alexnet(10, rng=rng, variant="torchvision", width=0.25).eval()
    path, x, ref = _compare(torch, tnet, snet, (227, 227, 3), rng, tmp_path)
    report = load_torch_weights(snet, path, arch="alexnet")
    assert report.ok and len(report.loaded) == 16 and not report.ignored
    with st.no_grad():
        np.testing.assert_allclose(snet(x), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # the first FC reads a 6×6×64 volume: without the C·H·W → H·W·C re-ordering it would not match
    np.testing.assert_array_equal(snet[0].weight.data, tnet.features[0].weight.detach().numpy().transpose(2, 3, 1, 0))


def test_torchvision_vgg_bn_weights_and_reports(rng, torch, tmp_path):
    torch.manual_seed(0)
    tnet = _torch_vgg11_bn(torch, 0.125, 512, 10, volume=4)
    snet = vgg.vgg11_bn(10, rng=rng, width=0.125, image_size=64).eval()
    path, x, ref = _compare(torch, tnet, snet, (64, 64, 3), rng, tmp_path)
    report = load_torch_weights(snet, path, arch="vgg11_bn")
    assert report.ok, str(report)
    with st.no_grad():
        np.testing.assert_allclose(snet(x), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert int(snet[1].num_batches_tracked) == 7
    mapping = torch_name_map(snet, "vgg11_bn")
    assert mapping["0.weight"] == "features.0.weight" and mapping["1.gamma"] == "features.1.weight"
    assert mapping["4.weight"] == "features.4.weight"  # after conv, bn, relu, pool
    assert mapping[f"{len(snet) - 1}.weight"] == "classifier.6.weight"

    from safetensors.numpy import load_file

    state = load_file(str(path))
    state.pop("features.0.bias")
    state["features.99.weight"] = np.zeros(1, np.float32)
    fresh = vgg.vgg11_bn(10, rng=rng, width=0.125, image_size=64)
    with pytest.raises(KeyError) as info:
        load_torch_weights(fresh, state, arch="vgg11_bn")
    assert "missing (left as initialised): 0.bias" in str(info.value)
    assert "unexpected (unused): features.99.weight" in str(info.value)
    # a torchvision head for 1000 classes into a 10-class model: skipped on request
    state = load_file(str(path))
    state["classifier.6.weight"] = np.zeros((1000, 512), np.float32)
    state["classifier.6.bias"] = np.zeros(1000, np.float32)
    r = load_torch_weights(fresh, state, arch="vgg11_bn", skip_mismatched=True)
    assert r.skipped == [f"{len(fresh) - 1}.weight", f"{len(fresh) - 1}.bias"]
    with pytest.raises(ValueError, match="parameterised layers"):
        torch_name_map(fresh, "alexnet")
    with pytest.raises(ValueError, match="unknown arch"):
        torch_name_map(fresh, "resnet101")


def test_sequential_layout_map(rng, torch, tmp_path):
    """A torch nn.Sequential laid out like the striate model loads by index, with the Flatten re-ordering."""
    nn = torch.nn
    tnet = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, 10)).eval()
    snet = small(rng).eval()
    path, x, ref = _compare(torch, tnet, snet, (8, 8, 1), rng, tmp_path)
    load_torch_weights(snet, path, input_shape=(8, 8, 1))
    with st.no_grad():
        np.testing.assert_allclose(snet(x), ref, rtol=1e-5, atol=1e-5)


# ----- no lossy casts; a refused load changes nothing ----------------------------------------------
def test_load_pretrained_refuses_lossy_casts_and_changes_nothing(rng):
    model = small(rng)
    before = model.state_dict()
    source = {k: v + 1 for k, v in before.items()}
    for key, bad, fragment in [("9.bias", source["9.bias"].astype(np.int32), "is int32, the model stores float32"),
                               ("7.weight", source["7.weight"] > 0, "is bool, the model stores float32"),
                               ("9.bias", source["9.bias"].astype(np.float64) + 1e-9,
                                "is float64, the model stores float32: .*pass cast=True")]:
        with pytest.raises(ValueError, match=f"load_pretrained into Sequential: '{key}' {fragment}"):
            load_pretrained(model, {**source, key: bad})
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, before[k])
    rounded = source["9.bias"].astype(np.float64) + 1e-9
    load_pretrained(model, {**source, "9.bias": rounded}, cast=True)
    np.testing.assert_array_equal(model[9].bias.data, rounded.astype(np.float32))
    np.testing.assert_array_equal(model[0].weight.data, source["0.weight"])


def test_strict_refusal_changes_nothing(rng):
    model = small(rng)
    before = model.state_dict()
    partial = {k: v + 1 for k, v in before.items() if not k.startswith("9.")}
    with pytest.raises(KeyError, match="missing"):
        load_pretrained(model, partial)
    with pytest.raises(KeyError, match="shape mismatch"):
        load_pretrained(model, {**partial, "9.weight": np.zeros((16, 3), np.float32), "9.bias": before["9.bias"]})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_torch_weights_refuses_lossy_casts(rng, torch):
    nn = torch.nn
    tnet = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))
    state = {k: v.double() for k, v in tnet.state_dict().items()}
    state["0.weight"] = state["0.weight"] + 1e-9  # float64 values no float32 holds
    model = small(rng)
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"load_torch_weights into Sequential: '0.weight ← 0.weight' is float64, "
                                         r"the model stores float32: .*pass cast=True"):
        load_torch_weights(model, state, input_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="'9.bias ← 9.bias' is int64"):
        load_torch_weights(model, {**state, "9.bias": torch.arange(10)}, input_shape=(8, 8, 1), cast=True)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    report = load_torch_weights(model, state, input_shape=(8, 8, 1), cast=True)
    assert report.ok and len(report.loaded) == 8
    rounded = state["0.weight"].numpy().astype(np.float32)
    np.testing.assert_array_equal(model[0].weight.data, rounded.transpose(2, 3, 1, 0))
    exact = {k: v.float().double() for k, v in tnet.state_dict().items()}  # float64 holding float32 values loads
    assert load_torch_weights(small(rng), exact, input_shape=(8, 8, 1)).ok
