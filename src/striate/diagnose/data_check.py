"""Check 0: the data itself, before any model sees it — the problems no amount of tuning fixes.

`check_inputs(x, y, num_classes)` returns three verdicts, PASS or the problem found:

- "inputs": NaN/inf values (`nonfinite_inputs`); every input the same (`constant_inputs`: blank images);
  inputs not preprocessed (`inputs_not_preprocessed`):
  raw 0 … 255 pixels, a large offset or scale — judged by the RMS √mean(x²), which counts both (WARN > 3,
  FAIL > 10; centred [0, 1] pixels have ≈ 0.4, standardised data 1, raw pixels ≈ 120) — or inputs scaled
  twice (WARN < 0.05, FAIL < 0.01).
- "labels": labels outside 0 … C − 1 (`labels_out_of_range`), a single class (`single_class`), the most
  frequent class ≥ 5× the least frequent (`class_imbalance`, WARN; judged with ≥ 20 samples per class).
- "labels match inputs" (`labels_shuffled`): a model-free test — leave-one-out 1-nearest-neighbour accuracy on
  up to 500 samples against a permutation null: the agreement of the same neighbour graph under 50 random label
  permutations (mean ≈ Σ p_c², the chance that the nearest sample shares the label by luck; its spread gives
  the z-score). Data whose neighbours are informative is far above chance (the digits: ≈ 97 % vs 10 %, z ≈ 50);
  labels shuffled against their images sit at chance (z < 2: FAIL; 2 … 4: WARN). But agreement near chance
  proves shuffling only where correct labels would be far above it, so it is claimed only when the inputs form
  tight groups, judged without the labels: the neighbour contrast (median over samples of the nearest
  neighbour's distance ÷ the median distance to all samples) at most 0.5 (digits and MNIST-like images
  ≈ 0.4). Natural photos in pixel space (≈ 0.6: the nearest photo is barely nearer than any other) have 1-NN
  agreement near chance with correct labels too (cat/dog ≈ 55 % vs 50 %): there the verdict is SKIP,
  "inconclusive" (no warning), unless the agreement is clearly above the null (PASS).

Training's start-up warnings (`run.execute.data_warnings`) print the verdicts that are not PASS.
"""

from __future__ import annotations

import math

import numpy as np

from .check import Finding
from .thresholds import THRESHOLDS
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

T = THRESHOLDS.inputs
MAX_FEATURES = 4096  # the 1-NN test looks at an evenly strided subset of the features of larger inputs
PERMUTATIONS = 50  # label permutations for the 1-NN test's null (O(n) each: cheap beside the distances)


def check_inputs(x: np.ndarray, y: np.ndarray, num_classes: int | None = None, *, val: tuple | None = None,
                 samples: int = 500, seed: int = 0, class_names: list[str] | None = None) -> list[Verdict]:
    """Verdicts "inputs", "labels" and "labels match inputs" for inputs `x` (N, ...) as the model will see
    them (after preprocessing) and integer labels `y` (N,); `num_classes`: the model's number of outputs
    (labels are checked against it). Reads at most `samples` samples for the 1-NN test (chosen with `seed`).
    val: a separate validation set (x, y): "inputs" and "labels" then cover both sets, and a fourth verdict,
    "validation labels match", compares its labels with those of their nearest training inputs (validation
    labels shuffled on their own). class_names: names for the labels 0 … C − 1 in the advice ('dog', not 1)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == len(x) and y.shape[1] > 1:
        raise ValueError(f"check_inputs: labels must be class ids (N,), got {y.shape} — one-hot rows? use "
                         "y.argmax(axis=1)")
    y = y.reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"check_inputs: {len(x)} inputs but {len(y)} labels")
    if val is None:
        return [_inputs([x]), _labels(y, num_classes, class_names), _match(x, y, samples, seed)]
    xv, yv = np.asarray(val[0]), np.asarray(val[1]).reshape(-1)
    return [_inputs([x, xv]), _labels(np.concatenate([y, yv]), num_classes, class_names), _match(x, y, samples, seed),
            _match(xv, yv, samples, seed, train=(x, y))]


def _scan(arrays: list[np.ndarray], rows_per_chunk: int = 4096) -> dict:
    """Statistics of every value of `arrays` (each (N, ...)), a chunk of rows (≤ 32 MB) at a time (no full-size
    copy): count, non-finite count and the first rows holding one, sum and sum of squares (float64), min, max."""
    out = {"n": 0, "bad": 0, "bad_rows": [], "sum": 0.0, "sq": 0.0, "min": math.inf, "max": -math.inf, "integer": True}
    offset = 0
    for a in arrays:
        rows = a.reshape(len(a), -1)
        rows_per_chunk = max(1, min(rows_per_chunk, (32 << 20) // (8 * max(1, rows.shape[1]))))  # ≤ 32 MB of float64
        for i in range(0, len(rows), rows_per_chunk):
            c = rows[i:i + rows_per_chunk].astype(np.float64)
            finite = np.isfinite(c)
            if not finite.all():
                out["bad"] += int(c.size - np.count_nonzero(finite))
                out["bad_rows"] += (offset + i + np.flatnonzero(~finite.all(axis=1))).tolist()[:20]
                c = c[finite]
            out["n"] += c.size
            if c.size:
                out["sum"] += float(c.sum())
                out["sq"] += float(np.square(c).sum())
                out["min"], out["max"] = min(out["min"], float(c.min())), max(out["max"], float(c.max()))
                out["integer"] = out["integer"] and bool(np.all(c.reshape(-1)[:4096] == np.round(c.reshape(-1)[:4096])))
        offset += len(rows)
    return out


def _inputs(arrays: list[np.ndarray]) -> Verdict:
    check, expected = "inputs", f"finite, RMS {T.rms_tiny_warn:g} … {T.rms_warn:g} (centred and scaled)"
    scan = _scan(arrays)
    if scan["bad"]:
        rows = scan["bad_rows"]
        symptom = f"{scan['bad']} NaN/inf value(s) in {len(rows) if len(rows) < 20 else '20 or more'} sample(s) " \
                  f"(first: sample {rows[0]})"
        return Finding(FAIL, "nonfinite_inputs", symptom, "every loss and gradient they touch is NaN").verdict(
            check, symptom, expected, {"nonfinite": scan["bad"], "samples": rows[:20]})
    n = max(scan["n"], 1)
    mean = scan["sum"] / n
    std = math.sqrt(max(scan["sq"] / n - mean * mean, 0.0))
    rms = math.sqrt(scan["sq"] / n)
    lo, hi = (scan["min"], scan["max"]) if scan["n"] else (0.0, 0.0)
    integer = bool(scan["n"]) and scan["integer"]
    details = {"mean": mean, "std": std, "rms": rms, "min": lo, "max": hi, "integer": integer}
    value = f"mean {mean:.3g}, std {std:.3g}, range {lo:.3g} … {hi:.3g}"
    first = arrays[0].reshape(len(arrays[0]), -1)
    if sum(len(a) for a in arrays) > 1 and (hi == lo or (len(first) > 1 and not np.any(first[:1000] != first[:1]))):
        symptom = f"every input is the same (all values {lo:.3g})" if hi == lo else "the inputs are all identical"
        return Finding(FAIL, "constant_inputs", symptom, "nothing to learn from").verdict(check, value, expected,
                                                                                         details)
    if rms < T.rms_tiny_warn:
        symptom = f"the inputs are tiny: RMS {rms:.2g}"
        return Finding(FAIL if rms < T.rms_tiny_fail else WARN, "inputs_not_preprocessed", symptom, "scaled twice? "
                       "Tiny inputs give the first layer tiny gradients").verdict(check, value, expected, details)
    if rms <= T.rms_warn:
        return Verdict(check, PASS, value, expected, "the inputs are finite and of unit scale", details=details)
    if integer and lo >= 0 and hi > 1:
        symptom, fix = f"raw values {lo:.0f} … {hi:.0f} (integer-valued, mean {mean:.3g})", \
            "scale to [0, 1] (÷ 255 for pixels) and subtract the mean"
    elif abs(mean) > std:
        symptom, fix = f"the inputs are offset: mean {mean:.3g} against std {std:.3g}", "subtract the mean"
    else:
        symptom, fix = f"the inputs are large: std {std:.3g}", "standardise them (÷ std per feature or channel)"
    status = FAIL if rms > T.rms_fail else WARN
    return Finding(status, "inputs_not_preprocessed", symptom, f"{fix}; large inputs saturate or blow up the first "
                   "layers and need a tiny learning rate").verdict(check, value, expected, details)


def _labels(y: np.ndarray, num_classes: int | None, names: list[str] | None = None) -> Verdict:
    check = "labels"

    def name(c) -> str:
        return f"{names[c]!r}" if names is not None and 0 <= c < len(names) else f"class {c}"

    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"check_inputs: labels must be integer class ids, got dtype {y.dtype}")
    expected = f"0 … {num_classes - 1}, several classes, balanced" if num_classes else "several classes, balanced"
    if not len(y):
        return Verdict(check, SKIP, "no labels", expected)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        out = y[(y < 0) | (y >= (num_classes or hi + 1))]
        symptom = f"labels {lo} … {hi} for {num_classes} outputs ({len(out)} outside 0 … {(num_classes or 1) - 1})"
        hint = " — offset by one?" if num_classes is not None and lo == 1 and hi == num_classes else ""
        return Finding(FAIL, "labels_out_of_range", symptom, f"the loss cannot score them{hint}").verdict(
            check, symptom, expected, {"min": lo, "max": hi, "outside": len(out)})
    classes, counts = np.unique(y, return_counts=True)
    details = {"classes": classes.tolist(), "counts": counts.tolist()}
    if len(classes) == 1:
        only = f" ({names[classes[0]]!r})" if names is not None and classes[0] < len(names) else ""
        symptom = f"every label is {classes[0]}{only} ({len(y)} samples)"
        return Finding(FAIL, "single_class", symptom, "there is nothing to learn").verdict(check, symptom, expected,
                                                                                          details)
    ratio = float(counts.max() / counts.min())
    details["ratio"] = ratio
    value = f"{len(classes)} classes, {counts.min()} … {counts.max()} samples each"
    if ratio >= T.imbalance and counts.max() >= 20:
        big, small = classes[counts.argmax()], classes[counts.argmin()]
        symptom = f"{name(big)} has {counts.max()} samples, {name(small)} {counts.min()} ({ratio:.0f}×)"
        return Finding(WARN, "class_imbalance", symptom, "the classes are imbalanced").verdict(check, value, expected,
                                                                                              details)
    return Verdict(check, PASS, value, expected, "several classes, roughly balanced", details=details)


def nearest_neighbours(x: np.ndarray, ref: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Each row of `x` (n, D)'s nearest neighbour (Euclidean): its index among the other rows (leave-one-out), or
    among the rows of `ref` (m, D); and the neighbour contrast, the median over rows of the distance to the
    nearest neighbour ÷ the median distance to all of them — label-free, near 1 when the nearest neighbour is
    barely nearer than a typical input (so it says little about the label), small when inputs form tight groups."""
    x = x.astype(np.float64)
    xr = x if ref is None else ref.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)[:, None] + np.einsum("ij,ij->i", xr, xr)[None, :] - 2 * (x @ xr.T)
    d = np.sqrt(np.maximum(sq, 0.0))
    if ref is None:
        np.fill_diagonal(d, np.inf)
    nn = d.argmin(axis=1)
    near = d[np.arange(len(x)), nn]
    if ref is None:
        np.fill_diagonal(d, np.nan)
    typical = np.nanmedian(d, axis=1)
    contrast = float(np.median(near / np.maximum(typical, 1e-12)))
    return nn, contrast


def permutation_null(y: np.ndarray, nn: np.ndarray, yr: np.ndarray | None = None, rounds: int = PERMUTATIONS,
                     seed: int = 0) -> tuple[float, float]:
    """The 1-NN agreement the same neighbour graph `nn` gives under random permutations of the labels `y`
    (leave-one-out, `yr` None: both ends permuted together; else `y` permuted against fixed neighbour labels
    `yr`): its mean and standard deviation over `rounds` permutations — what shuffled labels would show."""
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(rounds):
        p = rng.permutation(y)
        scores.append(np.mean((p if yr is None else yr)[nn] == p))
    return float(np.mean(scores)), float(np.std(scores))


def _subset(x: np.ndarray, y: np.ndarray, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `samples` finite rows of `x` flattened (an evenly strided subset of the features of large
    inputs) and their labels."""
    n = len(x)
    flat = x.reshape(n, -1)
    idx = np.sort(np.random.default_rng(seed).choice(n, min(samples, n), replace=False)) if n else np.array([], int)
    stride = max(1, flat.shape[1] // MAX_FEATURES) if n else 1
    sub = flat[np.ix_(idx, np.arange(0, flat.shape[1], stride))] if n else flat
    keep = np.isfinite(sub).all(axis=1)
    return sub[keep], y[idx][keep]


def _match(x: np.ndarray, y: np.ndarray, samples: int, seed: int, train: tuple | None = None) -> Verdict:
    check = "labels match inputs" if train is None else "validation labels match"
    expected = f"1-NN accuracy far above chance (z > {T.match_warn_z:g})"
    sub, ys = _subset(x, y, samples, seed)
    ref = None if train is None else _subset(train[0], np.asarray(train[1]).reshape(-1), 4 * samples, seed + 1)
    classes, counts = np.unique(ys, return_counts=True)
    if len(ys) < 50 or len(counts) < 2 or (ref is not None and len(ref[1]) < 50):
        return Verdict(check, SKIP, f"{len(ys)} usable samples, {len(counts)} classes", expected,
                       "too few samples or classes to test")
    nn, contrast = nearest_neighbours(sub, None if ref is None else ref[0])
    acc = float(np.mean((ys if ref is None else ref[1])[nn] == ys))
    # chance: the agreement of the same neighbour graph under shuffled labels (≈ Σ p_c², or Σ p_c q_c against
    # the training labels); its spread, not a binomial one, since neighbour pairs are not independent draws
    chance, spread = permutation_null(ys, nn, None if ref is None else ref[1], seed=seed)
    z = (acc - chance) / max(spread, 1 / len(ys))
    details = {"accuracy": acc, "chance": chance, "z": z, "samples": len(ys), "contrast": contrast}
    value = f"1-NN {100 * acc:.1f} % vs chance {100 * chance:.1f} % (z = {z:.1f}, {len(ys)} samples)"
    if z > T.match_warn_z:
        return Verdict(check, PASS, value, expected, "similar inputs share labels", details=details)
    if contrast > T.match_contrast:
        return Verdict(check, SKIP, f"inconclusive: {value}, neighbour contrast {contrast:.2f}", expected,
                       f"inconclusive: the nearest input is barely nearer than a typical one (neighbour contrast "
                       f"{contrast:.2f} > {T.match_contrast:g}), so on inputs like these (natural photos in pixel "
                       "space) neighbours share labels near chance even when every label is right", details=details)
    whose = "an input's nearest neighbour" if ref is None else "a validation input's nearest training input"
    symptom = f"{whose} shares its label only {100 * acc:.1f} % of the time (chance {100 * chance:.1f} %)"
    return Finding(FAIL if z < T.match_fail_z else WARN, "labels_shuffled", symptom, "the labels look shuffled "
                   "against the inputs").verdict(check, value, expected, details)
