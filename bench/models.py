"""The benchmarked nets in striate and in PyTorch: each striate model comes from the zoo (`st.models.get`),
and its PyTorch twin is translated layer by layer from it (`to_torch`), weights copied, so both have the
same layers, shapes and MACs — `max_output_difference` checks that they compute the same function.
PyTorch runs in channels_last, so an NHWC NumPy buffer and the PyTorch activations share one layout.
Scripts, not tests.
"""

from __future__ import annotations

import numpy as np

# name → (zoo name, builder keywords, input (H, W, C)): every net of issue 24's targets. lenet5 is the paper's
# 32×32×1 tanh/avg-pool net, lenet5_cifar its 3-channel ReLU/max-pool variant. googlenet_cifar at width 1 is
# 1.45 G MACs per image (≈ 5 s per training step at batch 128 on 2 cores), so the benchmark uses the zoo's
# "trains on a CPU" width 0.25 unless told otherwise (run.py --googlenet-width).
NETS: dict[str, tuple[str, dict, tuple[int, int, int]]] = {
    "three_layer": ("three_layer", {}, (32, 32, 3)),
    "reference": ("reference", {}, (32, 32, 3)),
    "lenet5": ("lenet5", {}, (32, 32, 1)),
    "lenet5_cifar": ("lenet5_cifar", {}, (32, 32, 3)),
    "googlenet_cifar": ("googlenet_cifar", {"width": 0.25}, (32, 32, 3)),
    "fast_cifar": ("fast_cifar", {}, (32, 32, 3)),  # the time-to-accuracy recipe's net
    "alexnet_cifar": ("alexnet_cifar", {}, (32, 32, 3)),
    "vgg11_cifar": ("vgg11_cifar", {}, (32, 32, 3)),
    "vgg13_cifar": ("vgg13_cifar", {}, (32, 32, 3)),
    "vgg16_cifar": ("vgg16_cifar", {}, (32, 32, 3)),
    "vgg19_cifar": ("vgg19_cifar", {}, (32, 32, 3)),
}


def striate_net(name: str, rng: np.random.Generator, **overrides):
    """(striate model, input shape (H, W, C)) of benchmark net `name`."""
    import striate as st

    zoo, kw, shape = NETS[name]
    return st.models.get(zoo, 10, shape[-1], rng=rng, **{**kw, **overrides}), shape


def to_torch(net, torch):
    """A PyTorch module computing the same function as striate `net` (weights and buffers copied),
    in channels_last. Supports the layer types of the nets in NETS; anything else is an error."""
    return _translate(net, torch).to(memory_format=torch.channels_last)


def _translate(m, torch):
    from striate.nn import activation, affine, containers, conv, dropout, linear, lrn, norm, pad, pool, shape, whitening

    nn = torch.nn
    kind = type(m)
    if kind is containers.Sequential:
        return nn.Sequential(*(_translate(c, torch) for c in m))
    if kind is containers.Concat:
        return _concat_module(torch, [_translate(c, torch) for c in m])
    if kind in (conv.Conv2d, whitening.PatchWhitening):  # a PatchWhitening: its fitted weight, frozen
        t = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=m.bias is not None)
        _copy(torch, t.weight, m.weight.data.transpose(3, 2, 0, 1))  # (KH, KW, Cin, Cout) → (Cout, Cin, KH, KW)
        t.weight.requires_grad_(m.weight.requires_grad)
        if m.bias is not None:
            _copy(torch, t.bias, m.bias.data)
        return t
    if kind is linear.Linear:
        t = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        _copy(torch, t.weight, m.weight.data.T)
        if m.bias is not None:
            _copy(torch, t.bias, m.bias.data)
        return t
    if kind is norm.BatchNorm:  # after a convolution in every net here
        t = nn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
        for a, b in [(t.weight, m.gamma.data), (t.bias, m.beta.data), (t.running_mean, m.running_mean),
                     (t.running_var, m.running_var)]:
            _copy(torch, a, b)
        t.weight.requires_grad_(m.gamma.requires_grad)  # BatchNorm(scale=False): γ stays 1
        return t
    if kind is affine.Scale:
        return _scale_module(torch, m.factor)
    simple = {activation.ReLU: lambda: nn.ReLU(inplace=True), activation.Tanh: nn.Tanh,
              activation.GELU: lambda: nn.GELU(approximate=m.approximate),
              pool.GlobalAvgPool2d: lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
              shape.Flatten: lambda: _flatten_nhwc_module(torch), dropout.Dropout: lambda: nn.Dropout(m.p),
              pool.MaxPool2d: lambda: nn.MaxPool2d(m.kernel_size, m.stride),
              # one formula on both sides: x·(k + α/n·Σ window x²)^−β, window [c − ⌊n/2⌋, c + ⌊(n−1)/2⌋]
              lrn.LocalResponseNorm: lambda: nn.LocalResponseNorm(m.size, m.alpha, m.beta, m.k),
              pool.AvgPool2d: lambda: nn.AvgPool2d(m.kernel_size, m.stride),
              pad.ZeroPad2d: lambda: nn.ZeroPad2d((m.padding[2], m.padding[3], m.padding[0], m.padding[1]))}
    if kind in simple:
        return simple[kind]()
    raise TypeError(f"to_torch: no PyTorch translation for {m.describe()}")


def _copy(torch, dst, src):
    with torch.no_grad():
        dst.copy_(torch.from_numpy(np.ascontiguousarray(src)))


def _scale_module(torch, factor: float):
    class Mul(torch.nn.Module):
        """y = factor·x (striate's Scale)."""

        def forward(self, x):
            return x * factor

        def extra_repr(self):
            return f"{factor:g}"

    return Mul()


def _concat_module(torch, branches):
    class Concat(torch.nn.Module):
        """Branches on the same input, concatenated on the channel axis (striate's Concat)."""

        def __init__(self):
            super().__init__()
            self.branches = torch.nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], dim=1)

    return Concat()


def _flatten_nhwc_module(torch):
    class FlattenNHWC(torch.nn.Module):
        """Flatten in (H, W, C) order as striate does, so copied Linear weights line up; on a channels_last
        tensor the permute is free (a view of the same buffer)."""

        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x.flatten(1)

    return FlattenNHWC()


def nhwc_to_torch(torch, x: np.ndarray):
    """(N, H, W, C) float32 array → the NCHW channels_last tensor on the same values (a copy)."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)


def max_output_difference(torch, s_net, t_net, shape, batch: int = 2) -> float:
    """Largest |striate − PyTorch| over the logits of both nets in eval mode on one random batch."""
    import striate as st

    x = np.random.default_rng(3).standard_normal((batch, *shape), dtype=np.float32)
    s_net.eval()
    t_net.eval()
    with st.no_grad(), torch.no_grad():
        diff = float(np.abs(s_net(x) - t_net(nhwc_to_torch(torch, x)).numpy()).max())
    s_net.train()
    t_net.train()
    return diff


def macs_per_image(s_net, shape) -> int:
    """Multiply-accumulates of one forward pass on one image (st.summary, from shapes alone)."""
    import striate as st

    return st.summary(s_net, shape).total_macs


def onnxruntime_session(torch, t_net, shape, batch: int, threads: int):
    """The PyTorch twin `t_net` exported to ONNX (eval mode, fixed input (batch, C, H, W)) and loaded into an
    onnxruntime CPU session with `threads` intra-op threads and sequential execution (one operator at a
    time, like striate and PyTorch), all graph optimisations on (its default: batch norm folded into the
    convolution, bias + activation fused). None when onnxruntime or onnx is not installed.

    torch.onnx.export(dynamo=False) is the TorchScript exporter: it needs only `onnx`, where the default
    dynamo exporter also needs `onnxscript`."""
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort
    except ImportError:
        return None
    import io
    import warnings

    t_net.eval()
    x = torch.zeros((batch, shape[2], shape[0], shape[1]))
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # constant-folding and deprecation notes of the TorchScript exporter
        torch.onnx.export(t_net, (x,), buf, dynamo=False, input_names=["x"], output_names=["logits"])
    t_net.train()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def onnxruntime_run(session, x: np.ndarray) -> np.ndarray:
    """Logits of `session` on the NHWC float32 batch x (converted to the exported model's NCHW)."""
    return session.run(None, {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
