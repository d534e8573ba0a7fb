"""Ensembles (the notes, "Model ensembles"): average the predicted class probabilities of several models;
snapshot ensembles (Huang et al. 2017: one model, cosine-restart cycles, a snapshot at the end of each);
and evaluation with Polyak / EMA-averaged weights (`st.optim.EMA`).

    ens = Ensemble([model_a, model_b, model_c])
    result = ens.evaluate(x_test, y_test)      # {'accuracy', 'loss', 'members': [accuracy, …], …}
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from ..nn.module import Module
from ..train import inference
from ..train.callbacks import Callback


def predict_proba(model: Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Softmax probabilities (N, classes) in float64, eval mode, no caches; the model's mode is restored."""
    return inference.probabilities(model, x, batch_size)


def scores(probs: np.ndarray, y: np.ndarray) -> dict:
    y = np.asarray(y)
    p_true = probs[np.arange(len(y)), y]
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == y)),
            "loss": float(-np.mean(np.log(np.maximum(p_true, 1e-300)))), "count": int(len(y))}


class Ensemble:
    """Averages the class probabilities of `models` (all mapping the same inputs to the same classes).
    `weights` (optional, one per model, normalised to sum 1) makes it a weighted average."""

    def __init__(self, models, weights=None):
        self.models = list(models)
        if not self.models:
            raise ValueError("Ensemble needs at least one model")
        if weights is None:
            weights = np.ones(len(self.models))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(self.models),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"Ensemble: weights must be {len(self.models)} non-negative numbers, got {weights!r}")
        self.weights = weights / weights.sum()

    def member_proba(self, x: np.ndarray, batch_size: int = 500) -> list[np.ndarray]:
        return [predict_proba(m, x, batch_size) for m in self.models]

    def predict_proba(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """(N, classes): Σ_k w_k · softmax(model_k(x))."""
        members = self.member_proba(x, batch_size)
        shapes = {p.shape for p in members}
        if len(shapes) != 1:
            raise ValueError(f"Ensemble: members disagree on the output shape: {sorted(shapes)}")
        return sum(w * p for w, p in zip(self.weights, members, strict=True))

    def predict(self, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def evaluate(self, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> dict:
        """The ensemble's accuracy and mean negative log-likelihood next to each member's:
        {'accuracy', 'loss', 'count', 'members': [accuracy…], 'member_losses': [loss…]}."""
        members = self.member_proba(x, batch_size)
        mixed = sum(w * p for w, p in zip(self.weights, members, strict=True))
        out = scores(mixed, y)
        each = [scores(p, y) for p in members]
        out["members"] = [e["accuracy"] for e in each]
        out["member_losses"] = [e["loss"] for e in each]
        return out

    def __len__(self) -> int:
        return len(self.models)

    def __repr__(self) -> str:
        return f"Ensemble({len(self.models)} models)"


# ----- snapshot ensembles -----------------------------------------------------------------------
def cycle_ends(period: int, mult: int = 1, total_steps: int | None = None, cycles: int | None = None) -> list[int]:
    """Iteration counts at which `CosineRestarts(lr, period, mult)` completes a cycle (the step after which
    the learning rate jumps back up): period, period + period·mult, … up to `total_steps` or `cycles` of them."""
    if period < 1 or mult < 1:
        raise ValueError(f"cycle_ends: period and mult must be ≥ 1, got {period}, {mult}")
    if total_steps is None and cycles is None:
        raise ValueError("cycle_ends: give total_steps or cycles")
    ends, t, length = [], 0, period
    while True:
        t += length
        if (total_steps is not None and t > total_steps) or (cycles is not None and len(ends) >= cycles):
            return ends
        ends.append(t)
        length *= mult


class SnapshotEnsemble(Callback):
    """Trainer callback: a copy of the weights whenever a cosine-restart cycle ends (pair it with
    `schedule=CosineRestarts(lr, period, mult)`). `snapshots` holds the state dicts; with `directory`, each
    is also written as `snapshot-<k>.safetensors`. `ensemble(model)` builds the snapshot ensemble.
    Resuming keeps the on-disk snapshots (the in-memory list restarts empty)."""

    order = 5

    def __init__(self, period: int, mult: int = 1, directory: str | os.PathLike | None = None, keep: int | None = None):
        self.period, self.mult = int(period), int(mult)
        cycle_ends(self.period, self.mult, cycles=1)  # validates
        self.directory = None if directory is None else Path(directory)
        self.keep = keep
        self.snapshots: list[dict[str, np.ndarray]] = []
        self.taken_at: list[int] = []

    def _is_cycle_end(self, iteration: int) -> bool:
        return iteration in cycle_ends(self.period, self.mult, total_steps=iteration)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        it = self.trainer.iteration
        if it in self.taken_at or not self._is_cycle_end(it):
            return
        state = self.trainer.model.state_dict()
        self.snapshots.append(state)
        self.taken_at.append(it)
        if self.directory is not None:
            from safetensors.numpy import save

            from ..atomic import write_atomic

            self.directory.mkdir(parents=True, exist_ok=True)
            # atomic: a full disk or a kill must not leave a torn snapshot for the ensemble to choke on later
            write_atomic(self.directory / f"snapshot-{len(self.taken_at)}.safetensors",
                         save({k: np.ascontiguousarray(v) for k, v in state.items()}))
        if self.keep is not None and len(self.snapshots) > self.keep:
            self.snapshots.pop(0)

    def ensemble(self, model: Module) -> Ensemble:
        return snapshot_ensemble(model, self.snapshots)

    def state_dict(self) -> dict:
        return {"taken_at": list(self.taken_at)}

    def load_state_dict(self, state: dict) -> None:
        self.taken_at = [int(t) for t in state.get("taken_at", [])]

    def __repr__(self) -> str:
        return f"SnapshotEnsemble(period={self.period}, mult={self.mult}, {len(self.snapshots)} snapshots)"


def snapshot_ensemble(model: Module, snapshots) -> Ensemble:
    """An Ensemble of copies of `model`, one per snapshot (state dicts or `.safetensors` paths)."""
    members = []
    for snap in snapshots:
        if not isinstance(snap, dict):
            from safetensors.numpy import load_file

            snap = load_file(str(snap))
        member = copy.deepcopy(model).clear_state()
        member.load_state_dict(snap)
        members.append(member)
    return Ensemble(members)


def average_weights(states) -> dict[str, np.ndarray]:
    """The element-wise mean of several state dicts of one architecture (floating arrays; integer buffers
    such as BatchNorm's batch counter are taken from the last). For weight averaging of snapshots along one
    run (SWA-style); BatchNorm statistics should be recomputed afterwards."""
    states = list(states)
    if not states:
        raise ValueError("average_weights: no state dicts")
    keys = set(states[0])
    for i, s in enumerate(states[1:], 1):
        if set(s) != keys:
            raise KeyError(f"average_weights: state {i} has keys {sorted(set(s) ^ keys)} that state 0 does not share")
    out = {}
    for k in states[0]:
        arrays = [np.asarray(s[k]) for s in states]
        if np.issubdtype(arrays[0].dtype, np.floating):
            out[k] = (sum(a.astype(np.float64) for a in arrays) / len(arrays)).astype(arrays[0].dtype)
        else:
            out[k] = arrays[-1].copy()
    return out


# ----- averaged weights -----------------------------------------------------------------------
def ema_model(model: Module, ema) -> Module:
    """A copy of `model` holding the averaged weights of `ema` (an `st.optim.EMA` tracking `model`);
    `model` keeps its training weights."""
    with ema.swapped():
        return copy.deepcopy(model).clear_state()


def evaluate_with_ema(model: Module, ema, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> dict:
    """Accuracy and loss of the EMA / Polyak weights next to the training weights:
    {'accuracy', 'loss', 'count', 'raw_accuracy', 'raw_loss'}."""
    averaged = scores(predict_proba(ema_model(model, ema), x, batch_size), y)
    raw = scores(predict_proba(model, x, batch_size), y)
    return {**averaged, "raw_accuracy": raw["accuracy"], "raw_loss": raw["loss"]}
