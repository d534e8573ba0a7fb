"""WeightAveraging: Polyak averaging or an exponential moving average of the weights while training (the
notes: "evaluate with the averaged weights"). After every update the average takes in the new weights
(`optim.EMA`); at each epoch end the averaged weights are evaluated on the validation data as well
(`avg_val_loss`, `avg_val_accuracy`); the average is saved with every checkpoint (by parameter name), so a
resume continues it exactly and `striate eval --weights averaged` can use it."""

from __future__ import annotations

import numpy as np

from ...optim.averaging import EMA
from .base import Callback


class WeightAveraging(Callback):
    order = -20  # after the update, before the history and the checkpoint see the epoch's logs

    def __init__(self, decay: float | None = 0.999):
        self.decay = decay  # None: Polyak's running mean of the iterates
        self.ema: EMA | None = None
        self._pending: dict | None = None

    def _names(self) -> list[str]:
        return [n for n, p in self.trainer.model.named_parameters() if p.requires_grad]

    def on_train_begin(self) -> None:
        if self.ema is None:
            self.ema = EMA(self.trainer.model, self.decay)
        if self._pending is not None:
            state, self._pending = self._pending, None
            names = self._names()
            missing = sorted(set(names) - set(state["shadow"]))
            if missing:
                raise KeyError(f"WeightAveraging: the saved average lacks {missing}")
            self.ema.load_state_dict({"decay": state["decay"], "num_updates": state["num_updates"],
                                      "shadow": {i: state["shadow"][n] for i, n in enumerate(names)}})

    def on_batch_end(self, batch, logs) -> None:
        self.ema.update()

    def on_epoch_end(self, epoch, logs) -> None:
        val = self.trainer.val_data
        if val is None:
            return
        with self.ema.swapped():
            result = self.trainer.evaluate(val)
        logs["avg_val_loss"], logs["avg_val_accuracy"] = result["loss"], result["accuracy"]

    def averaged(self) -> dict[str, np.ndarray]:
        """The averaged weights by parameter name (copies)."""
        return {n: a.copy() for n, a in zip(self._names(), self.ema.shadow, strict=True)}

    def state_dict(self) -> dict:
        if self.ema is None:
            return {}
        return {"decay": self.decay, "num_updates": self.ema.num_updates, "shadow": self.averaged()}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self._pending = state  # applied when training starts (the EMA is made from the live model)

    def __repr__(self) -> str:
        return f"WeightAveraging({'Polyak' if self.decay is None else f'decay={self.decay}'})"
