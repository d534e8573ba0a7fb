"""The ONNX graph `export_onnx` builds: its nodes and constants, and the layout of every tensor in it.

striate's images are NHWC; ONNX's Conv, pooling and LRN are NCHW. A `Tensor` records which layout its values
are in, and a layer that needs the other one asks for it (`Graph.nchw`, `Graph.nhwc`): a transpose is written
only where the layout changes, so a run of convolutions, pools and activations stays NCHW, and the tensor goes
back to NHWC before a Flatten (striate flattens in H·W·C order) or at the graph's end. `Tensor.shape` is
always striate's shape of the value for a batch of one (NHWC for images), whatever its layout in the graph.

The `onnx` package is passed in by the caller (imported on first use, never by `import striate`).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


class Tensor(NamedTuple):
    """A value of the graph: its name, its layout ('nhwc' or 'nchw' for (N, H, W, C) images; 'flat' for
    (N, D) features) and striate's shape of it for a batch of one."""

    name: str
    layout: str
    shape: tuple[int, ...]

    @property
    def channel_axis(self) -> int:
        return 1 if self.layout == "nchw" else len(self.shape) - 1


class Graph:
    """The model being built (`model`, its `graph`): nodes and initialisers in the order they are written, for
    opset `opset` (`onnx` the imported package); `fold_batchnorm` as `export_onnx` takes it. `where` names the
    layer being converted; nodes and constants are named after it."""

    def __init__(self, onnx, opset: int, fold_batchnorm: bool = True):
        self.onnx, self.opset, self.fold_batchnorm = onnx, int(opset), bool(fold_batchnorm)
        # written straight into the model's graph: make_graph and make_model would copy every weight twice
        self.model = onnx.ModelProto()
        self.graph = self.model.graph
        self.where = "input"
        self._ids = itertools.count()

    def _name(self, hint: str) -> str:
        return f"{self.where or 'model'}/{hint}_{next(self._ids)}"

    def const(self, array, hint: str = "const") -> str:
        """An initialiser holding `array` (its dtype kept: float32 weights, int64 shapes and indices)."""
        name = self._name(hint)
        self.graph.initializer.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values, hint: str = "ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def float(self, value: float, hint: str = "scalar") -> str:
        """A float32 scalar, rounded as striate rounds a Python float into a float32 array's arithmetic."""
        return self.const(np.array(value, dtype=np.float32), hint)

    def op(self, op_type: str, inputs, **attrs) -> str:
        """Append node `op_type` on `inputs` (names; '' for an omitted optional input); returns its output."""
        out = self._name(op_type.lower())
        self.graph.node.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def then(self, t: Tensor, op_type: str, *inputs, shape=None, layout=None, **attrs) -> Tensor:
        """`op_type` on t (and the other `inputs`) as a Tensor: t's layout and shape unless given."""
        return Tensor(self.op(op_type, [t.name, *inputs], **attrs), layout or t.layout,
                      t.shape if shape is None else tuple(shape))

    # ----- layouts ---------------------------------------------------------------------------------------
    def nchw(self, t: Tensor) -> Tensor:
        """t with NCHW values (a transpose when it holds NHWC ones)."""
        if t.layout == "nhwc":
            return self.then(t, "Transpose", layout="nchw", perm=list(TO_NCHW))
        return t

    def nhwc(self, t: Tensor) -> Tensor:
        """t with striate's own values: NHWC images (a transpose when it holds NCHW ones), flat vectors as they are."""
        if t.layout == "nchw":
            return self.then(t, "Transpose", layout="nhwc", perm=list(TO_NHWC))
        return t

    def like(self, t: Tensor, other: Tensor) -> Tensor:
        """t in the layout of `other` (to add or concatenate them)."""
        return self.nchw(t) if other.layout == "nchw" else self.nhwc(t)

    def per_channel(self, t: Tensor, vector: np.ndarray, hint: str) -> str:
        """A constant of one value per channel that broadcasts along t's channel axis: (C, 1, 1) for NCHW
        values, (C,) for NHWC images and flat vectors; a single value (1,) stays (1,)."""
        vector = np.asarray(vector).reshape(-1)
        if t.layout == "nchw" and vector.size > 1:
            vector = vector.reshape(-1, 1, 1)
        return self.const(vector, hint)

    # ----- operators whose form changed between opsets ---------------------------------------------------
    def reduce(self, op_type: str, t: Tensor, axes, keepdims: bool, shape, layout: str) -> Tensor:
        """ReduceMean or ReduceMax over `axes`: an input from opset 18, an attribute before."""
        if self.opset >= 18:
            return self.then(t, op_type, self.ints(axes, "axes"), shape=shape, layout=layout, keepdims=int(keepdims))
        return self.then(t, op_type, shape=shape, layout=layout, axes=list(axes), keepdims=int(keepdims))

    def check_size(self, layer, onnx_size: tuple[int, int], t: Tensor, out_shape) -> None:
        """Refuse (never export wrong) when ONNX's output size rule gives another size than striate's."""
        if tuple(onnx_size) != tuple(out_shape[1:3]):
            raise ValueError(f"export_onnx: layer {self.where} {layer.describe()} gives {out_shape[1:3]} on input "
                             f"{t.shape}, ONNX's rule {tuple(onnx_size)}: no exact ONNX equivalent")
