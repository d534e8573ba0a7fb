"""LookaheadAveraging: every `every` optimizer steps, the network continues from an exponential average of
its weights and float buffers, whose decay rises over the run as decay^every · (t/T)^power (`optim.Lookahead`,
`optim.lookahead_decay`; airbench94's weight averaging: every 5 steps, decay 0.95, power 3).

T, the run's optimizer steps, is the trainer's epochs × batches per epoch (as the run's learning-rate
schedule counts them), taken when training starts. After step T, the last of the run, the network is set to
the average (`finish`, airbench's final `update(decay=1.0)`: the steps since the last update are dropped),
before that epoch's validation, history and checkpoint see it. A run that stops earlier — interrupted,
stopped early, diverged — keeps its live weights, which its checkpoint saves together with the average, so
a resume continues exactly where an uninterrupted run would be. Resuming with more epochs makes T larger,
as it does for the learning-rate schedule.

Data-parallel runs: every rank holds the same weights after each step and keeps its own average; rank 0's
averaged float buffers (BatchNorm statistics, which each rank's batches move apart) join the running
statistics the trainer shares at each epoch's end, so every rank saves and resumes the same state.
"""

from __future__ import annotations

from ...optim.lookahead import Lookahead, lookahead_decay
from .base import Callback


class LookaheadAveraging(Callback):
    """`LookaheadAveraging(every=5, decay=0.95, power=3.0, total_steps=None)`; `total_steps` None: the
    trainer's epochs × len(train loader)."""

    order = -30  # right after the step: before the EMA (-20), the history (-10) and the checkpoint see it

    def __init__(self, every: int = 5, decay: float = 0.95, power: float = 3.0, total_steps: int | None = None):
        if int(every) != every or every < 1:
            raise ValueError(f"LookaheadAveraging: every must be a whole number of steps >= 1, got {every!r}")
        if not 0 <= decay <= 1:
            raise ValueError(f"LookaheadAveraging: decay must be in [0, 1], got {decay!r}")
        if not power >= 0:
            raise ValueError(f"LookaheadAveraging: power must be >= 0, got {power!r}")
        if total_steps is not None and (int(total_steps) != total_steps or total_steps < 1):
            raise ValueError(f"LookaheadAveraging: total_steps must be a whole number >= 1, got {total_steps!r}")
        self.every, self.decay, self.power = int(every), float(decay), float(power)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.total: int | None = None  # the run's steps, fixed when training starts
        self.lookahead: Lookahead | None = None
        self._pending: dict | None = None

    def _total(self) -> int:
        if self.total_steps is not None:
            return self.total_steps
        train = self.trainer.train_data
        if not hasattr(train, "__len__"):
            raise TypeError("LookaheadAveraging: the training data has no length, so the run's steps are unknown: "
                            "give total_steps")
        return max(1, self.trainer.epochs * len(train))

    def on_train_begin(self) -> None:
        self.total = self._total()
        if self.lookahead is None:
            self.lookahead = Lookahead(self.trainer.model)  # the average starts as the network before training
        if self._pending is not None:
            state, self._pending = self._pending, None
            self.lookahead.load_state_dict(state)

    def on_batch_end(self, batch, logs) -> None:
        if self.trainer.diverged:  # the explosion guard stopped the run: keep a non-finite step out of the average
            return
        t = self.trainer.iteration  # optimizer steps taken, this one included
        if t % self.every == 0:
            self.lookahead.update(lookahead_decay(t, self.total, self.decay, self.every, self.power))
        if t == self.total:
            self.lookahead.finish()

    def on_epoch_end(self, epoch, logs) -> None:
        comm = self.trainer.comm
        if comm.size > 1:
            shared = comm.bcast(self._buffers() if comm.is_root else None)
            for name, a in shared.items():
                self.lookahead.average[name][...] = a

    def _buffers(self) -> dict:
        names = {name for name, _ in self.trainer.model.named_buffers()}
        return {name: a for name, a in self.lookahead.average.items() if name in names}

    def state_dict(self) -> dict:
        return {} if self.lookahead is None else self.lookahead.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self._pending = state  # applied when training starts (the average is made from the live model)

    def __repr__(self) -> str:
        return f"LookaheadAveraging(every={self.every}, decay={self.decay}, power={self.power})"
