"""FC→CONV: turn a classifier trained on fixed-size crops into a fully convolutional network that slides
over a larger image in one pass and returns a map of class scores (the notes, "Converting FC layers to
CONV layers").

`to_fully_convolutional(model, input_shape)` rewrites the top-level Sequential:
- Flatten + the first Linear after a spatial volume (H, W, C) → Conv2d with an H×W filter covering the whole
  volume (striate flattens NHWC in H, W, C order, so the weight is just `W.reshape(H, W, C, out)`);
- GlobalAvgPool2d on an (H, W, C) volume → AvgPool2d(H×W, stride 1);
- every later Linear → a 1×1 Conv2d (`W.reshape(1, 1, in, out)`);
- every other layer is kept (elementwise layers, dropout and BatchNorm act on the last axis, so they work on
  score maps unchanged).
On an input of the training size the converted network gives (N, 1, 1, classes) equal to the original's
scores; on a larger image, (N, Ho, Wo, classes) where entry (i, j) is the original network applied to the
crop whose top-left corner is (i·S, j·S), S = `total_stride(model)`.

Exact only without zero padding inside the network: a crop's padded border sees zeros where the large image
has real pixels. `padding_gap` shows where: in the last feature volume before the classifier, a crop's
features equal the one-pass features in the interior and differ in a ring at the volume's border whose width
grows with the padding of each convolution (divided by the pooling). The first Linear mixes the whole
volume, so every score in the map carries some of the ring's difference — none is exact, not even at the
image corners (there the crop's bottom and right borders still see zeros). Measured on digits pasted on
noisy 32×32 canvases, maps on 64×64 images (9×9 positions, total stride 4), both nets trained 300 SGD steps:
- unpadded (conv5-8, pool, conv5-16, pool, fc-64, fc-10): the map equals the crop loop within float32
  rounding (a few ulps: one pass and the loop multiply differently shaped matrices, which BLAS blocks and
  sums differently, by shape and by CPU kernel — equal bit for bit on some CPUs, not on others);
- padded VGG-style ([conv3 pad 1]×2 at 8 and 16 channels, pools, fc-64, fc-10): scores differ by up to 29 % of
  the largest score, the argmax agrees at 72 % of positions, and `padding_gap` is at float32 rounding
  (below 1e-6) in the inner 4×4 of the 8×8 feature volume and 0.1–0.9 (relative) in the 2-cell ring around it.
One pass is 10–20× faster than the crop loop there (and 4–20× faster than one batched forward of all crops).
"""

from __future__ import annotations

import copy

import numpy as np

from ..nn.containers import Concat, Residual, Sequential
from ..nn.conv import Conv2d
from ..nn.linear import Linear
from ..nn.losses import softmax
from ..nn.module import Module, no_grad
from ..nn.pool import AvgPool2d, GlobalAvgPool2d, _WindowPool2d
from ..nn.shape import Flatten


def _conv_from_linear(linear: Linear, h: int, w: int, c: int) -> Conv2d:
    conv = Conv2d(c, linear.out_features, (h, w), bias=linear.bias is not None, init="zeros",
                  dtype=linear.weight.dtype)
    conv.weight.data[...] = linear.weight.data.reshape(h, w, c, linear.out_features)
    if linear.bias is not None:
        conv.bias.data[...] = linear.bias.data
    return conv


def to_fully_convolutional(model: Sequential, input_shape) -> Sequential:
    """A new Sequential (the weights are copied; `model` is untouched) computing `model` as a convolution
    over images at least `input_shape` = (H, W, C) large (no batch axis). See the module docstring."""
    if not isinstance(model, Sequential):
        raise TypeError(f"to_fully_convolutional: expected a Sequential, got {type(model).__name__}")
    source = copy.deepcopy(model).clear_state()
    shape = (1, *tuple(int(d) for d in input_shape))
    layers: list[Module] = []
    volume = None  # the (H, W, C) a pending Flatten turned into a vector
    spatial = False  # True once the features are a score map (after the first conversion)
    converted = 0
    for i, m in enumerate(source):
        out = m.output_shape(shape)
        if isinstance(m, Flatten) and len(shape) == 4:
            volume = tuple(shape[1:])
        elif isinstance(m, GlobalAvgPool2d) and len(shape) == 4:
            layers.append(AvgPool2d((shape[1], shape[2]), stride=1))
            spatial = True
        elif isinstance(m, Linear) and volume is not None:
            layers.append(_conv_from_linear(m, *volume))
            volume, spatial, converted = None, True, converted + 1
        elif isinstance(m, Linear) and spatial:
            layers.append(_conv_from_linear(m, 1, 1, m.in_features))
            converted += 1
        elif isinstance(m, Linear):
            raise ValueError(f"to_fully_convolutional: layer {i} ({m.describe()}) reads {shape}, not a spatial "
                             "volume through Flatten or global pooling: nothing to slide")
        else:
            if volume is not None and m.num_parameters():
                raise ValueError(f"to_fully_convolutional: layer {i} ({m.describe()}) has parameters between Flatten "
                                 "and the first Linear; cannot convert")
            layers.append(m)
        shape = out
    if not converted:
        raise ValueError("to_fully_convolutional: the model has no Linear layer after a spatial volume")
    fc = Sequential(*layers)
    object.__setattr__(fc, "crop_shape", tuple(int(d) for d in input_shape))
    object.__setattr__(fc, "stride", total_stride(model))
    return fc.train(model.training)


def total_stride(module: Module) -> int:
    """Product of the strides of every convolution and pooling on the path (the step between the crops that
    neighbouring score-map entries correspond to). Global pooling and everything after it contribute 1."""
    if isinstance(module, Sequential):
        s = 1
        for m in module:
            s *= total_stride(m)
        return s
    if isinstance(module, Concat):
        return total_stride(module[0])
    if isinstance(module, Residual):
        return total_stride(module.body)
    if isinstance(module, Conv2d):
        return module.stride
    if isinstance(module, _WindowPool2d):
        if module.stride[0] != module.stride[1]:
            raise ValueError(f"total_stride: {module.describe()} has different row and column strides")
        return module.stride[0]
    children = list(module.children())
    return total_stride(children[0]) if children else 1


def crop_scores(model: Module, images: np.ndarray, crop_shape, stride: int) -> np.ndarray:
    """The reference loop: `model` on every crop (top-left corners at multiples of `stride`), one forward
    per crop position (all images at once). images: (N, H, W, C) → (N, Ho, Wo, classes)."""
    ch, cw = crop_shape[:2]
    n, h, w, _ = images.shape
    ho, wo = (h - ch) // stride + 1, (w - cw) // stride + 1
    out = None
    with no_grad():
        for i in range(ho):
            for j in range(wo):
                top, left = i * stride, j * stride
                s = model.forward(np.ascontiguousarray(images[:, top:top + ch, left:left + cw]))
                if out is None:
                    out = np.empty((n, ho, wo, s.shape[-1]), dtype=s.dtype)
                out[:, i, j] = s
    return out


def dense_scores(fc_model: Module, images: np.ndarray) -> np.ndarray:
    """One pass of a converted network: images (N, H, W, C) → score map (N, Ho, Wo, classes)."""
    with no_grad():
        return fc_model.forward(images)


def valid_size(fc_model: Module, size: int, crop: int, stride: int, axis: int, channels: int) -> int:
    """The largest side ≤ `size` the converted network tiles exactly (≥ crop)."""
    for s in range(size, crop - 1, -1):
        if (s - crop) % stride:
            continue
        shape = [1, crop, crop, channels]
        shape[1 + axis] = s
        try:
            fc_model.output_shape(tuple(shape))
            return s
        except Exception:  # noqa: BLE001 - any layer's tiling error means "try a smaller size"
            continue
    raise ValueError(f"no size between {crop} and {size} tiles the network")


def dense_map(model: Sequential, images: np.ndarray, input_shape, shifts: int = 1) -> np.ndarray:
    """The notes' dense evaluation with shifted passes, interleaved into one finer score map: `model`
    converted and slid over `images` (N, H, W, C), each at least `input_shape` = (H, W, C), in `shifts` K passes
    per axis over the image shifted from its top-left corner by k·S/K pixels (S = the total stride, k < K;
    the notes' "forward the image a second time shifted by 16 pixels" for K = 2, S = 32). Returns
    (N, P, Q, classes): entry (p, q) is the net on the crop whose top-left corner is (offset(p), offset(q)),
    offset(p) = (p // K)·S + round((p % K)·S / K) — for S divisible by K, every S/K pixels. A pass keeps
    the largest top-left part of its shifted image that the net tiles (every pass starts at its own offset,
    so their positions interleave), and the map is as long as every pass reaches (P = min_k(K·rows_k + k))."""
    fc = to_fully_convolutional(model, input_shape).eval()
    ch, cw, c = input_shape
    n, h, w, _ = images.shape
    if h < ch or w < cw:
        raise ValueError(f"dense_predict: images {images.shape[1:]} are smaller than the model's input {input_shape}")
    if shifts < 1:
        raise ValueError(f"dense_predict: shifts must be ≥ 1, got {shifts}")
    offsets = sorted({int(round(k * fc.stride / shifts)) for k in range(shifts)})  # K > S: every pixel, once
    k = len(offsets)

    def reach(offset: int, side: int, crop: int, axis: int) -> int:  # the pass's tiled side from `offset`, or 0
        return valid_size(fc, side - offset, crop, fc.stride, axis, c) if side - offset >= crop else 0

    heights = [reach(o, h, ch, 0) for o in offsets]
    widths = [reach(o, w, cw, 1) for o in offsets]
    rows = [(s - ch) // fc.stride + 1 if s else 0 for s in heights]
    cols = [(s - cw) // fc.stride + 1 if s else 0 for s in widths]
    p, q = min(k * r + a for a, r in enumerate(rows)), min(k * r + b for b, r in enumerate(cols))
    out = None
    for a, dy in enumerate(offsets):
        for b, dx in enumerate(offsets):
            if a >= p or b >= q:
                continue
            scores = dense_scores(fc, np.ascontiguousarray(images[:, dy:dy + heights[a], dx:dx + widths[b]]))
            if out is None:
                out = np.empty((n, p, q, scores.shape[-1]), dtype=scores.dtype)
            part = out[:, a::k, b::k]
            part[...] = scores[:, :part.shape[1], :part.shape[2]]
    return out


def dense_predict(model: Sequential, images: np.ndarray, input_shape, shifts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Test-time evaluation over many positions (the notes): the class probabilities averaged over the score
    map of `dense_map` (its `shifts` passes per axis interleaved; `shifts` = 1: one pass, the image's top-left
    part that the net tiles). Returns (probabilities (N, classes), the score map (N, P, Q, classes))."""
    scores = dense_map(model, images, input_shape, shifts)
    n, classes = scores.shape[0], scores.shape[-1]
    probs = softmax(scores.reshape(-1, classes).astype(np.float64)).reshape(n, -1, classes)
    return probs.mean(axis=1), scores


def padded_layers(model: Module) -> list[str]:
    """The convolutions (and paddings) that pad before the classifier: where a score map differs from
    evaluating crops (see `padding_gap`)."""
    return [m.describe() for m in model.modules()
            if (isinstance(m, Conv2d) and m.padding) or type(m).__name__ == "ZeroPad2d"]


def padding_gap(model: Sequential, images: np.ndarray, crop_shape) -> np.ndarray:
    """Where one-pass and crop-by-crop evaluation differ: the features just before the classifier (the
    input of the first Flatten or global pooling), compared position by position. Returns (hf, wf): at each
    position of a crop's feature volume the largest |crop feature − one-pass feature| over all crops,
    images and channels, divided by the largest |feature|. For an unpadded network it is float32 rounding
    everywhere (a few ulps, below 1e-6), not exactly zero: the crops and the whole image are multiplied as
    differently shaped matrices."""
    cut = next((i for i, m in enumerate(model) if isinstance(m, Flatten | GlobalAvgPool2d)), None)
    if cut is None:
        raise ValueError("padding_gap: the model has no Flatten or global pooling")
    features = model[:cut]
    stride = total_stride(features)
    ch, cw = crop_shape[:2]
    with no_grad():
        whole = features.forward(images)
        gap = None
        for i in range(0, images.shape[1] - ch + 1, stride):
            for j in range(0, images.shape[2] - cw + 1, stride):
                f = features.forward(np.ascontiguousarray(images[:, i:i + ch, j:j + cw]))
                hf, wf = f.shape[1:3]
                d = np.abs(f - whole[:, i // stride:i // stride + hf, j // stride:j // stride + wf]).max(axis=(0, 3))
                gap = d if gap is None else np.maximum(gap, d)
    return gap / max(float(np.abs(whole).max()), 1e-30)
