"""`striate summary`: per-layer output shape, parameters, multiply-accumulates and activation memory of a
model from the zoo or of a run's model, with totals and the memory of one training step."""

from __future__ import annotations

import json

HELP = "per-layer output shape, parameters, MACs, activation memory and training memory of a model"


def add_arguments(parser) -> None:
    from ..models import names
    from ..optim.registry import NAMES

    parser.add_argument("model", nargs="?", help=f"a model name ({', '.join(names())}) or a run directory "
                        "(default: the model of --config)")
    parser.add_argument("--config", metavar="FILE", help="a run file: its model (a name with keywords, or a "
                        "layer list) for its dataset's images and classes (default: none)")
    parser.add_argument("--input", metavar="HxWxC", help="input size, e.g. 224x224x3 (default: the model's own)")
    parser.add_argument("--num-classes", type=int, help="number of classes (default: the model's own)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of the channels (default: 1)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size of the training-memory line "
                        "(default: 1)")
    parser.add_argument("--optimizer", default="sgd", choices=NAMES,
                        help="optimizer whose state counts in the training memory (default: sgd)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON (default: a table)")


def _model(args):
    """(model, input shape (H, W, C)) from a run file, a run directory or the registry."""
    from pathlib import Path

    from ..complexity import parse_input_shape
    from ..models import registry
    from ..run import RunDir, config

    if args.config:
        return _from_run_file(args)
    if not args.model:
        raise config.ConfigError("give a model name, a run directory, or --config FILE")
    if Path(args.model).is_dir():
        trained = RunDir(args.model).require().load_model("last")
        shape = parse_input_shape(args.input) if args.input else tuple(trained.input_shape)
        return trained.model, shape
    if args.model not in registry.names():
        registry.builder(args.model)  # raises, naming the nearest models
    shape = parse_input_shape(args.input) if args.input else registry.native_input(args.model)
    if shape is None:
        raise config.ConfigError(f"model {args.model!r} has no native input size: give --input HxWxC")
    h, w, c = shape
    kw = {} if args.width == 1.0 else {"width": args.width}
    classes = args.num_classes if args.num_classes is not None else registry.default_classes(args.model)
    return registry.get(args.model, classes, c, image_size=(h, w), **kw), shape


def _from_run_file(args):
    """The run file's model for its dataset's classes and image shape (or --input / --num-classes)."""
    from ..complexity import parse_input_shape
    from ..run import config, load_data, make_model, run_file
    from ..run.build import model_input, preprocessing

    values = run_file.load_run_file(args.config, "finetune")  # a fine-tuned run's file names its model too
    command = "finetune" if "from" in values else "train"
    cfg = config.resolve(values, where=args.config, base=config.defaults(command), command=command)
    if args.width != 1.0:
        cfg["width"] = args.width
    if args.input and args.num_classes is not None:
        shape, classes = parse_input_shape(args.input), args.num_classes
    else:
        data = load_data(cfg)
        shape = parse_input_shape(args.input) if args.input else model_input(cfg, preprocessing(cfg), data.shape)
        classes = args.num_classes if args.num_classes is not None else len(data.classes)
    args.model = args.model or cfg["model"] or "model"
    return make_model(cfg, classes, shape, measure_only=True), shape  # shapes only: no weight is allocated


def run(args) -> int:
    from ..complexity import complexity
    from ..run import config

    if args.batch_size < 1:
        raise config.ConfigError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    try:
        model, shape = _model(args)
    except ValueError as e:  # a bad --input, --width or model name: the command line's fault
        if isinstance(e, config.ConfigError) or type(e).__name__ == "CheckpointError":
            raise
        raise config.ConfigError(str(e)) from None
    table = complexity(model, shape, batch_size=1)
    memory = table.training_memory(args.batch_size, args.optimizer)
    if args.json:
        print(json.dumps({
            "model": args.model, "input": list(shape), "params": table.total_params, "macs": table.total_macs,
            "activation_bytes": table.activation_bytes,
            "rows": [{"name": r.name, "layer": r.layer, "output_shape": list(r.output_shape[1:]), "params": r.params,
                      "macs": r.macs, "activation_bytes": r.activation_bytes} for r in table.rows],
            "training_memory": {"batch_size": memory.batch_size, "optimizer": memory.optimizer,
                                "activations": memory.activations, "parameters": memory.parameters,
                                "gradients": memory.gradients, "optimizer_state": memory.optimizer_state,
                                "workspace": memory.workspace, "threads": memory.threads, "total": memory.total}}))
        return 0
    print(f"{args.model} on {shape[0]}x{shape[1]}x{shape[2]}")
    print(table)
    print(memory)
    return 0
