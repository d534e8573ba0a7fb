"""Classification losses (softmax cross-entropy, Weston–Watkins multiclass SVM) and the L2/L1 weight
penalties of the notes. A loss returns the batch-mean as a Python float (`reduction="sum"`: the batch's
sum, PyTorch's reduction='sum'); `backward()` returns d(loss)/d(scores) for the last call."""

from __future__ import annotations

import numpy as np

from .errors import LayerError
from .module import Module


def check_scores_labels(name: str, scores, labels) -> np.ndarray:
    """Validate (N, C) float scores and (N,) integer labels in [0, C); return labels as intp."""
    if not isinstance(scores, np.ndarray) or scores.ndim != 2 or not np.issubdtype(scores.dtype, np.floating):
        raise LayerError(f"{name}: expected float scores (N, C), got "
                         f"{getattr(scores, 'shape', type(scores).__name__)} {getattr(scores, 'dtype', '')}")
    labels = np.asarray(labels)
    n, c = scores.shape
    if labels.shape != (n,):
        raise LayerError(f"{name}: expected labels ({n},) for scores {scores.shape}, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise LayerError(f"{name}: labels must be integer class ids, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= c):
        bad = labels[(labels < 0) | (labels >= c)]
        raise LayerError(f"{name}: labels must lie in [0, {c}), found {bad[:5].tolist()}")
    return labels.astype(np.intp, copy=False)


REDUCTIONS = ("mean", "sum")  # a run's `loss_reduction`


class Loss:
    """Base: `loss = crit(scores, labels)`, then `crit.backward() -> dscores`.

    `reduction`: "mean" (the batch's mean, gradients / N) or "sum" (the batch's sum, gradients not divided by
    N: a step's size then grows with the batch, as the published airbench's summed loss). Whatever the
    reduction, `per_sample(value, n)` is the mean over the batch's n samples: what a trainer logs, evaluates and
    guards against explosion, so a loss curve means the same under either."""

    def __init__(self, reduction: str = "mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {', '.join(REDUCTIONS)}, "
                             f"got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def per_sample(self, value: float, n: int) -> float:
        """The per-sample mean of a value this loss returned for a batch of n samples."""
        return value / n if self.reduction == "sum" and n else value

    def _reduce(self, values: np.ndarray):
        return values.sum() if self.reduction == "sum" else values.mean()

    def _extra(self) -> str:
        return ", reduction='sum'" if self.reduction == "sum" else ""

    def __call__(self, scores, labels) -> float:
        return self.forward(scores, labels)

    def _saved(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return self._cache

    def __repr__(self):
        return f"{type(self).__name__}()"


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, stable for any magnitude (shift by the row max)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxCrossEntropy(Loss):
    """mean_i −Σ_j q_ij log softmax(s_i)_j with targets q = (1 − ε)·onehot(y) + ε/C (PyTorch's
    `label_smoothing=ε`; ε = 0 is the plain −log softmax(s_i)[y_i]); dscores = (softmax(s) − q) / N.
    `reduction="sum"`: Σ_i instead of mean_i, dscores = softmax(s) − q."""

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"SoftmaxCrossEntropy: label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, scores, labels) -> float:
        labels = check_scores_labels("SoftmaxCrossEntropy", scores, labels)
        logp = log_softmax(scores)
        n = scores.shape[0]
        self._cache = (logp, labels)
        nll = -self._reduce(logp[np.arange(n), labels])
        if self.label_smoothing:
            eps = self.label_smoothing
            return float((1 - eps) * nll - eps * self._reduce(logp.mean(axis=1)))
        return float(nll)

    def backward(self) -> np.ndarray:
        logp, labels = self._saved()
        n, c = logp.shape
        d = np.exp(logp)
        eps = self.label_smoothing
        if eps:
            d -= logp.dtype.type(eps / c)
        d[np.arange(n), labels] -= logp.dtype.type(1 - eps)
        if self.reduction == "mean":
            d /= logp.dtype.type(n)
        return d

    def __repr__(self):
        args = [f"label_smoothing={self.label_smoothing}"] if self.label_smoothing else []
        if self.reduction == "sum":
            args.append("reduction='sum'")
        return f"SoftmaxCrossEntropy({', '.join(args)})"


class MulticlassSVM(Loss):
    """Weston–Watkins hinge loss: mean_i Σ_{j≠y_i} max(0, s_j − s_{y_i} + margin) (reduction="sum": Σ_i)."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = float(margin)

    def forward(self, scores, labels) -> float:
        labels = check_scores_labels("MulticlassSVM", scores, labels)
        n = scores.shape[0]
        rows = np.arange(n)
        margins = scores - scores[rows, labels][:, None] + scores.dtype.type(self.margin)
        margins[rows, labels] = 0
        active = margins > 0
        self._cache = (active, labels, scores.dtype)
        total = np.where(active, margins, 0).sum()
        return float(total if self.reduction == "sum" else total / max(n, 1))

    def backward(self) -> np.ndarray:
        active, labels, dtype = self._saved()
        n = active.shape[0]
        d = active.astype(dtype)
        d[np.arange(n), labels] = -active.sum(axis=1)
        return d if self.reduction == "sum" else d / max(n, 1)

    def __repr__(self):
        return f"MulticlassSVM(margin={self.margin}{self._extra()})"


NAMES = ("softmax", "svm")  # a run's `loss`


def named(name: str, label_smoothing: float = 0.0, reduction: str = "mean") -> Loss:
    """The loss a run names: 'softmax' (cross-entropy with `label_smoothing`) or 'svm' (the multiclass SVM of
    the notes' "ConvNet as a fixed feature extractor + linear classifier", margin 1; no label smoothing), over
    the batch by `reduction` (mean or sum)."""
    if name == "svm":
        if label_smoothing:
            raise ValueError(f"label_smoothing = {label_smoothing:g} is the cross-entropy's: the svm loss takes none")
        return MulticlassSVM(reduction=reduction)
    if name != "softmax":
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(NAMES)}")
    return SoftmaxCrossEntropy(label_smoothing, reduction)


def _weights(model: Module):
    """The parameters a weight penalty applies to: those named `weight` (not biases, not BN γ/β)."""
    for name, p in model.named_parameters():
        if name.rsplit(".", 1)[-1] == "weight" and p.requires_grad:
            yield p


class Penalty:
    """Weight penalty over every parameter named `weight`. `value(model)` is the term to add to the
    loss; `backward(model)` adds its gradient into each weight's `.grad`."""

    def __init__(self, reg: float):
        if reg < 0:
            raise ValueError(f"{type(self).__name__}: reg must be ≥ 0, got {reg}")
        self.reg = float(reg)

    def __call__(self, model: Module) -> float:
        return self.value(model)

    def __repr__(self):
        return f"{type(self).__name__.lower()}({self.reg})"


class L2(Penalty):
    """0.5 · reg · Σ W² (gradient reg · W, i.e. PyTorch's weight_decay=reg)."""

    def value(self, model):
        return 0.5 * self.reg * float(sum(np.vdot(p.data, p.data) for p in _weights(model)))

    def backward(self, model):
        if self.reg:
            for p in _weights(model):
                p.grad += p.data.dtype.type(self.reg) * p.data


class L1(Penalty):
    """reg · Σ |W| (gradient reg · sign(W))."""

    def value(self, model):
        return self.reg * float(sum(np.abs(p.data).sum() for p in _weights(model)))

    def backward(self, model):
        if self.reg:
            for p in _weights(model):
                p.grad += p.data.dtype.type(self.reg) * np.sign(p.data)


def l2(reg: float) -> L2:
    return L2(reg)


def l1(reg: float) -> L1:
    return L1(reg)
