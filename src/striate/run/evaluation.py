"""One evaluation of a trained model on a labelled split: accuracy, loss, per-class accuracy, the confusion
matrix, the most-confused class pairs and the top losses (the misclassified images the model was surest
about, as fastai's `plot_top_losses`), computed once and written to a run's evaluation.json and
top_losses/ (the report and `striate eval` read them; nothing predicts twice). Given the images' sources (a
data.Sources), each top loss names its image (`source`: its file, or the dataset and position) and each
confused pair a few of its images (`examples`, highest loss first), so that a mislabelled photo can be found."""

from __future__ import annotations

import numpy as np

from ..nn.losses import SoftmaxCrossEntropy
from ..train import inference
from ..train.metrics import Evaluation, confusion_matrix, per_class_accuracy


def most_confused(cm: np.ndarray, classes: list[str], k: int = 5) -> list[dict]:
    """The `k` largest off-diagonal cells: true class, predicted class, count."""
    off = np.array(cm, dtype=np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [np.unravel_index(i, off.shape) for i in order]
    return [{"true": classes[t], "predicted": classes[p], "count": int(off[t, p])} for t, p in pairs if off[t, p]]


def top_losses(scores: np.ndarray, labels: np.ndarray, classes: list[str], k: int = 16,
               sources=None) -> list[dict]:
    """The `k` misclassified samples with the highest cross-entropy: index, true and predicted class, the
    predicted class's probability, the true class's probability, the loss and, given `sources` (aligned with
    the samples), `source`: where the image came from. scores: (N, C) logits or log-probabilities."""
    from ..nn.losses import log_softmax

    logp = log_softmax(scores.astype(np.float64))
    pred = logp.argmax(axis=1)
    loss = -logp[np.arange(len(labels)), labels]
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-loss[wrong], kind="stable")][:k]
    items = [{"index": int(i), "true": classes[labels[i]], "predicted": classes[pred[i]],
              "probability": float(np.exp(logp[i, pred[i]])), "true_probability": float(np.exp(-loss[i])),
              "loss": float(loss[i])} for i in order]
    if sources is not None:
        for item in items:
            item["source"] = sources[item["index"]]
    return items


def confused_examples(pairs: list[dict], scores: np.ndarray, labels: np.ndarray, classes: list[str], sources,
                      k: int = 3) -> list[dict]:
    """`pairs` (from `most_confused`) with `examples`: the sources of up to `k` images of each pair (true
    class taken for the predicted one), highest loss first. scores: (N, C); sources aligned with them."""
    from ..nn.losses import log_softmax

    logp = log_softmax(scores.astype(np.float64))
    pred = logp.argmax(axis=1)
    loss = -logp[np.arange(len(labels)), labels]
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for pair in pairs:
        members = np.flatnonzero((labels == index[pair["true"]]) & (pred == index[pair["predicted"]]))
        worst = members[np.argsort(-loss[members], kind="stable")][:k]
        out.append({**pair, "examples": [sources[int(i)] for i in worst]})
    return out


def evaluate(model, images: np.ndarray, labels: np.ndarray, classes: list[str], tta: str = "none",
             loss=None, sources=None) -> Evaluation:
    """`model` (its preprocessing applied to `images` already) on a split: the numbers, and `scores` (N, C)
    for whoever needs the per-image results. Given `sources` (aligned with `images`), the most-confused
    pairs name a few of their images (`confused_examples`)."""
    result = inference.evaluate(model, loss or SoftmaxCrossEntropy(), (images, labels), tta=tta, keep=True)
    return _numbers(result["scores"], result["labels"], classes, result, sources)


def evaluate_ensemble(models, images: np.ndarray, labels: np.ndarray, classes: list[str], tta: str = "none",
                      sources=None) -> dict:
    """As `evaluate`, for the average of several models' probabilities (a run's snapshot ensemble, as
    `models.ensemble.Ensemble` mixes them); `scores` are the log of the averaged probabilities."""
    from ..models.ensemble import scores

    probs = np.mean([inference.probabilities(m, images, tta=tta) for m in models], axis=0)
    return _numbers(np.log(np.maximum(probs, 1e-300)), np.asarray(labels), classes, scores(probs, labels), sources)


def _numbers(scores: np.ndarray, labels: np.ndarray, classes: list[str], result: dict, sources=None) -> dict:
    cm = confusion_matrix(scores.argmax(axis=1), labels, len(classes))
    pca = per_class_accuracy(cm)
    pairs = most_confused(cm, classes)
    if sources is not None:
        pairs = confused_examples(pairs, scores, labels, classes, sources)
    return Evaluation(accuracy=result["accuracy"], loss=result["loss"], count=result["count"], classes=classes,
                      per_class_accuracy=[None if np.isnan(a) else float(a) for a in pca],
                      confusion_matrix=cm.tolist(), most_confused=pairs, scores=scores)
