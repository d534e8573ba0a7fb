"""Classification metrics: accuracy, confusion matrix, per-class accuracy, a text rendering, and `Evaluation`:
an evaluation's results (a dict) with notebook displays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..markup import Displayed, card, headline_row, percent, table


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of `predictions` (N,) equal to `labels` (N,); NaN for N = 0."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"accuracy: predictions {predictions.shape} and labels {labels.shape} differ in shape")
    return float(np.mean(predictions == labels)) if labels.size else float("nan")


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts; row = true class, column = predicted class (scikit-learn's convention)."""
    predictions = np.asarray(predictions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if predictions.shape != labels.shape:
        raise ValueError(f"confusion_matrix: predictions {predictions.shape} and labels {labels.shape} differ")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} must lie in [0, {num_classes}), "
                             f"found {v[(v < 0) | (v >= num_classes)][:5].tolist()}")
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix: diag / row sum (NaN for a class with no samples)."""
    cm = np.asarray(cm)
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def format_confusion(cm: np.ndarray, classes: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per true class, its counts per predicted class, and its accuracy."""
    cm = np.asarray(cm)
    c = cm.shape[0]
    names = [str(n) for n in (classes if classes is not None else range(c))]
    label_w = max(len("true\\pred"), *(len(n) for n in names))
    cell_w = max(4, len(str(int(cm.max()) if cm.size else 0)), *(len(n[:6]) for n in names))
    head = "true\\pred".ljust(label_w) + " " + " ".join(n[:6].rjust(cell_w) for n in names) + "   acc"
    lines = [head]
    acc = per_class_accuracy(cm)
    for i in range(c):
        cells = " ".join(str(int(v)).rjust(cell_w) for v in cm[i])
        a = "   n/a" if np.isnan(acc[i]) else f"{100 * acc[i]:5.1f}%"
        lines.append(names[i].ljust(label_w) + " " + cells + " " + a)
    return "\n".join(lines)


def top_k(probabilities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries of each row of `probabilities` (N, C), best first."""
    k = min(int(k), probabilities.shape[1])
    idx = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(probabilities, idx, axis=1)


class Evaluation(Displayed, dict):
    """An evaluation's results, a dict as before ('accuracy', 'loss', 'count'; from a run's evaluation also
    'classes', 'per_class_accuracy', 'confusion_matrix', 'most_confused'; with `keep`, 'scores' and 'labels')
    that displays itself: the numbers and, when there, the confusion matrix."""

    MAX_CLASSES = 20  # a larger confusion matrix is left out of the displays (per-class accuracy stays)

    def _cm(self):
        cm = self.get("confusion_matrix")
        return None if cm is None or not len(cm) or len(cm) > self.MAX_CLASSES else np.asarray(cm)

    def _headline(self) -> str:
        count = self.get("count")
        split = f"{self['split']} " if self.get("split") else ""
        return (f"{split}accuracy {percent(self.get('accuracy'))} · loss {_number(self.get('loss'))}"
                + ("" if count is None else f" · {count:,} images"))

    def _text(self) -> str:
        lines = [self._headline()]
        cm = self._cm()
        if cm is not None and len(cm) <= 12:
            lines += ["", format_confusion(cm, self.get("classes"))]
        lines += [f"most confused: {p['true']} → {p['predicted']} ({p['count']}×)"
                  for p in (self.get("most_confused") or [])[:3]]
        return "\n".join(lines)

    def _html(self) -> list[str]:
        count = self.get("count")
        parts = [headline_row([card("accuracy", "accuracy", percent(self.get("accuracy"))),
                               card("loss", "loss", _number(self.get("loss"))),
                               card("count", "images", "–" if count is None else f"{count:,}", self.get("split", ""))])]
        cm = self._cm()
        if cm is not None:
            names = [str(n) for n in (self.get("classes") or range(len(cm)))]
            acc = per_class_accuracy(cm)
            rows = [[n, *(int(v) for v in cm[i]), "–" if np.isnan(acc[i]) else f"{100 * acc[i]:.1f} %"]
                    for i, n in enumerate(names)]
            parts += ["<p class='meta'>confusion matrix: a row per true class, a column per predicted class</p>",
                      table(["true \\ predicted", *names, "accuracy"], rows, set(range(1, len(names) + 2)))]
        pairs = self.get("most_confused") or []
        if pairs:
            parts += ["<p class='meta'>most confused</p>",
                      table(["true", "predicted", "count"], [[p["true"], p["predicted"], p["count"]] for p in pairs],
                            {2})]
        return parts


def _number(v) -> str:
    return "–" if v is None else f"{v:.4g}"
