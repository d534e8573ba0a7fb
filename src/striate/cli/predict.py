"""`striate predict`: classify image files with a trained run (top-k classes with probabilities); `--dense`
slides the fully convolutional form of the net over each whole image (the notes' FC→CONV evaluation) and
averages the score map."""

from __future__ import annotations

import json

import numpy as np

HELP = "classify image files with a trained run"


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run directory")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, GIF, TIFF, WebP ...)")
    parser.add_argument("--top-k", type=int, default=3, help="classes to show per image (default: 3)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"),
                        help="which checkpoint's weights (default: best)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (default: one line an image)")
    parser.add_argument("--dense", action="store_true",
                        help="slide the fully convolutional form of the net over the whole image and average the "
                             "score map (images at least the training size; default: resize to it)")
    parser.add_argument("--dense-scale", type=float, default=1.0, metavar="S",
                        help="with --dense, enlarge the image S× first, so the net sees it at several positions "
                             "and scales (default: 1)")
    parser.add_argument("--dense-shift", type=int, default=1, metavar="K",
                        help="with --dense, K passes per axis over the image shifted from its top-left corner by "
                             "stride / K pixels, interleaved into one K× denser map and averaged (the notes' "
                             "shifted second pass; default: 1)")


def run(args) -> int:
    from ..data import read_image
    from ..run import RunDir, config
    from ..train import inference

    if args.top_k < 1:
        raise config.ConfigError(f"--top-k must be ≥ 1, got {args.top_k}")
    if (args.dense_scale != 1.0 or args.dense_shift != 1) and not args.dense:
        raise config.ConfigError("--dense-scale and --dense-shift go with --dense")
    if args.dense_scale < 1.0 or args.dense_shift < 1:
        raise config.ConfigError(f"--dense-scale must be ≥ 1 and --dense-shift ≥ 1, got {args.dense_scale:g} and "
                                 f"{args.dense_shift}")
    t = RunDir(args.run).require().load_model(args.checkpoint)
    h, w, c = t.input_shape
    mode = "L" if c == 1 else "RGB"
    results = []
    if args.dense:
        for path in args.images:
            probs, positions = _dense(t, path, mode, args.dense_scale, args.dense_shift)
            results.append(_ranked(path, probs[0], t.classes, args.top_k, positions=positions))
        _warn_if_padded(t)  # once every image is read: a failure stays one line
    else:
        batch = np.stack([read_image(p, size=(h, w), mode=mode) for p in args.images])
        probs = inference.probabilities(t.model, t.preprocess(batch))
        results = [_ranked(p, probs[n], t.classes, args.top_k) for n, p in enumerate(args.images)]
    if args.json:
        print(json.dumps(results))
        return 0
    for r in results:
        ranked = ", ".join(f"{c['class']} ({100 * c['probability']:.1f}%)" for c in r["top"])
        where = f" ({r['positions'][0]}×{r['positions'][1]} positions)" if "positions" in r else ""
        print(f"{r['image']}{where}: {ranked}")
    return 0


def _dense(t, path: str, mode: str, enlarge: float = 1.0, shifts: int = 1):
    """Probabilities (1, C) averaged over the score maps of the image at its own size × `enlarge` (and at
    least the training size, aspect kept), `shifts` passes per axis, and the map's (rows, columns)."""
    from ..data import probe_image, read_image
    from ..models.convert import dense_predict

    ch, cw, _ = t.input_shape
    h, w = probe_image(path).size
    scale = max(ch / h, cw / w, 1.0) * enlarge
    size = (max(ch, round(h * scale)), max(cw, round(w * scale))) if scale > 1 else None
    x = t.preprocess.any_size(read_image(path, size=size, mode=mode)[None], path)
    probs, scores = dense_predict(t.model, x, tuple(t.input_shape), shifts=shifts)
    return probs, list(scores.shape[1:3])


def _warn_if_padded(t) -> None:
    """The notes' equivalence of a score map and evaluating crops holds for unpadded nets only: say so."""
    from .. import console
    from ..models.convert import padded_layers

    padded = padded_layers(t.model)
    if padded:
        console.note(f"warning: this net pads {len(padded)} of its layers ({padded[0]}, …), so its score map "
                     "differs from evaluating the crops one by one (zeros where the large image has pixels): "
                     "the average is still a valid prediction, not the crop-by-crop one")


def _ranked(path: str, probs: np.ndarray, classes: list[str], k: int, positions=None) -> dict:
    from ..train.metrics import top_k

    idx, val = top_k(probs[None], k)
    out = {"image": path, "top": [{"class": classes[int(i)], "index": int(i), "probability": float(v)}
                                  for i, v in zip(idx[0], val[0], strict=True)]}
    if positions is not None:
        out["positions"] = positions
    return out
