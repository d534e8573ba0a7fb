"""Each layer class of `striate.nn` as ONNX nodes: `CONVERTERS` maps a class (exactly: a subclass may compute
differently, so it is refused rather than guessed) to `f(graph, layer, tensor) -> tensor`, the layer's eval-mode
forward. Containers convert their children through `emit`, which names the layer being converted.

Equivalences that are not one-to-one (each checked by tests/test_export_onnx.py against onnxruntime):
- Conv2d / GroupedConv2d / PatchWhitening (a stride-1 Conv2d): weights (KH, KW, C_in, C_out) → ONNX's
  (C_out, C_in, KH, KW); the groups of a GroupedConv2d are one Conv with `group`. Floor rounding is ONNX's
  rule; strict windows tile exactly. Scale: Mul by its factor in float32.
- MaxPool2d / AvgPool2d with rounding "ceil": explicit end padding (MaxPool ignores it; AveragePool with
  count_include_pad=0 averages the elements inside the input, as striate does); "floor" is ONNX's default.
- LocalResponseNorm: ONNX's LRN (α/size as striate and torch) for odd sizes; an even size's window is placed
  differently in ONNX (one more channel after than before, striate the other way), so it is written out:
  x·(k + α/n·Σx²)^−β with the window sum a Conv of ones over the channel axis.
- FractionalMaxPool2d: in eval its regions are fixed for the input size, so Gather + Max per axis (exact).
- GELU: ONNX's Gelu from opset 20; before, x·½·(1 + erf(x/√2)) or the tanh form, as `approximate` says.
- BatchNorm (the ones export did not fold): x·s + t per channel, s and t computed as striate's eval does;
  ChannelAffine likewise with its constants.
- Flatten: the values go back to NHWC first, so features come out in striate's H·W·C order.
- Dropout, Dropout2d: the identity (eval); DropConnect: its Linear with the plain weights.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ... import nn
from ...kernels.window import overhang
from ...nn import folding
from .graph import Graph, Tensor


def emit(g: Graph, layer, t: Tensor, where: str, convert=None) -> Tensor:
    """The nodes of `layer` (named `where`, e.g. '5.body.1') on `t` by its converter (or `convert`); its
    output tensor."""
    outer, g.where = g.where, where
    try:
        return (convert or CONVERTERS[type(layer)])(g, layer, t)
    finally:
        g.where = outer


def _child(g: Graph, name: str) -> str:
    return f"{g.where}.{name}" if g.where else name


def _sequential(g, seq, t):
    """The children in order; with `g.fold_batchnorm`, a BatchNorm that `nn.folding.match` pairs with the
    Conv2d or Linear before it is folded into that layer's weights (as `nn.fold` and striate's own eval-mode
    forward do; not across a pool when a scale is negative), and its activation follows as itself."""
    names, layers = list(seq._modules), list(seq._modules.values())
    i = 0
    while i < len(layers):
        block = folding.match(layers, i) if g.fold_batchnorm else None
        if block is None or block[2] is None:
            t = emit(g, layers[i], t, _child(g, names[i]))
            i += 1
            continue
        layer, pool, bn, _, _ = block
        w, b, positive = folding.fold_batchnorm(layer.weight.data, _bias(layer), bn)
        if pool is not None and not positive:
            t = emit(g, layer, t, _child(g, names[i]))
            i += 1
            continue
        t = emit(g, layer, t, _child(g, names[i]), functools.partial(_with_weights, w=w, b=b))
        if pool is not None:
            t = emit(g, pool, t, _child(g, names[i + 1]))
        i += 2 + (pool is not None)  # past the BatchNorm
    return t


def _with_weights(g, layer, t, w, b):
    return _FOLDED[type(layer)](g, layer, t, w, b)


def _bias(layer):
    return None if layer.bias is None else layer.bias.data


def _concat(g, cat, t):
    outs = [emit(g, child, t, _child(g, name)) for name, child in cat.named_children()]
    outs = [g.like(o, outs[0]) for o in outs]
    shape = cat.output_shape(t.shape)
    return Tensor(g.op("Concat", [o.name for o in outs], axis=outs[0].channel_axis), outs[0].layout, shape)


def _residual(g, res, t):
    y = emit(g, res.body, t, _child(g, "body"))
    sc = res._shortcut()
    s = t if sc is None else emit(g, sc, t, _child(g, "shortcut"))
    return g.then(y, "Add", g.like(s, y).name)


def _conv_weights(conv, w=None, b=None) -> tuple[np.ndarray, np.ndarray | None]:
    """ONNX's (C_out, C_in, KH, KW) weights and the bias of `conv`, or of its folded weights `w`, `b`."""
    if w is None:
        w, b = conv.weight.data, _bias(conv)
    return np.transpose(w, (3, 2, 0, 1)), b


def _convolve(g, layer, t, w, b, kernel, stride, pad, groups):
    out_shape = layer.output_shape(t.shape)
    x = g.nchw(t)
    g.check_size(layer, [(t.shape[1 + i] + 2 * pad - kernel[i]) // stride + 1 for i in (0, 1)], t, out_shape)
    inputs = [g.const(w, "weight")] + ([] if b is None else [g.const(b, "bias")])
    return g.then(x, "Conv", *inputs, shape=out_shape, kernel_shape=list(kernel), strides=[stride, stride],
                  pads=[pad] * 4, group=groups)


def _conv2d(g, conv, t, w=None, b=None):
    w, b = _conv_weights(conv, w, b)
    return _convolve(g, conv, t, w, b, conv.kernel_size, conv.stride, conv.padding, 1)


def _grouped(g, conv, t):
    parts = [_conv_weights(c) for c in conv._convs()]
    w = np.concatenate([p[0] for p in parts])
    b = None if all(p[1] is None for p in parts) else np.concatenate(
        [p[1] if p[1] is not None else np.zeros(len(p[0]), np.float32) for p in parts])
    first = conv._convs()[0]
    return _convolve(g, conv, t, w, b, first.kernel_size, first.stride, first.padding, conv.groups)


def _linear(g, lin, t, w=None, b=None):
    if w is None:
        w, b = lin.weight.data, _bias(lin)
    inputs = [g.const(w, "weight")] + ([] if b is None else [g.const(b, "bias")])
    return g.then(t, "Gemm", *inputs, shape=lin.output_shape(t.shape))


def _maxout(g, m, t):
    inputs = [g.const(m.weight.data, "weight")] + ([] if m.bias is None else [g.const(m.bias.data, "bias")])
    z = g.then(t, "Gemm", *inputs, shape=(1, m.out_features * m.pieces))
    z = g.then(z, "Reshape", g.ints([0, m.out_features, m.pieces], "shape"), shape=(1, m.out_features, m.pieces))
    return g.reduce("ReduceMax", z, [2], False, (1, m.out_features), "flat")


def _pool(g, pool, t):
    """MaxPool / AveragePool: the windows past the end (ceil) as end padding; floor as ONNX rounds."""
    out_shape = pool.output_shape(t.shape)
    (kh, kw), (sh, sw) = pool.kernel_size, pool.stride
    ends = [max(0, overhang(t.shape[1 + i], pool.kernel_size[i], pool.stride[i], 0, out_shape[1 + i]))
            for i in (0, 1)]
    g.check_size(pool, [(t.shape[1 + i] + ends[i] - pool.kernel_size[i]) // pool.stride[i] + 1 for i in (0, 1)],
                 t, out_shape)
    attrs = {"kernel_shape": [kh, kw], "strides": [sh, sw], "pads": [0, 0, *ends]}
    if type(pool) is nn.AvgPool2d:
        return g.then(g.nchw(t), "AveragePool", shape=out_shape, count_include_pad=0, **attrs)
    return g.then(g.nchw(t), "MaxPool", shape=out_shape, **attrs)


def _global_avg(g, pool, t):
    axes = [2, 3] if t.layout == "nchw" else [1, 2]
    return g.reduce("ReduceMean", t, axes, False, pool.output_shape(t.shape), "flat")


def _fractional(g, pool, t):
    """Max over each fixed eval-mode region, axis by axis: Gather of the region's first, second, … row
    (repeating its last one where it is shorter), then Max of those."""
    n, h, w, c, ho, wo = pool._sizes(t.shape)
    x = g.nchw(t)
    for axis, bounds, shape in zip((2, 3), pool.boundaries(h, w, ho, wo), ((1, ho, w, c), (1, ho, wo, c)),
                                   strict=True):
        starts, ends = bounds[:-1], bounds[1:] - 1
        picks = [g.op("Gather", [x.name, g.ints(np.minimum(starts + j, ends), "rows")], axis=axis)
                 for j in range(int((ends - starts).max()) + 1)]
        x = Tensor(picks[0] if len(picks) == 1 else g.op("Max", picks), "nchw", shape)
    return x


def _zero_pad(g, pad, t):
    top, bottom, left, right = pad.padding
    pads = [0, 0, top, left, 0, 0, bottom, right] if t.layout == "nchw" else [0, top, left, 0, 0, bottom, right, 0]
    return g.then(t, "Pad", g.ints(pads, "pads"), shape=pad.output_shape(t.shape), mode="constant")


def _flatten(g, flat, t):
    if len(t.shape) == 2:
        return t
    return g.then(g.nhwc(t), "Flatten", shape=flat.output_shape(t.shape), layout="flat", axis=1)


def _batchnorm(g, bn, t):
    """x·s + t per channel, with striate's eval-mode s = γ/√(var + ε) and t = β − mean·s (in float32)."""
    inv_std = 1 / np.sqrt(bn.running_var + bn.eps)
    scale = bn.gamma.data * inv_std
    shift = bn.beta.data - bn.running_mean * scale
    y = g.then(t, "Mul", g.per_channel(t, scale, "bn_scale"))
    return g.then(y, "Add", g.per_channel(t, shift, "bn_shift"))


def _lrn(g, lrn, t):
    x = g.nchw(t)
    if lrn.size % 2 and len(t.shape) == 4:  # ONNX's window [c − (n−1)/2, c + (n−1)/2] is striate's for odd n
        return g.then(x, "LRN", size=lrn.size, alpha=lrn.alpha, beta=lrn.beta, bias=lrn.k)
    n, c = lrn.size, t.shape[-1]
    sq = g.then(x, "Mul", x.name)
    rows = g.then(sq, "Reshape", g.ints([0, 1, c, -1], "shape"))  # channels as the rows of a 1-channel image
    ones = np.ones((1, 1, n, 1), dtype=np.float32)
    window = g.then(rows, "Conv", g.const(ones, "window"), kernel_shape=[n, 1], pads=[n // 2, 0, (n - 1) // 2, 0])
    window = g.then(window, "Reshape", g.op("Shape", [x.name]))
    scale = g.then(g.then(window, "Mul", g.float(lrn.alpha / n, "alpha")), "Add", g.float(lrn.k, "k"))
    return g.then(x, "Mul", g.then(scale, "Pow", g.float(-lrn.beta, "beta")).name)


def _gelu(g, gelu, t):
    if g.opset >= 20:
        return g.then(t, "Gelu", approximate=gelu.approximate)
    half = g.float(0.5, "half")
    if gelu.approximate == "tanh":  # ½x·(1 + tanh(√(2/π)·(x + κx³))), in striate's order of operations
        cube = g.then(g.then(t, "Mul", t.name), "Mul", t.name)
        inner = g.then(t, "Add", g.then(cube, "Mul", g.float(0.044715, "kappa")).name)
        inner = g.then(inner, "Mul", g.float(math.sqrt(2 / math.pi), "sqrt_2_over_pi"))
        one_plus = g.then(g.then(inner, "Tanh"), "Add", g.float(1.0, "one"))
        return g.then(g.then(t, "Mul", half), "Mul", one_plus.name)
    erf = g.then(g.then(t, "Mul", g.float(math.sqrt(0.5), "inv_sqrt2")), "Erf")
    return g.then(g.then(t, "Mul", half), "Mul", g.then(erf, "Add", g.float(1.0, "one")).name)


def _identity(g, layer, t):
    return t


def _elementwise(op_type: str, **attrs):
    def convert(g, layer, t):
        return g.then(t, op_type, **{k: float(getattr(layer, v)) for k, v in attrs.items()})
    return convert


def _channel_affine(g, affine, t):
    """x·scale + shift per channel, the constants rounded to float32 as the layer's forward rounds them."""
    y = g.then(t, "Mul", g.per_channel(t, np.asarray(affine.scale, np.float32), "scale"))
    return g.then(y, "Add", g.per_channel(t, np.asarray(affine.shift, np.float32), "shift"))


def _scale(g, scale, t):
    return g.then(t, "Mul", g.float(scale.factor, "factor"))  # a float32 scalar, as the layer's forward rounds it


def _prelu(g, prelu, t):
    return g.then(t, "PRelu", g.per_channel(t, prelu.alpha.data, "slope"))


CONVERTERS = {
    nn.Sequential: _sequential, nn.Concat: _concat, nn.Residual: _residual,
    nn.Conv2d: _conv2d, nn.GroupedConv2d: _grouped, nn.Linear: _linear, nn.DropConnect: _linear, nn.Maxout: _maxout,
    nn.MaxPool2d: _pool, nn.AvgPool2d: _pool, nn.GlobalAvgPool2d: _global_avg, nn.FractionalMaxPool2d: _fractional,
    nn.ZeroPad2d: _zero_pad, nn.Flatten: _flatten, nn.BatchNorm: _batchnorm, nn.LocalResponseNorm: _lrn,
    nn.Dropout: _identity, nn.Dropout2d: _identity,
    nn.ReLU: _elementwise("Relu"), nn.LeakyReLU: _elementwise("LeakyRelu", alpha="negative_slope"),
    nn.ELU: _elementwise("Elu", alpha="alpha"), nn.Sigmoid: _elementwise("Sigmoid"), nn.Tanh: _elementwise("Tanh"),
    nn.GELU: _gelu, nn.PReLU: _prelu, nn.ChannelAffine: _channel_affine, nn.PatchWhitening: _conv2d, nn.Scale: _scale,
}
_FOLDED = {nn.Conv2d: _conv2d, nn.Linear: _linear}  # the layers `folding.match` folds a BatchNorm into
