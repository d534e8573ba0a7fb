"""MaxNormConstraint: the notes' max-norm regularisation — after every update, each unit's incoming weight
vector is clipped to ‖w‖₂ ≤ c (`optim.MaxNorm`; biases are left alone)."""

from __future__ import annotations

from ...optim.constraints import MaxNorm
from .base import Callback


class MaxNormConstraint(Callback):
    order = -150  # straight after the update, before anything looks at the weights

    def __init__(self, c: float):
        self.constraint = MaxNorm(c)

    def on_train_begin(self) -> None:
        self.constraint.apply(self.trainer.model)  # the initial weights obey it too

    def on_batch_end(self, batch, logs) -> None:
        self.constraint.apply(self.trainer.model)

    def __repr__(self) -> str:
        return f"MaxNormConstraint(c={self.constraint.c:g})"
