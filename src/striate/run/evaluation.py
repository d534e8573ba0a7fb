"""One evaluation of a trained model on a labelled split: accuracy, loss, per-class accuracy, the confusion
matrix, the most-confused class pairs and the top losses (the misclassified images the model was surest
about, as fastai's `plot_top_losses`), computed once and written to a run's evaluation.json and
top_losses/ (the report and `striate eval` read them; nothing predicts twice)."""

from __future__ import annotations

import numpy as np

from ..nn.losses import SoftmaxCrossEntropy
from ..train import inference
from ..train.metrics import confusion_matrix, per_class_accuracy


def most_confused(cm: np.ndarray, classes: list[str], k: int = 5) -> list[dict]:
    """The `k` largest off-diagonal cells: true class, predicted class, count."""
    off = np.array(cm, dtype=np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [np.unravel_index(i, off.shape) for i in order]
    return [{"true": classes[t], "predicted": classes[p], "count": int(off[t, p])} for t, p in pairs if off[t, p]]


def top_losses(scores: np.ndarray, labels: np.ndarray, classes: list[str], k: int = 16) -> list[dict]:
    """The `k` misclassified samples with the highest cross-entropy: index, true and predicted class, the
    predicted class's probability, the true class's probability and the loss. scores: (N, C)."""
    from ..nn.losses import log_softmax

    logp = log_softmax(scores.astype(np.float64))
    pred = logp.argmax(axis=1)
    loss = -logp[np.arange(len(labels)), labels]
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-loss[wrong], kind="stable")][:k]
    return [{"index": int(i), "true": classes[labels[i]], "predicted": classes[pred[i]],
             "probability": float(np.exp(logp[i, pred[i]])), "true_probability": float(np.exp(-loss[i])),
             "loss": float(loss[i])} for i in order]


def evaluate(model, images: np.ndarray, labels: np.ndarray, classes: list[str], tta: str = "none",
             loss=None) -> dict:
    """`model` (its preprocessing applied to `images` already) on a split: the numbers, and `scores` (N, C)
    for whoever needs the per-image results."""
    result = inference.evaluate(model, loss or SoftmaxCrossEntropy(), (images, labels), tta=tta, keep=True)
    return _numbers(result["scores"], result["labels"], classes, result)


def evaluate_ensemble(models, images: np.ndarray, labels: np.ndarray, classes: list[str], tta: str = "none") -> dict:
    """As `evaluate`, for the average of several models' probabilities (a run's snapshot ensemble, as
    `models.ensemble.Ensemble` mixes them); `scores` are the log of the averaged probabilities."""
    from ..models.ensemble import scores

    probs = np.mean([inference.probabilities(m, images, tta=tta) for m in models], axis=0)
    return _numbers(np.log(np.maximum(probs, 1e-300)), np.asarray(labels), classes, scores(probs, labels))


def _numbers(scores: np.ndarray, labels: np.ndarray, classes: list[str], result: dict) -> dict:
    cm = confusion_matrix(scores.argmax(axis=1), labels, len(classes))
    pca = per_class_accuracy(cm)
    return {"accuracy": result["accuracy"], "loss": result["loss"], "count": result["count"], "classes": classes,
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in pca],
            "confusion_matrix": cm.tolist(), "most_confused": most_confused(cm, classes), "scores": scores}
