"""The zoo's ResNet-18/34/50 against torchvision's architecture, written here in torch.nn with torchvision's module
names (the torchvision wheel does not import with the test torch): the same state-dict keys, torch's weights
loaded by name, the same outputs within float32 rounding; plus training through the residual blocks, the
inference folding inside them, and the summary."""

import numpy as np
import pytest

import striate as st
from striate.models import load_torch_weights, resnet
from striate.models.transfer import torch_name_map


def _w(v, width):
    return max(1, int(round(v * width)))


def torch_resnet(torch, arch, width=1.0, classes=1000, size=(64, 64)):
    """torchvision's ResNet (`torchvision.models.resnet`), same module names, `width` as `models.resnet`."""
    nn = torch.nn
    kind, depths = resnet.DEPTHS[arch]
    exp = resnet.EXPANSION[kind]

    def conv(cin, cout, k, stride=1):
        return nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            if kind == "basic":
                self.conv1, self.bn1 = conv(cin, planes, 3, stride), nn.BatchNorm2d(planes)
                self.conv2, self.bn2 = conv(planes, planes, 3), nn.BatchNorm2d(planes)
            else:
                self.conv1, self.bn1 = conv(cin, planes, 1), nn.BatchNorm2d(planes)
                self.conv2, self.bn2 = conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
                self.conv3, self.bn3 = conv(planes, planes * exp, 1), nn.BatchNorm2d(planes * exp)
            self.relu = nn.ReLU()
            self.downsample = None
            if stride != 1 or cin != planes * exp:
                self.downsample = nn.Sequential(conv(cin, planes * exp, 1, stride), nn.BatchNorm2d(planes * exp))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if kind == "bottleneck":
                out = self.bn3(self.conv3(self.relu(out)))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            c = _w(64, width)
            self.conv1, self.bn1, self.relu = conv(3, c, 7, 2), nn.BatchNorm2d(c), nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            for i, (planes, n) in enumerate(zip(resnet.PLANES, depths, strict=True)):
                p = _w(planes, width)
                blocks = [Block(c if b == 0 else p * exp, p, 2 if i and b == 0 else 1) for b in range(n)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                c = p * exp
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(c, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return randomise_bn(torch, ResNet(), size)


def randomise_bn(torch, net, size=(64, 64)):
    """Non-trivial BatchNorm statistics and affine parameters, as a trained network has: running statistics from
    one batch of random images of `size` (so the activations stay of order 1 and depend on the input, where
    arbitrary statistics would drown the signal in their shifts), then perturbed."""
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.momentum = 1.0  # the running statistics become this batch's
        net.train()(torch.randn(4, 3, *size))
        for m in bns:
            m.momentum = 0.1
            m.running_mean.add_(0.2 * m.running_var.sqrt() * torch.randn_like(m.running_mean))
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4))
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.num_batches_tracked.fill_(7)
    return net.eval()


def torch_output(torch, net, x):
    with torch.no_grad():
        return net(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()


@pytest.mark.parametrize("arch,size", [("resnet18", (64, 64)), ("resnet34", (65, 47)), ("resnet50", (64, 64))])
def test_forward_equals_torch(arch, size, rng, torch):
    torch.manual_seed(0)
    tnet = torch_resnet(torch, arch, width=0.25, classes=10, size=size)
    snet = st.models.get(arch, 10, 3, rng=rng, width=0.25, image_size=size).eval()
    state = tnet.state_dict()
    assert set(torch_name_map(snet, arch).values()) == set(state)  # every key, num_batches_tracked included
    report = load_torch_weights(snet, state, arch=arch)
    assert report.ok and not report.ignored and len(report.loaded) == len(state), str(report)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    ref = torch_output(torch, tnet, x)
    tol = dict(rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert np.abs(ref[0] - ref[1]).max() > 0.05 * np.abs(ref).max()  # the output depends on the input
    with st.no_grad():  # the inference graph: BatchNorm folded into the convolutions, inside the Residuals too
        np.testing.assert_allclose(snet(x), ref, **tol)
    residual = snet[5][0]
    for part in (residual.body, residual.shortcut) if arch == "resnet50" else (residual.body,):
        folded = [b.bn for b in part.__dict__.get("_fold_blocks", {}).values() if b.bn is not None]
        assert len(folded) == sum(isinstance(m, st.nn.BatchNorm) for m in part), "BatchNorm not folded in a Residual"
    np.testing.assert_allclose(snet(x), ref, **tol)  # eval layer by layer
    assert int(snet[1].num_batches_tracked) == 7


def test_full_resnet18_keys_shapes_and_counts(rng, torch):
    torch.manual_seed(0)
    tnet = torch_resnet(torch, "resnet18")
    snet = st.models.get("resnet18", 1000, 3, rng=rng).eval()
    assert snet.num_parameters() == sum(p.numel() for p in tnet.parameters()) == 11_689_512
    state = tnet.state_dict()
    mapping = torch_name_map(snet, "resnet18")
    assert set(mapping.values()) == set(state)
    assert mapping["0.weight"] == "conv1.weight" and mapping["1.gamma"] == "bn1.weight"
    assert mapping["7.0.shortcut.0.weight"] == "layer3.0.downsample.0.weight"
    assert mapping["7.2.body.4.running_var"] == "layer3.1.bn2.running_var"
    assert mapping["10.weight"] == "fc.weight"
    report = load_torch_weights(snet, state)  # arch from the zoo name; every shape checked, no reorder for fc
    assert report.ok, str(report)
    np.testing.assert_array_equal(snet[10].weight.data, state["fc.weight"].numpy().T)
    x = rng.standard_normal((1, 64, 64, 3)).astype(np.float32)
    with st.no_grad():
        y = snet(x)
    ref = torch_output(torch, tnet, x)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_published_parameter_counts(rng):
    for arch, count in (("resnet34", 21_797_672), ("resnet50", 25_557_032)):
        model = st.models.get(arch, 1000, 3, rng=rng)
        assert model.num_parameters() == count
        assert st.models.native_input(arch) == (224, 224, 3)
    assert len(torch_name_map(model, "resnet50")) == 320  # torchvision: 53 conv, 53 BN (5 keys each), fc


def test_training_step_flows_through_residuals(rng):
    model = st.models.get("resnet18", 5, 3, rng=rng, width=0.125, image_size=32)
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    loss, opt = st.nn.SoftmaxCrossEntropy(), st.optim.SGD(model, lr=0.01, momentum=0.9)
    model.train()
    first = loss(model.forward(x), y)
    model.backward(loss.backward())
    for name, p in model.named_parameters():
        assert np.abs(p.grad).sum() > 0, name
    opt.step()
    for _ in range(4):
        opt.zero_grad()
        last = loss(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()
    assert last < first


def test_summary_rebuild_and_errors(rng):
    model = st.models.get("resnet50", 10, 3, rng=rng, width=0.25, image_size=48)
    table = st.summary(model, (48, 48, 3))
    assert table.total_params == model.num_parameters() and table.output_shape == (1, 10)
    assert "Residual (sum)" in str(table)
    again = st.models.from_config(model.build_config)
    assert again.build_config == model.build_config and again.num_parameters() == model.num_parameters()
    with pytest.raises(ValueError, match=r"unknown arch 'resnet101'; choose from .*resnet18, resnet34, resnet50"):
        torch_name_map(model, "resnet101")
    with pytest.raises(ValueError, match="parameterised layers"):
        torch_name_map(model, "resnet18")


def test_every_torchvision_arch_names_its_zoo_model():
    """`torchvision_names.ZOO`: each arch's zoo model takes that arch's map by default (layer counts agree)."""
    from striate.models import torchvision_names
    from striate.nn import init

    for arch, (name, kw) in torchvision_names.ZOO.items():
        with init.shapes_only():  # placeholders for the weights: a VGG's 140 M random numbers take time
            model = st.models.get(name, 1000, 3, **kw)
        assert torchvision_names.arch_of(model) == arch
        mapping = torch_name_map(model)
        assert mapping == torch_name_map(model, arch) and next(iter(mapping.values())).startswith(("conv1", "features"))
    assert torchvision_names.arch_of(st.models.get("googlenet", 10, 3, width=0.125, image_size=32)) is None
