"""Lookahead-style weight averaging copied back into the network (airbench's `LookaheadState`, after Zhang et
al. 2019, "Lookahead optimizer: k steps forward, 1 step back"): every k optimizer steps the exponential
average takes in the weights and the network *continues from the average*, unlike `EMA`, which averages
beside the training weights.

    avg ← decay·avg + (1 − decay)·w;   w ← avg        (`update(decay)`)
    w ← avg                                            (`finish()`: at the end of training)

Averaged: every floating-point entry of the model's state dict — trainable and frozen parameters and float
buffers (BatchNorm's running mean and variance); integer buffers (`num_batches_tracked`) are left alone. The
average starts as a copy of the network at construction. The decay of the update after optimizer step t of
T follows `lookahead_decay`: decay^k · (t/T)^power, 0 at the start (the average *is* the weights) rising to
decay^k at the end (airbench: decay 0.95, k = 5, power 3).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..nn.module import Module


def lookahead_decay(t: int, total: int, decay: float = 0.95, every: int = 5, power: float = 3.0) -> float:
    """The decay of the update after optimizer step `t` (1-based) of `total`: decay^every · (min(t, total)/total)^power
    (airbench94's `alpha_schedule`). A pure function of the step."""
    if total < 1:
        raise ValueError(f"lookahead_decay: total must be >= 1 step, got {total!r}")
    if t < 0:
        raise ValueError(f"lookahead_decay: step must be >= 0, got {t!r}")
    return float(decay) ** int(every) * (min(t, total) / total) ** float(power)


def _floating(model: Module) -> dict[str, np.ndarray]:
    """Live references to the model's floating-point parameters (frozen too) and buffers, by state-dict name."""
    live = {name: p.data for name, p in model.named_parameters()}
    live.update(model.named_buffers())
    return {name: a for name, a in live.items() if np.issubdtype(np.asarray(a).dtype, np.floating)}


class Lookahead:
    """`Lookahead(model)`: an average of the model's floating-point state, copied back by `update(decay)`.

    Call `update(decay)` every k optimizer steps (with `lookahead_decay(t, total, ...)`) and `finish()` after
    the last one. The arrays are looked up by name at each call, so a buffer a layer re-creates is still
    found; updates happen in place, in each entry's dtype, through one reused scratch array per dtype."""

    def __init__(self, model: Module):
        if not isinstance(model, Module):
            raise TypeError(f"Lookahead: expected a Module, got {type(model).__name__}")
        self.model = model
        self.average = {name: np.array(a, copy=True) for name, a in _floating(model).items()}
        if not self.average:
            raise ValueError("Lookahead: the model has no floating-point parameters or buffers to average")
        self.num_updates = 0
        self._scratch: dict[np.dtype, np.ndarray] = {}

    def _live(self, who: str) -> dict[str, np.ndarray]:
        live = _floating(self.model)
        if live.keys() != self.average.keys():
            changed = sorted(set(live) ^ set(self.average))
            raise KeyError(f"Lookahead.{who}: the model's floating-point entries changed since the average was "
                           f"made ({changed[:6]}{'…' if len(changed) > 6 else ''})")
        return live

    def _diff(self, avg: np.ndarray) -> np.ndarray:
        """A scratch view of `avg`'s shape and dtype (one flat array per dtype, grown to the largest entry)."""
        flat = self._scratch.get(avg.dtype)
        if flat is None or flat.size < avg.size:
            flat = self._scratch[avg.dtype] = np.empty(max(a.size for a in self.average.values()), avg.dtype)
        return flat[:avg.size].reshape(avg.shape)

    def update(self, decay: float) -> None:
        """avg ← decay·avg + (1 − decay)·w, then w ← avg, for every floating entry, in place.

        As torch.lerp computes it (so a PyTorch model averaged alike stays comparable): with w' = 1 − decay,
        avg + w'·(w − avg) when w' < 0.5, else w − (1 − w')·(w − avg) — decay 0 gives exactly the weights."""
        if not 0 <= decay <= 1:
            raise ValueError(f"Lookahead.update: decay must be in [0, 1], got {decay!r}")
        weight = 1.0 - float(decay)
        for name, w in self._live("update").items():
            avg = self.average[name]
            d = self._diff(avg)
            np.subtract(w, avg, out=d)
            if weight < 0.5:
                d *= avg.dtype.type(weight)
                avg += d
            else:
                d *= avg.dtype.type(1.0) - avg.dtype.type(weight)
                np.subtract(w, d, out=avg)
            w[...] = avg
        self.num_updates += 1

    def finish(self) -> None:
        """Set the network to the average (airbench's final `update(decay=1.0)`): the steps taken since the
        last `update` are dropped."""
        for name, w in self._live("finish").items():
            w[...] = self.average[name]

    def state_dict(self) -> dict:
        """{'num_updates', 'average': {name: array copy}}; all but 'average' is JSON-able."""
        return {"num_updates": self.num_updates, "average": self.state_arrays()}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The average as {state-dict name: array copy} (safetensors-ready)."""
        return {name: a.copy() for name, a in self.average.items()}

    def load_state_dict(self, state: Mapping) -> Lookahead:
        """Load an average saved by `state_dict`; every array is checked (names, shapes) before any is copied."""
        saved = state["average"]
        if set(saved) != set(self.average):
            missing, unexpected = sorted(set(self.average) - set(saved)), sorted(set(saved) - set(self.average))
            raise KeyError(f"Lookahead.load_state_dict: missing entries {missing}, unexpected entries {unexpected}")
        arrays = {name: np.asarray(saved[name]) for name in self.average}
        for name, a in arrays.items():
            if a.shape != self.average[name].shape:
                raise ValueError(f"Lookahead.load_state_dict: '{name}' has shape {a.shape}, the model's has "
                                 f"{self.average[name].shape}")
        for name, a in arrays.items():
            self.average[name][...] = a
        self.num_updates = int(state["num_updates"])
        return self

    def __repr__(self) -> str:
        size = sum(a.size for a in self.average.values())
        return f"Lookahead({len(self.average)} arrays, {size:,} values, num_updates={self.num_updates})"
