"""`striate export RUN model.onnx`: a trained run's model as an ONNX file (`models.export_onnx`), for
onnxruntime or any other ONNX runtime; `--with-preprocessing` puts the run's fitted preprocessing in front, so
the graph takes uint8 pixels as `striate predict` decodes them."""

from __future__ import annotations

HELP = "write a run's model as an ONNX file (needs the onnx package: pip install 'striate[onnx]')"
DESCRIPTION = """Write a run's model as an ONNX file, for onnxruntime or any other ONNX runtime.

The graph's input "images" is the preprocessed float32 batch (N, H, W, C) the model takes (N any batch size);
with --with-preprocessing, the raw uint8 pixels (N, H, W, C), 0-255, at the run's image size, with the run's
fitted preprocessing done inside the graph. Its output "scores" is (N, classes), the model's logits (no
softmax). BatchNorm layers after a convolution or fully connected layer are folded into it. A layer with no
exact ONNX equivalent is refused, by name."""


def add_arguments(parser) -> None:
    from ..models.export import DEFAULT_OPSET, MIN_OPSET

    parser.add_argument("run", help="run directory")
    parser.add_argument("output", help="the ONNX file to write, e.g. model.onnx (replaced if it exists)")
    parser.add_argument("--with-preprocessing", action="store_true",
                        help="put the run's fitted preprocessing in the graph: it takes uint8 pixels (N, H, W, C) "
                             "as decoded from image files (default: the preprocessed float32 batch)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"),
                        help="which checkpoint's weights (default: best)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset of the graph, {MIN_OPSET} to the installed onnx package's newest "
                             f"(default: {DEFAULT_OPSET})")


def run(args) -> int:
    from ..models.export import check_opset, export_onnx, load_onnx
    from ..run import RunDir, config

    try:
        onnx = load_onnx()
        check_opset(args.opset, onnx)
    except (ModuleNotFoundError, ValueError) as e:
        raise config.ConfigError(str(e).removeprefix("export_onnx: ")) from None
    t = RunDir(args.run).require().load_model(args.checkpoint)
    raw = tuple(t.input_shape)
    shape = raw if args.with_preprocessing else t.preprocess.output_shape(raw)
    try:
        proto = export_onnx(t.model, args.output, shape, opset=args.opset,
                            preprocessing=t.preprocess if args.with_preprocessing else None)
    except ValueError as e:  # the command's name starts the line already
        raise ValueError(str(e).removeprefix("export_onnx: ")) from None
    takes = "uint8 pixels" if args.with_preprocessing else "float32 preprocessed"
    out = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    print(f"wrote {args.output}: images ({', '.join(map(str, ('N', *shape)))}) {takes} → scores "
          f"({', '.join(map(str, out))}), opset {args.opset}, {len(proto.graph.node)} nodes")
    return 0
