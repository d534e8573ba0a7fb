"""The zoo's `googlenet_torchvision` against torchvision's GoogLeNet, written here in torch.nn with torchvision's
module names (the torchvision wheel does not import with the test torch): batch-normalised convolutions, the
"5×5" branch that is 3×3, ceil-mode pools, `transform_input`, and the auxiliary heads, whose keys a load
reports as ignored."""

import numpy as np
import pytest

import striate as st
from striate.models import googlenet, load_torch_weights
from striate.models.transfer import torch_name_map
from tests.test_resnet import randomise_bn, torch_output


def _w(v, width):
    return max(1, int(round(v * width)))


def torch_googlenet(torch, width=1.0, classes=1000, transform_input=True, size=(64, 64)):
    """torchvision's GoogLeNet (`torchvision.models.googlenet`, aux_logits=True), same module names."""
    nn = torch.nn

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class Inception(nn.Module):
        def __init__(self, cin, spec):
            super().__init__()
            c1, r3, c3, r5, c5, cp = (_w(v, width) for v in spec)
            self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
            self.branch2 = nn.Sequential(BasicConv2d(cin, r3, kernel_size=1),
                                         BasicConv2d(r3, c3, kernel_size=3, padding=1))
            self.branch3 = nn.Sequential(BasicConv2d(cin, r5, kernel_size=1),
                                         BasicConv2d(r5, c5, kernel_size=3, padding=1))
            self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True),
                                         BasicConv2d(cin, cp, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    class InceptionAux(nn.Module):  # only its keys matter: torchvision runs it in training only
        def __init__(self, cin):
            super().__init__()
            self.conv = BasicConv2d(cin, _w(128, width), kernel_size=1)
            self.fc1, self.fc2 = nn.Linear(_w(128, width) * 16, _w(1024, width)), nn.Linear(_w(1024, width), classes)

    class GoogLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            c64, c192 = _w(64, width), _w(192, width)
            self.conv1 = BasicConv2d(3, c64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.conv2 = BasicConv2d(c64, c64, kernel_size=1)
            self.conv3 = BasicConv2d(c64, c192, kernel_size=3, padding=1)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            c, self.widths = c192, {}
            for name in "3a 3b 4a 4b 4c 4d 4e 5a 5b".split():
                self.widths[name] = c
                setattr(self, f"inception{name}", Inception(c, googlenet.INCEPTION[name]))
                c = googlenet.inception_out(googlenet.INCEPTION[name], width)
            self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.aux1, self.aux2 = InceptionAux(self.widths["4b"]), InceptionAux(self.widths["4e"])
            self.avgpool, self.dropout, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Dropout(0.2), nn.Linear(c, classes)

        def forward(self, x):
            if transform_input:  # torchvision's _transform_input
                x = torch.cat([x[:, i:i + 1] * (s / 0.5) + (m - 0.5) / 0.5 for i, (m, s) in
                               enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True))], 1)
            x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            for name in "4a 4b 4c 4d 4e".split():
                x = getattr(self, f"inception{name}")(x)
            x = self.inception5b(self.inception5a(self.maxpool4(x)))
            return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    return randomise_bn(torch, GoogLeNet(), size)


@pytest.mark.parametrize("transform_input,size", [(True, (64, 64)), (False, (49, 37))])
def test_forward_equals_torch(transform_input, size, rng, torch):
    torch.manual_seed(0)
    tnet = torch_googlenet(torch, width=0.25, classes=10, transform_input=transform_input, size=size)
    snet = st.models.get("googlenet_torchvision", 10, 3, rng=rng, width=0.25, image_size=size,
                         transform_input=transform_input).eval()
    state = tnet.state_dict()
    aux = {k for k in state if k.startswith(("aux1.", "aux2."))}
    assert len(aux) == 2 * (1 + 5 + 4)  # conv, bn (5 keys), fc1, fc2
    assert set(torch_name_map(snet, "googlenet").values()) == set(state) - aux
    report = load_torch_weights(snet, state, arch="googlenet")
    assert report.ok and set(report.ignored) == aux and not report.unexpected, str(report)
    assert len(report.loaded) == len(state) - len(aux)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    ref = torch_output(torch, tnet, x)
    tol = dict(rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert np.abs(ref[0] - ref[1]).max() > 0.05 * np.abs(ref).max()  # the output depends on the input
    with st.no_grad():  # BatchNorm folded into the convolutions of each Inception branch
        np.testing.assert_allclose(snet(x), ref, **tol)
    np.testing.assert_allclose(snet(x), ref, **tol)
    assert isinstance(snet[0], st.nn.ChannelAffine) == transform_input


def test_full_width_keys_counts_and_training(rng, torch):
    snet = st.models.get("googlenet_torchvision", 1000, 3, rng=rng)
    assert snet.num_parameters() == 6_624_904  # torchvision's, without the auxiliary heads
    assert st.models.native_input("googlenet_torchvision") == (224, 224, 3)
    tnet = torch_googlenet(torch)
    state = tnet.state_dict()
    assert set(torch_name_map(snet, "googlenet").values()) == {k for k in state if not k.startswith("aux")}
    assert load_torch_weights(snet, state, arch="googlenet").ok  # every shape checked
    # a reduced copy trains: forward, backward through Concat and ChannelAffine, a step
    small = st.models.get("googlenet_torchvision", 3, 3, rng=rng, width=0.125, image_size=32)
    x, y = rng.standard_normal((2, 32, 32, 3)).astype(np.float32), np.array([0, 2])
    loss = st.nn.SoftmaxCrossEntropy()
    small.train()
    loss(small.forward(x), y)
    small.backward(loss.backward())
    assert all(np.abs(p.grad).sum() > 0 for p in small.parameters())
    assert st.summary(small, (32, 32, 3)).total_params == small.num_parameters()


def test_channel_affine_and_errors(rng):
    layer = st.nn.ChannelAffine((2.0, 0.5), (1.0, -1.0))
    x = rng.standard_normal((3, 4, 4, 2)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and not layer.state_dict()
    np.testing.assert_allclose(y, x * [2.0, 0.5] + [1.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(layer.backward(np.ones_like(y)), np.broadcast_to([2.0, 0.5], x.shape))
    with pytest.raises(ValueError, match="one number per channel"):
        st.nn.ChannelAffine((1.0,), (0.0, 1.0))
    with pytest.raises(ValueError, match="transform_input"):
        st.models.get("googlenet_torchvision", 10, 1, rng=rng, width=0.25, image_size=32)
    paper = st.models.get("googlenet", 10, 3, rng=rng, width=0.25, image_size=64)
    with pytest.raises(ValueError, match="googlenet_torchvision"):
        torch_name_map(paper, "googlenet")
