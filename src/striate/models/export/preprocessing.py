"""A run's fitted preprocessing (`data.pipeline.Preprocessing`: Scale(1/255) and the steps `--preprocess` names)
as ONNX nodes in front of the network, so the graph takes what `striate predict` decodes: uint8 pixels
(N, H, W, C), 0–255. Each step is the same float32 arithmetic as its `transform` (the constants are its fitted
arrays), except per-image standardisation, which striate computes in float64 and so does the graph.
A step of another class is refused by name.
"""

from __future__ import annotations

import math

import numpy as np

from ...data import preprocess
from ...data.errors import DataError
from ...data.preprocess import (
    PCA,
    MeanImage,
    PerChannelMean,
    PerChannelStandardize,
    PerImageStandardize,
    PerPixelStandardize,
    Preprocessor,
    Scale,
    Whitening,
)
from .graph import Graph, Tensor

DOUBLE, FLOAT = 11, 1  # onnx.TensorProto.DOUBLE, FLOAT
# published weights' fixed statistics (issue 26's `--preprocess imagenet`, a branch merged separately)
_FIXED = getattr(preprocess, "FixedStandardize", None)


def steps_of(preprocessing) -> list[Preprocessor]:
    """The steps of a `Preprocessing`, a list of Preprocessors or one Preprocessor."""
    steps = getattr(preprocessing, "steps", preprocessing)
    steps = [steps] if isinstance(steps, Preprocessor) else list(steps)
    for i, s in enumerate(steps):
        if not isinstance(s, Preprocessor):
            raise TypeError(f"export_onnx: preprocessing step {i} is {type(s).__name__}, not a Preprocessor")
    return steps


def _sub_div(g: Graph, t: Tensor, step, divide: bool) -> Tensor:
    y = g.then(t, "Sub", g.const(step.mean_.astype(np.float32), "mean"))
    return g.then(y, "Div", g.const(step.std_.astype(np.float32), "std")) if divide else y


def _per_image(g: Graph, t: Tensor, step) -> Tensor:
    """(x − mean) / (std + eps) over each image's values, in float64 as `PerImageStandardize` computes it."""
    axes = list(range(1, len(t.shape)))
    x = g.then(t, "Cast", to=DOUBLE)
    centred = g.then(x, "Sub", g.reduce("ReduceMean", x, axes, True, t.shape, t.layout).name)
    var = g.reduce("ReduceMean", g.then(centred, "Mul", centred.name), axes, True, t.shape, t.layout)
    denominator = g.then(g.then(var, "Sqrt"), "Add", g.const(np.array(step.eps, dtype=np.float64), "eps"))
    return g.then(g.then(centred, "Div", denominator.name), "Cast", to=FLOAT)


def _project(g: Graph, t: Tensor, mean, matrix, keep_shape: bool) -> Tensor:
    """(flat x − mean) @ matrix: PCA and whitening; `keep_shape` (ZCA) reshapes back to the sample shape."""
    d = math.prod(t.shape[1:])
    flat = g.then(t, "Reshape", g.ints([0, d], "shape"), shape=(1, d), layout="flat")
    out = g.then(g.then(flat, "Sub", g.const(mean.astype(np.float32), "mean")), "MatMul",
                 g.const(matrix.astype(np.float32), "matrix"), shape=(1, matrix.shape[1]))
    if keep_shape:
        out = g.then(out, "Reshape", g.ints([0, *t.shape[1:]], "shape"), shape=t.shape, layout=t.layout)
    return out


def _step(g: Graph, t: Tensor, step) -> Tensor:
    kind = type(step)
    if kind is Scale:
        return g.then(t, "Mul", g.float(step.factor, "factor"))
    if kind in (MeanImage, PerChannelMean):
        return _sub_div(g, t, step, divide=False)
    if kind in (PerChannelStandardize, PerPixelStandardize):
        return _sub_div(g, t, step, divide=True)
    if _FIXED is not None and kind is _FIXED:  # (x − float32(mean)) / float32(std), as its transform
        y = g.then(t, "Sub", g.const(np.float32(step.mean), "mean"))
        return g.then(y, "Div", g.const(np.float32(step.std), "std"))
    if kind is PerImageStandardize:
        return _per_image(g, t, step)
    if kind is PCA:
        return _project(g, t, step.mean_, step.components_.T, keep_shape=False)
    if kind is Whitening:
        return _project(g, t, step.mean_, step.matrix_, keep_shape=step.kind == "zca")
    raise ValueError(f"export_onnx: preprocessing step {step!r} has no ONNX equivalent")


def emit_preprocessing(g: Graph, steps: list[Preprocessor], pixels: Tensor) -> Tensor:
    """The steps on uint8 `pixels` (N, H, W, C): float32 (N, H, W, C), or (N, 1, 1, k) after PCA or PCA
    whitening (a vector as a 1×1 image, as `Preprocessing` gives it to the network)."""
    g.where = "preprocessing"
    t = g.then(pixels, "Cast", to=FLOAT)
    for i, step in enumerate(steps):
        g.where = f"preprocessing.{i}"
        fitted = getattr(step, "input_shape_", None)
        if step.needs_fit and fitted is None:
            raise DataError(f"export_onnx: preprocessing step {step!r} is not fitted")
        if step.needs_fit and tuple(int(d) for d in fitted) != tuple(t.shape[1:]):
            raise DataError(f"export_onnx: preprocessing step {step!r} was fitted on samples of shape "
                            f"{tuple(int(d) for d in fitted)}, the graph gives it {tuple(t.shape[1:])}")
        t = _step(g, t, step)
    if len(t.shape) == 2:
        k = t.shape[1]
        t = g.then(t, "Reshape", g.ints([0, 1, 1, k], "shape"), shape=(1, 1, 1, k), layout="nhwc")
    return t
