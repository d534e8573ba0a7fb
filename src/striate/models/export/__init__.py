"""`export_onnx`: a striate model, and optionally its run's fitted preprocessing, as an ONNX file that
onnxruntime (or any ONNX runtime) runs without striate. Needs the `onnx` package (`pip install
'striate[onnx]'`), imported on the first export, never by `import striate`.

The graph computes the model's eval-mode forward (`model.eval()`; dropout the identity, BatchNorm with its
running statistics, FractionalMaxPool2d with its fixed eval regions) on a batch of any size. Default opset 17
(defined by onnx 1.12, 2022, and read by every current runtime); any opset from 13 to the installed onnx
package's newest can be asked for (from 20, GELU is ONNX's own Gelu). Layer by layer equivalences:
`layers.py`; the graph's layouts: `graph.py`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import numpy as np

from ...atomic import write_atomic
from ...nn.module import Module
from .graph import Graph, Tensor
from .layers import CONVERTERS, emit
from .preprocessing import emit_preprocessing, steps_of

DEFAULT_OPSET = 17
MIN_OPSET = 13  # every operator export writes has its current form from here (Pad's pads and Gemm's optional C
# from 11, Gather, Max, Reshape from 13); the tests run 13, 17 and 20
_PROTOBUF_LIMIT = 2**31 - 1  # a ModelProto larger than this needs ONNX's external data, which export does not write


def load_onnx():
    """The `onnx` package, or ModuleNotFoundError saying how to install it."""
    try:
        import onnx
    except ModuleNotFoundError:
        raise ModuleNotFoundError("exporting to ONNX needs the onnx package: pip install 'striate[onnx]'",
                                  name="onnx") from None
    return onnx


def check_opset(opset, onnx=None) -> int:
    """`opset` as an int, or ValueError when it is outside MIN_OPSET … the installed onnx's newest."""
    newest = (onnx or load_onnx()).defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int | np.integer) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export_onnx: opset must be an integer from {MIN_OPSET} to {newest} (the installed onnx "
                         f"package's newest), got {opset!r}")
    return int(opset)


def refuse_unsupported(model) -> None:
    """ValueError naming the first layer (by its path in `model`, e.g. '5.body.1') whose class has no converter."""
    if not isinstance(model, Module):
        raise TypeError(f"export_onnx: expected a striate model (an nn.Module), got {type(model).__name__}")
    for name, m in model.named_modules():
        if type(m) not in CONVERTERS:
            where = f"layer {name} {m.describe()}" if name else f"the model {m.describe()}"
            raise ValueError(f"export_onnx: {where} has no ONNX equivalent (export takes the layers of striate.nn: "
                             f"{', '.join(sorted(c.__name__ for c in CONVERTERS))})")
    for name, p in model.named_parameters():
        if p.data.dtype != np.float32:
            raise ValueError(f"export_onnx: parameter {name} is {p.data.dtype}; export takes float32 models "
                             "(model.to(np.float32))")


def _check_path(path) -> None:
    """OSError naming the output path when it cannot be a file, before any work."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "the output is a directory, not a file", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such directory for the output", str(path.parent))


def _sample_shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) not in (1, 3) or min(shape) < 1 or shape != tuple(input_shape):
        raise ValueError(f"export_onnx: input_shape must be one sample's shape, (H, W, C) or (D,) of positive "
                         f"integers, got {input_shape!r}")
    return shape


def export_onnx(model, path: str | os.PathLike, input_shape, *, opset: int = DEFAULT_OPSET, preprocessing=None,
                fold_batchnorm: bool = True):
    """Write `model` as an ONNX file at `path` (atomically) and return the `onnx.ModelProto`.

    The graph's input "images" is (N, *input_shape), N any batch size:
    - without `preprocessing`: float32, what the model's forward takes (`RunDir(...).load_model().model`:
      the preprocessed NHWC batch, input_shape (H, W, C); (D,) for a model on vectors);
    - with `preprocessing` (a run's fitted `Preprocessing`, e.g. `load_model().preprocess`, or a list of
      fitted Preprocessors): uint8 pixels 0–255 (N, H, W, C), what `striate predict` decodes, and
      input_shape is the raw images' (H, W, C).
    The output "scores" is the model's output (N, num_classes) (the logits; no softmax).
    opset: 17 by default (see the module docstring). fold_batchnorm: each BatchNorm that follows a Conv2d or
    Linear is folded into its weights (as `nn.fold` does); the others, and all with False, are x·s + t per channel.
    ValueError naming the layer for a layer with no exact ONNX equivalent (never a graph that computes
    something else); LayerError when input_shape does not fit the model.
    """
    onnx = load_onnx()
    opset = check_opset(opset, onnx)
    _check_path(path)
    refuse_unsupported(model)
    shape = _sample_shape(input_shape)
    steps = None if preprocessing is None else steps_of(preprocessing)
    g = Graph(onnx, opset, fold_batchnorm)
    layout = "nhwc" if len(shape) == 3 else "flat"
    images = Tensor("images", layout, (1, *shape))
    x = images if steps is None else emit_preprocessing(g, steps, images)
    out_shape = model.output_shape(x.shape)  # a LayerError naming the layer the shape does not fit
    with _in_eval(model):
        y = g.nhwc(emit(g, model, x, ""))
    g.where = "output"
    h = onnx.helper
    g.graph.node.append(h.make_node("Identity", [y.name], ["scores"], name="output"))
    g.graph.name = type(model).__name__
    dtype = onnx.TensorProto.FLOAT if steps is None else onnx.TensorProto.UINT8
    g.graph.input.append(h.make_tensor_value_info("images", dtype, ["N", *shape]))
    g.graph.output.append(h.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["N", *out_shape[1:]]))
    return _save(onnx, g.model, opset, path)


@contextlib.contextmanager
def _in_eval(model):
    """`model` in eval mode for the block (what the graph computes), each module's mode restored after: no copy
    of the weights, which export only reads."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


def _save(onnx, proto, opset: int, path) -> object:
    from ...version import __version__

    ops = [onnx.helper.make_opsetid("", opset)]
    proto.opset_import.extend(ops)
    proto.ir_version = onnx.helper.find_min_ir_version_for(ops)  # the oldest runtime that knows the opset reads it
    proto.producer_name, proto.producer_version = "striate", __version__
    try:
        data = proto.SerializeToString()  # once: the checker and the file take the same bytes
    except ValueError:  # protobuf's 2 GiB limit
        data = None
    if data is None or len(data) > _PROTOBUF_LIMIT:
        raise ValueError("export_onnx: the model is over 2 GiB; ONNX files that large need external data, which "
                         "export does not write")
    onnx.checker.check_model(data)
    write_atomic(path, data)
    return proto


__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "check_opset", "export_onnx", "load_onnx", "refuse_unsupported"]
