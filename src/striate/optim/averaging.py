"""Weight averaging: exponential moving average (EMA) and Polyak's running mean of the iterates.

Semantics follow torch.optim.swa_utils.AveragedModel: the first `update()` copies the weights, later
ones average — EMA: avg ← decay·avg + (1 − decay)·p;  running mean (decay=None): avg ← avg + (p − avg)/(n+1).
Until the first `update()` the average holds the weights as they were at construction.
Buffers (e.g. BatchNorm running statistics) are not averaged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np

from .groups import _collect


class EMA:
    """`EMA(model_or_params, decay=0.999)`; `decay=None` gives Polyak averaging (the running mean).

    Call `update()` after each optimizer step. Evaluate with the averaged weights inside
    `with ema.swapped(): ...` (or `swap()` twice); `copy_to()` installs them for good.
    """

    def __init__(self, model_or_params, decay: float | None = 0.999):
        if decay is not None and not (0 <= decay <= 1):
            raise ValueError(f"EMA: decay must be in [0, 1] or None (running mean), got {decay!r}")
        self.params = _collect(model_or_params)
        if not self.params:
            raise ValueError("EMA: got no trainable parameters to average")
        self.decay = decay
        self.num_updates = 0
        self.shadow = [p.data.copy() for p in self.params]
        self._swapped = False

    def update(self) -> None:
        """Fold the current weights into the average (in place, in each parameter's dtype)."""
        if self._swapped:
            raise RuntimeError("EMA.update: the averaged weights are swapped in; swap back first")
        n = self.num_updates
        for avg, p in zip(self.shadow, self.params, strict=True):
            if n == 0:
                avg[...] = p.data
                continue
            weight = (1 - self.decay) if self.decay is not None else 1 / (n + 1)
            diff = p.data - avg
            diff *= p.dtype.type(weight)
            avg += diff
        self.num_updates = n + 1

    def swap(self) -> None:
        """Exchange the model's weights and the averaged ones, in place (parameter objects are kept,
        so an optimizer holding them is undisturbed)."""
        for avg, p in zip(self.shadow, self.params, strict=True):
            tmp = p.data.copy()
            p.data[...] = avg
            avg[...] = tmp
        self._swapped = not self._swapped

    @contextlib.contextmanager
    def swapped(self):
        """`with ema.swapped(): evaluate(model)` — averaged weights inside, training weights after."""
        self.swap()
        try:
            yield self
        finally:
            self.swap()

    def copy_to(self) -> None:
        """Overwrite the model's weights with the averaged ones (e.g. at the end of training)."""
        if self._swapped:
            raise RuntimeError("EMA.copy_to: the averaged weights are swapped in already")
        for avg, p in zip(self.shadow, self.params, strict=True):
            p.data[...] = avg

    def state_dict(self) -> dict:
        """{'decay', 'num_updates', 'shadow': {index: array copy}}; all but 'shadow' is JSON-able."""
        if self._swapped:
            raise RuntimeError("EMA.state_dict: swap the training weights back in first")
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {i: a.copy() for i, a in enumerate(self.shadow)}}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The averaged weights as {'<index>': array copy} (safetensors-ready)."""
        return {str(i): a.copy() for i, a in enumerate(self.shadow)}

    def load_state_dict(self, state: Mapping) -> EMA:
        if self._swapped:
            raise RuntimeError("EMA.load_state_dict: swap the training weights back in first")
        shadow = {int(k): np.asarray(v) for k, v in state["shadow"].items()}
        if sorted(shadow) != list(range(len(self.params))):
            raise KeyError(f"EMA.load_state_dict: shadow indices {sorted(shadow)}, expected 0..{len(self.params) - 1}")
        for i, p in enumerate(self.params):
            if shadow[i].shape != p.shape:
                raise ValueError(
                    f"EMA.load_state_dict: shadow {i} has shape {shadow[i].shape}, parameter has {p.shape}"
                )
        for i, avg in enumerate(self.shadow):
            avg[...] = shadow[i]
        self.decay = state.get("decay", self.decay)
        self.num_updates = int(state["num_updates"])
        return self

    def __repr__(self) -> str:
        kind = "running mean" if self.decay is None else f"decay={self.decay}"
        return f"EMA({len(self.params)} parameters, {kind}, num_updates={self.num_updates})"
