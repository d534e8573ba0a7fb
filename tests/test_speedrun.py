"""speedrun_cifar, the airbench-like zoo net: its structure, and one training step equal to the same
architecture written in torch.nn the way the published recipe writes it."""

import numpy as np
import pytest

import striate as st
from striate.models import speedrun


def test_structure_parameters_and_macs():
    net = speedrun.speedrun_cifar(rng=np.random.default_rng(0))
    kinds = [type(m).__name__ for m in net]
    assert kinds[:2] == ["PatchWhitening", "GELU"] and kinds[-4:] == ["MaxPool2d", "Flatten", "Linear", "Scale"]
    assert kinds[2:9] == ["Conv2d", "MaxPool2d", "BatchNorm", "GELU", "Conv2d", "BatchNorm", "GELU"]
    assert net.num_parameters() == 1_972_792
    assert st.summary(net, (32, 32, 3)).total_macs > 118_000_000
    convs = [m for m in net if type(m) is st.nn.Conv2d]
    assert [c.out_channels for c in convs] == [64, 64, 256, 256, 256, 256] and all(c.bias is None for c in convs)
    w = convs[1].weight.data  # Dirac on the first C_in filters: the identity at the centre tap
    np.testing.assert_array_equal(w[1, 1, :, :64], np.eye(64, dtype=np.float32))
    assert all(not m.gamma.requires_grad and m.momentum == 0.4 and m.eps == 1e-12
               for m in net if isinstance(m, st.nn.BatchNorm))
    assert not net[0].weight.requires_grad and net[0].bias_epochs == 3
    assert net.output_shape((2, 32, 32, 3)) == (2, 10)
    small = speedrun.speedrun_cifar(5, 1, 20, rng=np.random.default_rng(0), width=0.25)  # 19 → 9 → 4 → 2
    assert small.output_shape((2, 20, 20, 1)) == (2, 5) and small[0].out_channels == 8
    with pytest.raises(ValueError, match="too small"):
        speedrun.speedrun_cifar(rng=np.random.default_rng(0), image_size=8)


def test_the_ablations_switches_remove_one_piece_each():
    rng = np.random.default_rng(0)
    learned = speedrun.speedrun_cifar(rng=rng, whiten_method="learned")
    assert type(learned[0]) is st.nn.Conv2d and learned[0].weight.requires_grad and learned[0].out_channels == 24
    assert learned.num_parameters() == 1_972_792  # the same shapes, the 2×2 filters now trained
    zca = speedrun.speedrun_cifar(rng=rng, whiten_method="zca")
    assert zca[0].method == "zca" and zca.build_config["whiten_method"] == "zca"
    plain = speedrun.speedrun_cifar(rng=rng, conv_init="torch", bn_scale=True)
    convs = [m for m in plain if type(m) is st.nn.Conv2d]
    assert not np.array_equal(convs[1].weight.data[1, 1, :, :64], np.eye(64, dtype=np.float32))
    assert all(m.gamma.requires_grad for m in plain if isinstance(m, st.nn.BatchNorm))
    assert plain.num_parameters() == 1_972_792  # a frozen γ is a parameter too, only not trained
    with pytest.raises(ValueError, match="whiten_method must be"):
        speedrun.speedrun_cifar(rng=rng, whiten_method="none")


def airbench_like_torch(torch, net):
    """The architecture as the published recipe writes it in torch.nn, with `net`'s weights (NCHW)."""
    nn = torch.nn
    layers = []
    for m in net:
        if isinstance(m, st.nn.Conv2d):  # PatchWhitening too
            t = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding, bias=m.bias is not None)
            t.weight.data = torch.from_numpy(m.weight.data.transpose(3, 2, 0, 1).copy())
            if m.bias is not None:
                t.bias.data = torch.from_numpy(m.bias.data.copy())
            t.weight.requires_grad = m.weight.requires_grad
        elif isinstance(m, st.nn.BatchNorm):
            t = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
            t.weight.requires_grad = False
        elif isinstance(m, st.nn.MaxPool2d):
            t = nn.MaxPool2d(m.kernel_size)
        elif type(m).__name__ == "GELU":
            t = nn.GELU()
        elif type(m).__name__ == "Flatten":
            t = nn.Flatten()
        elif isinstance(m, st.nn.Linear):
            t = nn.Linear(m.in_features, m.out_features, bias=False)
            t.weight.data = torch.from_numpy(m.weight.data.T.copy())
        else:
            t = None
            scale = m.factor
        if t is not None:
            layers.append(t)
    body = nn.Sequential(*layers)
    return lambda x: body(x) * scale, body


def test_a_training_step_equals_the_torch_twin(torch):
    rng = np.random.default_rng(0)
    net = speedrun.speedrun_cifar(rng=rng, width=0.25)
    x = rng.standard_normal((8, 32, 32, 3)).astype(np.float32)
    net[0].fit(x)
    y = rng.integers(0, 10, 8)
    forward, body = airbench_like_torch(torch, net)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    loss = torch.nn.CrossEntropyLoss(label_smoothing=0.2, reduction="sum")
    t_scores = forward(tx)
    loss(t_scores, torch.from_numpy(y)).backward()
    crit = st.nn.SoftmaxCrossEntropy(label_smoothing=0.2, reduction="sum")
    scores = net.forward(x)
    crit(scores, y)
    net.backward(crit.backward())
    np.testing.assert_allclose(scores, t_scores.detach().numpy(), rtol=1e-4, atol=1e-5)
    t_params = [p for p in body.parameters()]
    for s, t in zip(net.parameters(), t_params, strict=True):
        if not s.requires_grad:
            assert t.grad is None
            continue
        got = s.grad.transpose(3, 2, 0, 1) if s.grad.ndim == 4 else s.grad.T if s.grad.ndim == 2 else s.grad
        scale = float(np.abs(got).max()) or 1.0
        np.testing.assert_allclose(got, t.grad.numpy(), atol=2e-4 * scale)
