"""ExplosionGuard: stop a diverging run within one step and never checkpoint an exploded state."""

from __future__ import annotations

import math

from .base import Callback


class ExplosionGuard(Callback):
    """Stop within one step when the training loss is not finite or exceeds `factor` × the first loss, and
    never let an exploded state be checkpointed.

    The loss of a step is measured before its update, so the update of an epoch's last step would reach the
    epoch's checkpoint unchecked. Before every checkpoint (epoch end, interrupt) the state itself is
    checked: the epoch's validation loss, or without validation data one eval-mode forward pass of the last
    batch, must be finite and at most `factor` × the initial loss. Otherwise the guard sets
    `trainer.diverged` (so checkpointing saves nothing and the run ends with status "diverged") and
    `trainer.stop_reason`, a message naming epoch, step, loss and lr and suggesting a lower learning rate
    (Keras `TerminateOnNaN`, Chainer `FailOnNonNumber`). The check reads no random numbers and changes no
    state, so it never disturbs an exact resume.

    `floor`: the smallest reference loss (e.g. the chance loss ln C): a model that starts well trained (a
    fine-tune) has a tiny first loss, and its ordinary ups and downs must not read as an explosion."""

    order = -100

    def __init__(self, factor: float = 3.0, floor: float = 0.0):
        if not factor > 1:
            raise ValueError(f"ExplosionGuard: factor must be > 1, got {factor!r}")
        self.factor, self.floor = float(factor), float(floor)
        self.initial_loss: float | None = None

    def _exploded(self, loss: float) -> str | None:
        """Why `loss` counts as exploded, or None."""
        if not math.isfinite(loss):
            return "is not finite"
        if self.initial_loss is None:
            return None
        reference = max(self.initial_loss, self.floor)
        if loss > self.factor * reference:
            what = "the initial loss" if reference == self.initial_loss else "the chance-level loss"
            return f"exceeds {self.factor:g}× {what} {reference:.4g}"
        return None

    def _stop(self, where: str, what: str, loss: float, why: str, lr) -> None:
        lr_text = "n/a" if lr is None else f"{lr:.3g}"
        hint = "" if lr is None else f" (e.g. --lr {lr / 10:.1g})"
        t = self.trainer
        t.diverged = True
        t.stop_training = True
        t.stop_reason = (f"training diverged at {where}: {what} {loss:.4g} {why}, lr {lr_text}. "
                         f"Try a lower learning rate{hint}.")

    def on_batch_end(self, batch, logs):
        loss = logs["loss"]
        if self.initial_loss is None and math.isfinite(loss):
            self.initial_loss = loss
            return
        why = self._exploded(loss)
        if why is not None:
            t = self.trainer
            self._stop(f"epoch {t.epoch + 1}, step {batch + 1} (iteration {logs['iteration']})", "loss", loss, why,
                       logs.get("lr"))

    def check_state(self, logs: dict) -> None:
        """Refuse the state about to be checkpointed if its validation loss (else the last batch's loss after
        the last update) has exploded."""
        t = self.trainer
        if t.diverged:
            return
        if logs.get("val_loss") is not None:
            loss, what = float(logs["val_loss"]), "validation loss"
        else:
            batch = t.last_batch
            if batch is None:
                return
            loss, what = t.evaluate(batch)["loss"], "loss of the last batch after its update"
        why = self._exploded(loss)
        if why is not None:
            self._stop(f"the end of epoch {t.epoch}" if not t.batch else f"epoch {t.epoch + 1}, step {t.batch}",
                       what, loss, why, t.lr())

    def on_epoch_end(self, epoch, logs):
        self.check_state(logs)

    def on_interrupt(self, logs):
        if self.trainer.batch:  # mid-epoch: a checkpoint follows; at an epoch end the state was checked
            self.check_state({k: v for k, v in logs.items() if k != "val_loss"})

    def state_dict(self):
        return {"initial_loss": self.initial_loss}

    def load_state_dict(self, state):
        self.initial_loss = state.get("initial_loss")

    def __repr__(self):
        return f"ExplosionGuard(factor={self.factor:g})"
