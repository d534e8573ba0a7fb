"""Monitor: a metric watched for improvement, and which way is better (Keras's `_set_monitor_op`).

The direction is inferred from the metric's name (a `val_` prefix aside) when `mode="auto"`: accuracy-like
names are maximised, loss- and error-like names minimised, and a name that says neither is refused — a
wrong guess would silently keep the worst epoch. `min_delta` is absolute, as in Keras and PyTorch's
`threshold_mode="abs"`: a value improves only if it beats the best by more than `min_delta`."""

from __future__ import annotations

import re

MODES = ("auto", "max", "min")
HIGHER_IS_BETTER = frozenset({"accuracy", "acc", "auc", "precision", "recall", "f1", "fmeasure",
                              "iou", "map", "r2", "kappa", "score"})
LOWER_IS_BETTER = frozenset({"loss", "error", "err", "mse", "mae", "rmse", "nll", "perplexity", "ppl", "entropy",
                             "distance"})


TOP_K = re.compile(r"top(\d+|k)?$")  # a bare top-k metric is an accuracy; 'top1_err' is an error


def infer_mode(name: str) -> str | None:
    """'max' or 'min' from the words of a metric's name ('val_top5_accuracy' → max, 'val_loss' → min);
    None when its words say neither or both."""
    words = {w for w in re.split(r"[_\W]+", name.lower().removeprefix("val_")) if w}
    up, down = bool(words & HIGHER_IS_BETTER), bool(words & LOWER_IS_BETTER)
    if not up and not down:
        up = any(TOP_K.match(w) for w in words)
    return "max" if up and not down else "min" if down and not up else None


class Monitor:
    """The best value of the metric `name` so far and the (0-based) epoch it came from."""

    def __init__(self, name: str, mode: str = "auto", min_delta: float = 0.0, owner: str = "Monitor"):
        if mode not in MODES:
            raise ValueError(f"{owner}: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
        if mode == "auto":
            mode = infer_mode(name)
            if mode is None:
                raise ValueError(f"{owner}: cannot tell whether {name!r} should be maximised or minimised from "
                                 "its name; pass mode='max' or mode='min'")
        if min_delta < 0:
            raise ValueError(f"{owner}: min_delta must be ≥ 0, got {min_delta!r}")
        self.name, self.mode, self.min_delta = name, mode, float(min_delta)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improved(self, value: float) -> bool:
        """Whether `value` beats the best so far by more than `min_delta` (the first value always does)."""
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float, epoch: int) -> bool:
        """Record `value` as the best if it improved; returns whether it did."""
        if not self.improved(value):
            return False
        self.best, self.best_epoch = float(value), epoch
        return True

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")

    def __repr__(self):
        return f"Monitor({self.name!r}, mode={self.mode!r}, min_delta={self.min_delta})"
