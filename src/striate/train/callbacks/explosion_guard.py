"""ExplosionGuard: stop a diverging run (a non-finite loss at once, a smoothed loss past the notes' threshold
within a few steps) and never checkpoint an exploded state."""

from __future__ import annotations

import math
from collections import deque

from .base import Callback


class ExplosionGuard(Callback):
    """The notes' rule, "if the cost is ever > 3× the original cost, break out early":

    - a non-finite loss stops training at once;
    - otherwise the *cost* is the median of the last `window` steps' losses (the lower middle one of an even
      count), judged once the window is full: training stops when it exceeds `factor` × the reference, the
      larger of the first loss and `floor`.

    The defaults (`window=1`, `floor=0`) take the rule literally, every step alone, as a probe wants it (the
    doctor's short run stops at its first exploded step). A training run judges on evidence that it is lost
    instead (`for_classes`): the median of 5 steps, so one step's spike (a two-class run's second step often
    reaches 6× its first loss, and recovers) moves the cost not at all while a loss that stays above the
    threshold stops the run within ⌈window / 2⌉ = 3 steps (within 5 of its start); and a reference of at
    least max(ln C, 1 nat), so a run that starts low (a fine-tune, or two classes, whose first loss
    ln 2 ≈ 0.69 would leave a margin of 1.4) stops only above `factor` nats: a loss that puts on average a
    probability of e^-3 ≈ 5 % on the true class at the default factor 3, far below any chance level up to 20
    classes.

    The loss of a step is measured before its update, so the update of an epoch's last step would reach the
    epoch's checkpoint unchecked. Before every checkpoint (epoch end, interrupt) the state itself is
    checked: the epoch's validation loss (a mean over the validation set), or without validation data one
    eval-mode forward pass of the last batch, must be finite and at most `factor` × the reference. Otherwise
    the guard sets `trainer.diverged` (so checkpointing saves nothing and the run ends with status
    "diverged") and `trainer.stop_reason`, a message naming epoch, step, the loss, the cost and the
    reference, and lr, and suggesting a lower learning rate (Keras `TerminateOnNaN`, Chainer
    `FailOnNonNumber`). The check reads no random numbers and changes no state, so it never disturbs an exact
    resume; the window is saved with the checkpoint, so a resumed run judges exactly as a straight one."""

    order = -100
    RUN_WINDOW = 5  # steps: a training run's cost is their median
    MIN_REFERENCE = 1.0  # nats: the floor of a training run's reference (see above)

    def __init__(self, factor: float = 3.0, floor: float = 0.0, window: int = 1):
        if not factor > 1:
            raise ValueError(f"ExplosionGuard: factor must be > 1, got {factor!r}")
        if int(window) != window or window < 1:
            raise ValueError(f"ExplosionGuard: window must be a whole number of steps ≥ 1, got {window!r}")
        self.factor, self.floor, self.window = float(factor), float(floor), int(window)
        self.initial_loss: float | None = None
        self.recent: deque[float] = deque(maxlen=self.window)  # the last `window` finite step losses

    @classmethod
    def for_classes(cls, num_classes: int, factor: float = 3.0) -> ExplosionGuard:
        """The guard of a training run on `num_classes` classes: the median of `RUN_WINDOW` steps against
        factor × max(first loss, ln C, `MIN_REFERENCE`)."""
        chance = math.log(num_classes) if num_classes > 1 else 0.0
        return cls(factor, floor=max(chance, cls.MIN_REFERENCE), window=cls.RUN_WINDOW)

    @property
    def reference(self) -> float | None:
        """The loss the cost is compared with: max(first loss, floor); None before the first step."""
        if self.initial_loss is None:
            return None
        return max(self.initial_loss, self.floor)

    def smoothed(self) -> float | None:
        """The cost: the median of the last `window` step losses, None until the window is full."""
        if len(self.recent) < self.window:
            return None
        return sorted(self.recent)[(self.window - 1) // 2]

    def _reference_text(self) -> str:
        if not self.floor:
            return f"the initial loss {self.initial_loss:.4g}"
        return f"the reference {self.reference:.4g} = max(initial loss {self.initial_loss:.4g}, floor {self.floor:.4g})"

    def _exploded(self, value: float) -> str | None:
        """Why the cost `value` counts as exploded, or None."""
        if not math.isfinite(value):
            return "is not finite"
        reference = self.reference
        if reference is None or value <= self.factor * reference:
            return None
        return f"exceeds {self.factor:g}× {self._reference_text()}"

    def _stop(self, where: str, what: str, why: str, lr) -> None:
        lr_text = "n/a" if lr is None else f"{lr:.3g}"
        hint = "" if lr is None else f" (e.g. --lr {lr / 10:.1g})"
        t = self.trainer
        t.diverged = True
        t.stop_training = True
        t.stop_reason = f"training diverged at {where}: {what} {why}, lr {lr_text}. Try a lower learning rate{hint}."

    def on_batch_end(self, batch, logs):
        loss = float(logs["loss"])
        t = self.trainer
        where = f"epoch {t.epoch + 1}, step {batch + 1} (iteration {logs['iteration']})"
        if not math.isfinite(loss):
            self._stop(where, f"loss {loss:.4g}", "is not finite", logs.get("lr"))
            return
        if self.initial_loss is None:
            self.initial_loss = loss
        self.recent.append(loss)
        cost = self.smoothed()
        why = None if cost is None else self._exploded(cost)
        if why is not None:
            what = f"loss {loss:.4g}, median of the last {self.window} steps {cost:.4g},"
            self._stop(where, what if self.window > 1 else f"loss {loss:.4g}", why, logs.get("lr"))

    def check_state(self, logs: dict) -> None:
        """Refuse the state about to be checkpointed if its validation loss (else the last batch's loss after
        the last update) has exploded: one measurement of the state about to be saved, so it is judged alone."""
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
                       f"{what} {loss:.4g}", why, t.lr())

    def on_epoch_end(self, epoch, logs):
        self.check_state(logs)

    def on_interrupt(self, logs):
        if self.trainer.batch:  # mid-epoch: a checkpoint follows; at an epoch end the state was checked
            self.check_state({k: v for k, v in logs.items() if k != "val_loss"})

    def state_dict(self):
        return {"initial_loss": self.initial_loss, "recent": list(self.recent)}

    def load_state_dict(self, state):
        self.initial_loss = state.get("initial_loss")
        self.recent = deque((float(v) for v in state.get("recent", ())), maxlen=self.window)

    def __repr__(self):
        return f"ExplosionGuard(factor={self.factor:g}, floor={self.floor:g}, window={self.window})"
