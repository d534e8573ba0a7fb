"""What a doctor's check is given: the `Context` — the model, the loss, the data split into training and
validation, your settings (`Settings`), the thresholds, and the measurements several checks share, each made
once, on first use, and timed: the data verdicts, the statistics of one pass at initialisation, the
learning-rate range test and the short training run at your settings (`ShortRun`, the trained copy).

A check reads what it needs and never changes the model: every training works on a copy. A cheap context
for a test is `Context(model, loss, x, y)` (validation: the same data)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..nn.losses import SoftmaxCrossEntropy
from ..nn.module import Module
from .inputs import OptimizerSpec, as_arrays, fresh_copy, make_optimizer, scores_eval
from .thresholds import THRESHOLDS, Thresholds
from .verdict import Verdict


@dataclass(frozen=True)
class Settings:
    """The settings you intend to train with (optimizer: a name or `f(model, lr)`) and the doctor's budget:
    `iterations` of the short run, the tiny subset and its iterations, the range test's iterations, the seed."""

    optimizer: OptimizerSpec = "momentum"
    lr: float = 0.01
    batch_size: int = 64
    penalty: object = None
    iterations: int = 300
    overfit_samples: int = 32
    overfit_iters: int = 300
    lr_finder_iters: int = 120
    seed: int = 0

    def to_dict(self) -> dict:
        return {"optimizer": self.optimizer if isinstance(self.optimizer, str) else "custom", "lr": self.lr,
                "batch_size": self.batch_size, "iterations": self.iterations,
                "penalty": repr(self.penalty) if self.penalty is not None else None}


@dataclass
class ShortRun:
    """The short run at your settings: its trainer, Diagnostics and History callbacks, and the trained copy."""

    trainer: object
    diagnostics: object
    history: object
    model: Module

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.history.iterations]

    @property
    def diverged(self) -> bool:
        return bool(self.trainer.diverged)


class _Minibatches:
    """Shuffled minibatches of (x, y) without replacement, a new permutation per pass."""

    def __init__(self, x, y, batch_size, rng):
        self.x, self.y, self.batch_size, self.rng = x, y, batch_size, rng

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        perm = self.rng.permutation(len(self.x))
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


@dataclass
class Context:
    """model, loss; x, y: the training part of the data; val: (x, y) for validation (`separate`: given by
    you, else held out of the data); num_classes; settings; thresholds; trained: the short run, set while a
    check judges the trained copy (None at initialisation); earlier: the verdicts of the pass at
    initialisation by check name (a check judging the trained copy compares with its own); diagnostics: what
    the checks measured for the report; whole: the data before validation was held out of it."""

    model: Module
    loss: object = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    val: tuple | None = None
    num_classes: int | None = None
    settings: Settings = field(default_factory=Settings)
    thresholds: Thresholds = THRESHOLDS
    separate: bool = False
    whole: tuple | None = None
    trained: ShortRun | None = None
    earlier: dict[str, Verdict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)  # measurements for the report (curves, filters, ...)
    say: Callable[[str], None] = field(default=lambda s: None)
    _memo: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.loss = self.loss if self.loss is not None else SoftmaxCrossEntropy()
        if self.val is None and self.x is not None:
            self.val = (self.x, self.y)
        if self.num_classes is None and self.x is not None:
            with np.errstate(all="ignore"):
                self.num_classes = int(scores_eval(self.model, self.x[:2]).shape[1])

    @classmethod
    def prepare(cls, model: Module, loss, data, val, settings: Settings, **kw) -> Context:
        """The context of a doctor's run: `data` as arrays, 20 % of it held out for validation unless `val`
        is given."""
        x, y = as_arrays(data)
        if val is None:
            perm = np.random.default_rng(settings.seed).permutation(len(x))
            n_val = max(1, len(x) // 5)
            return cls(model, loss, x[perm[n_val:]], y[perm[n_val:]], (x[perm[:n_val]], y[perm[:n_val]]),
                       settings=settings, whole=(x, y), **kw)
        return cls(model, loss, x, y, as_arrays(val), settings=settings, separate=True, **kw)

    # ----- shared measurements, made once ----------------------------------------------------------
    def shared(self, stage: str, make: Callable):
        """`make()`'s result, computed on first use and timed as `stage`."""
        if stage not in self._memo:
            self.say(f"doctor: {stage} ...")
            t = time.perf_counter()
            with np.errstate(all="ignore"):
                self._memo[stage] = make()
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - t, 3)
        return self._memo[stage]

    def made(self, stage: str):
        """The shared measurement `stage` if some check made it, else None (never computed here)."""
        return self._memo.get(stage)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    @property
    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """Up to 512 training samples: what the checks of one pass read."""
        return self.x[:512], self.y[:512]

    def data_verdicts(self) -> list[Verdict]:
        """`check_inputs` on the data (both sets when validation was given separately)."""
        from .data_check import check_inputs

        def make():
            if self.separate:
                return check_inputs(self.x, self.y, self.num_classes, val=self.val)
            return check_inputs(*(self.whole or (self.x, self.y)), self.num_classes)

        return self.shared("inputs", make)

    def statistics(self, model: Module | None = None, n: int = 512) -> tuple[list, dict]:
        """Per-layer statistics of one training-mode pass of `model` (default: yours) over `n` samples."""
        from .stats import layer_statistics

        model = model if model is not None else self.model
        stage = "statistics at init" if model is self.model else "statistics after training"
        return self.shared(f"{stage} ({n})", lambda: layer_statistics(model, self.x[:n], self.loss, self.y[:n]))

    def lr_finder(self):
        """The learning-rate range test on a copy (`lr_finder.lr_range_test`)."""
        from .lr_finder import lr_range_test

        s = self.settings
        return self.shared("lr range test", lambda: lr_range_test(
            self.model, self.loss, self.x, self.y, optimizer=s.optimizer, iters=s.lr_finder_iters,
            batch_size=s.batch_size, rng=np.random.default_rng(s.seed + 1)))

    def short_run(self) -> ShortRun:
        """A copy trained for about `settings.iterations` steps with the diagnostic callbacks."""
        return self.shared("short run", self._train)

    def _train(self) -> ShortRun:
        from ..train.callbacks import ExplosionGuard, History
        from ..train.trainer import Trainer
        from .callbacks import Diagnostics

        s = self.settings
        m = fresh_copy(self.model)
        batches = _Minibatches(self.x, self.y, s.batch_size, np.random.default_rng(s.seed + 2))
        epochs = max(2, int(math.ceil(s.iterations / len(batches))))
        history = History(max_iterations=None)  # a short run; the doctor's metrics.jsonl is written from it
        diag = Diagnostics(None, stats_interval=25, ratio_interval=1)
        trainer = Trainer(m, self.loss, make_optimizer(s.optimizer, m, s.lr), penalty=s.penalty,
                          callbacks=[ExplosionGuard(3.0), history, diag], progress=False)
        trainer.fit(batches, self.val, epochs=epochs)
        return ShortRun(trainer, diag, history, m)
