"""`striate predict`: classify image files, or every image in folders, with a trained run: one line an image
(top-k classes with probabilities; `--json`: one JSON object a line), files a folder holds that cannot be read
listed as skipped, and a summary line (images for each predicted class, files skipped). `--dense` slides the
fully convolutional form of the net over each whole image (the notes' FC→CONV evaluation) and averages the
score map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HELP = "classify image files, or every image in folders, with a trained run"


CHUNK_BYTES = 64 << 20  # decoded pixels held at once, so a folder of any size predicts in bounded memory


def add_arguments(parser) -> None:
    from ..data.datasets.image_file import FORMAT_NAMES

    parser.add_argument("run", help="run directory")
    parser.add_argument("images", nargs="+",
                        help=f"image files, or folders: every image below them, at any depth ({FORMAT_NAMES}; "
                             "a folder's other files and unreadable images are listed as skipped)")
    parser.add_argument("--top-k", type=int, default=3, help="classes to show per image (default: 3)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"),
                        help="which checkpoint's weights (default: best)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object a line, one an image (default: one line an image; the summary "
                             "goes to stderr with --json)")
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
    from ..run import RunDir, config

    if args.top_k < 1:
        raise config.ConfigError(f"--top-k must be ≥ 1, got {args.top_k}")
    if (args.dense_scale != 1.0 or args.dense_shift != 1) and not args.dense:
        raise config.ConfigError("--dense-scale and --dense-shift go with --dense")
    if args.dense_scale < 1.0 or args.dense_shift < 1:
        raise config.ConfigError(f"--dense-scale must be ≥ 1 and --dense-shift ≥ 1, got {args.dense_scale:g} and "
                                 f"{args.dense_shift}")
    entries = _entries(args.images)
    directory = RunDir(args.run).require()
    t = directory.load_model(args.checkpoint)
    shorter = int(directory.read_config().get("shorter_side") or 0)  # the run's resize + centre crop, if any
    h, w, c = t.input_shape
    counts = np.zeros(len(t.classes), dtype=np.int64)
    skipped = 0
    chunk = 1 if args.dense else max(1, CHUNK_BYTES // (h * w * c))
    for lo in range(0, len(entries), chunk):
        for r in _predict(t, entries[lo:lo + chunk], args, shorter):
            if "skipped" in r:
                skipped += 1
            else:
                counts[r["top"][0]["index"]] += 1
            _print(r, args.json)
    if args.dense:
        _warn_if_padded(t)  # once every image is read: a failure stays one line
    if len(entries) > 1 or any(Path(p).is_dir() for p in args.images):
        _summary(counts, skipped, t.classes, args.json)
    return 0


def _entries(paths: list[str]) -> list[tuple[str, bool, str | None]]:
    """Every file to predict, in order, as (path, named: given by itself rather than found in a folder, why
    it is skipped or None). A folder's files are image_tree.walk's; a file named by itself is read whatever
    its name, and an unreadable one is an error rather than a skipped line."""
    from ..data import DataError
    from ..data.datasets.image_file import FORMAT_NAMES
    from ..data.datasets.image_tree import walk

    entries = []
    for p in paths:
        if not Path(p).is_dir():
            entries.append((p, True, None))
            continue
        found = walk(p)
        if not any(image for _, image in found):
            also = f" (it holds {len(found)} other files, e.g. {found[0][0]})" if found else ""
            raise DataError(f"no images ({FORMAT_NAMES}) in folder {p}{also}")
        entries += [(str(Path(p) / rel), False, None if image else f"not a format striate reads ({FORMAT_NAMES})")
                    for rel, image in found]
    return entries


def _predict(t, entries: list, args, shorter_side: int = 0) -> list[dict]:
    """One result per entry, in order: the ranked classes, or {'image', 'skipped': reason}. The images are
    decoded together (image_folder.decode_images; as the run's were: resized to its input, or with
    `shorter_side` resized and centre-cropped) and classified in batches (train.inference)."""
    from ..data import DataError
    from ..data.datasets.image_folder import decode_images, decode_workers
    from ..train import inference

    h, w, c = t.input_shape
    mode = "L" if c == 1 else "RGB"
    bad = {path: why for path, _, why in entries if why is not None}
    if args.dense:
        path, named, why = entries[0]
        if why is None:
            try:
                probs, positions = _dense(t, path, mode, args.dense_scale, args.dense_shift)
                return [_ranked(path, probs[0], t.classes, args.top_k, positions=positions)]
            except DataError as err:
                if named:
                    raise
                bad[path] = str(err)
        return [{"image": path, "skipped": bad[path]}]
    paths = [path for path, _, why in entries if why is None]
    title = f"decoding {len(paths):,} images to predict" if len(paths) > 1 else ""  # one file: no progress lines
    images = decode_images(Path(), paths, (h, w), mode, decode_workers((h, w), mode), bad=bad, title=title,
                           shorter_side=shorter_side)
    named_bad = [path for path, named, _ in entries if named and path in bad]
    if named_bad:
        raise DataError(bad[named_bad[0]])
    read = [path for path in paths if path not in bad]
    probs = inference.probabilities(t.model, t.preprocess(images)) if read else []
    ranked = {path: _ranked(path, row, t.classes, args.top_k) for path, row in zip(read, probs, strict=True)}
    return [{"image": path, "skipped": bad[path]} if path in bad else ranked[path] for path, _, _ in entries]


def _print(r: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(r), flush=True)
    elif "skipped" in r:
        print(f"{r['image']}: skipped: {r['skipped']}", flush=True)
    else:
        ranked = ", ".join(f"{c['class']} ({100 * c['probability']:.1f}%)" for c in r["top"])
        where = f" ({r['positions'][0]}×{r['positions'][1]} positions)" if "positions" in r else ""
        print(f"{r['image']}{where}: {ranked}", flush=True)


def _summary(counts: np.ndarray, skipped: int, classes: list[str], as_json: bool) -> None:
    """The last line: images predicted, how many for each class (most first), files skipped."""
    from .. import console

    order = sorted(np.flatnonzero(counts), key=lambda i: (-counts[i], i))
    per_class = ", ".join(f"{classes[i]} {counts[i]:,}" for i in order)
    total = int(counts.sum())
    line = (f"predicted {total:,} image{'s' if total != 1 else ''}" + (f": {per_class}" if per_class else "")
            + f"; skipped {skipped:,}")
    if as_json:
        console.note(line)  # stdout stays one JSON object an image
    else:
        print(line)


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
