"""Learning-rate schedules: pure functions of the iteration t = 0, 1, 2, … (Caffe's policy names).

Each schedule is a small object: `f(t) -> float`, a `repr`, and `to_config()` / `from_config()` (a
JSON dict with a 'name') so a checkpoint can rebuild it. `get(name, **kwargs)` is the one registry
from strings. `Scheduler(optimizer, schedule)` writes `optimizer.lr = schedule(t)` each iteration.

    constant   lr
    step       lr · γ^⌊t / step_size⌋                       (torch StepLR)
    multistep  lr · γ^(number of milestones ≤ t)             (torch MultiStepLR)
    exp        lr · γ^t                                      (torch ExponentialLR)
    inv        lr · (1 + k·t)^(−power); power 1 is 1/t decay (Caffe 'inv' with gamma = k)
    poly       lr · (1 − min(t, T)/T)^power                  (torch PolynomialLR, Caffe 'poly')
    cosine     min_lr + (lr − min_lr)(1 + cos(π·min(t, T)/T))/2  (torch CosineAnnealingLR, t ≤ T)
    cosine_restarts  SGDR: cosine over periods T, T·mult, T·mult², …  (torch CosineAnnealingWarmRestarts)
    warmup     inner(t) · (start + (1 − start)·t/W) for t < W, then inner(t)  (torch LinearLR chained)
    triangular lr · (start → 1 linearly over W = ⌊T·pct_start⌋ steps, then 1 → end at t = T)  (one-cycle)
"""

from __future__ import annotations

import bisect
import math
from numbers import Real


def _positive(owner: str, **values) -> None:
    for name, value in values.items():
        if not (isinstance(value, Real) and value > 0):
            raise ValueError(f"{owner}: {name} must be positive, got {value!r}")


def _nonneg(owner: str, **values) -> None:
    for name, value in values.items():
        if not (isinstance(value, Real) and value >= 0):
            raise ValueError(f"{owner}: {name} must be non-negative, got {value!r}")


def _check_t(t) -> int:
    if t < 0:
        raise ValueError(f"learning-rate schedule: step must be >= 0, got {t!r}")
    return t


class Schedule:
    """Base: subclasses set `name`, store their constructor arguments as attributes listed in `fields`,
    and implement `__call__(t)`."""

    name = ""
    fields: tuple[str, ...] = ()

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def to_config(self) -> dict:
        config = {"name": self.name}
        for f in self.fields:
            value = getattr(self, f)
            config[f] = value.to_config() if isinstance(value, Schedule) else (
                list(value) if isinstance(value, tuple) else value)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Schedule:
        return from_config(config)

    def __repr__(self) -> str:
        return f"{self.name}(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.fields) + ")"

    def __eq__(self, other) -> bool:
        return isinstance(other, Schedule) and self.to_config() == other.to_config()

    __hash__ = None


class Constant(Schedule):
    name, fields = "constant", ("lr",)

    def __init__(self, lr: float):
        _nonneg("constant", lr=lr)
        self.lr = lr

    def __call__(self, t):
        _check_t(t)
        return float(self.lr)


class Step(Schedule):
    name, fields = "step", ("lr", "step_size", "gamma")

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        _nonneg("step", lr=lr, gamma=gamma)
        _positive("step", step_size=step_size)
        self.lr, self.step_size, self.gamma = lr, step_size, gamma

    def __call__(self, t):
        return float(self.lr * self.gamma ** (_check_t(t) // self.step_size))


class MultiStep(Schedule):
    name, fields = "multistep", ("lr", "milestones", "gamma")

    def __init__(self, lr: float, milestones, gamma: float = 0.1):
        _nonneg("multistep", lr=lr, gamma=gamma)
        milestones = tuple(int(m) for m in milestones)
        if list(milestones) != sorted(milestones) or any(m < 0 for m in milestones):
            raise ValueError(f"multistep: milestones must be non-negative and increasing, got {milestones!r}")
        self.lr, self.milestones, self.gamma = lr, milestones, gamma

    def __call__(self, t):
        return float(self.lr * self.gamma ** bisect.bisect_right(self.milestones, _check_t(t)))


class Exp(Schedule):
    name, fields = "exp", ("lr", "gamma")

    def __init__(self, lr: float, gamma: float):
        _nonneg("exp", lr=lr)
        _positive("exp", gamma=gamma)
        self.lr, self.gamma = lr, gamma

    def __call__(self, t):
        return float(self.lr * self.gamma ** _check_t(t))


class Inv(Schedule):
    name, fields = "inv", ("lr", "k", "power")

    def __init__(self, lr: float, k: float, power: float = 1.0):
        _nonneg("inv", lr=lr, k=k, power=power)
        self.lr, self.k, self.power = lr, k, power

    def __call__(self, t):
        return float(self.lr * (1 + self.k * _check_t(t)) ** (-self.power))


class Poly(Schedule):
    name, fields = "poly", ("lr", "max_steps", "power")

    def __init__(self, lr: float, max_steps: int, power: float = 1.0):
        _nonneg("poly", lr=lr, power=power)
        _positive("poly", max_steps=max_steps)
        self.lr, self.max_steps, self.power = lr, max_steps, power

    def __call__(self, t):
        t = min(_check_t(t), self.max_steps)
        return float(self.lr * (1 - t / self.max_steps) ** self.power)


def _cosine(lr: float, min_lr: float, progress: float) -> float:
    return float(min_lr + (lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2)


class Cosine(Schedule):
    """Half a cosine from lr (t = 0) to min_lr (t = max_steps), then min_lr."""

    name, fields = "cosine", ("lr", "max_steps", "min_lr")

    def __init__(self, lr: float, max_steps: int, min_lr: float = 0.0):
        _nonneg("cosine", lr=lr, min_lr=min_lr)
        _positive("cosine", max_steps=max_steps)
        self.lr, self.max_steps, self.min_lr = lr, max_steps, min_lr

    def __call__(self, t):
        return _cosine(self.lr, self.min_lr, min(_check_t(t), self.max_steps) / self.max_steps)


class CosineRestarts(Schedule):
    """SGDR (Loshchilov & Hutter 2017): cosine from lr to min_lr over `period` steps, then restart
    with the period multiplied by `mult` (a positive integer, as torch requires)."""

    name, fields = "cosine_restarts", ("lr", "period", "mult", "min_lr")

    def __init__(self, lr: float, period: int, mult: int = 1, min_lr: float = 0.0):
        _nonneg("cosine_restarts", lr=lr, min_lr=min_lr)
        _positive("cosine_restarts", period=period, mult=mult)
        if int(mult) != mult:
            raise ValueError(f"cosine_restarts: mult must be a positive integer, got {mult!r}")
        self.lr, self.period, self.mult, self.min_lr = lr, period, int(mult), min_lr

    def __call__(self, t):
        t = _check_t(t)
        if self.mult == 1:
            t_cur, t_i = t % self.period, self.period
        else:
            t_cur, t_i = t, self.period
            while t_cur >= t_i:
                t_cur -= t_i
                t_i *= self.mult
        return _cosine(self.lr, self.min_lr, t_cur / t_i)


class Warmup(Schedule):
    """Linear warm-up in front of any schedule: inner(t) · (start + (1 − start)·t / warmup_steps) for
    t < warmup_steps, inner(t) afterwards. `start` is the fraction of the inner value at t = 0 (0 = from
    zero). The inner schedule is not shifted (as torch's ChainedScheduler(LinearLR, …) and Goyal et al.)."""

    name, fields = "warmup", ("schedule", "warmup_steps", "start")

    def __init__(self, schedule: Schedule, warmup_steps: int, start: float = 0.0):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"warmup: expected a schedule to put the warm-up in front of, got {schedule!r}")
        _nonneg("warmup", warmup_steps=warmup_steps)
        if not (isinstance(start, Real) and 0 <= start <= 1):
            raise ValueError(f"warmup: start must be a fraction in [0, 1], got {start!r}")
        self.schedule, self.warmup_steps, self.start = schedule, warmup_steps, start

    def __call__(self, t):
        value = self.schedule(_check_t(t))
        if t < self.warmup_steps:
            value *= self.start + (1 - self.start) * t / self.warmup_steps
        return float(value)


class Triangular(Schedule):
    """A one-cycle ("triangular") schedule, the published airbench's: with W = int(total_steps·pct_start),
    lr · (start·(1 − t/W) + t/W) for t < W (start_factor at t = 0, 1 at t = W), then
    lr · ((1 − u) + end·u) with u = (t − W)/(total_steps − W) (end_factor at t = total_steps; beyond it, the
    line goes on: a run's last step is total_steps − 1). Neither `poly` nor `warmup` can express it: they start
    or end at 0."""

    name, fields = "triangular", ("lr", "total_steps", "pct_start", "start_factor", "end_factor")

    def __init__(self, lr: float, total_steps: int, pct_start: float = 0.23, start_factor: float = 0.2,
                 end_factor: float = 0.07):
        _nonneg("triangular", lr=lr, start_factor=start_factor, end_factor=end_factor)
        _positive("triangular", total_steps=total_steps)
        if not (isinstance(pct_start, Real) and 0 <= pct_start < 1):
            raise ValueError(f"triangular: pct_start must be a fraction in [0, 1), got {pct_start!r}")
        self.lr, self.total_steps, self.pct_start = lr, total_steps, pct_start
        self.start_factor, self.end_factor = start_factor, end_factor

    def __call__(self, t):
        w = int(self.total_steps * self.pct_start)
        if _check_t(t) < w:
            frac = t / w
            factor = self.start_factor * (1 - frac) + frac
        else:
            frac = (t - w) / (self.total_steps - w)
            factor = (1 - frac) + self.end_factor * frac
        return float(self.lr * factor)


constant, step, multistep, exp, inv = Constant, Step, MultiStep, Exp, Inv
poly, cosine, cosine_restarts, warmup, triangular = Poly, Cosine, CosineRestarts, Warmup, Triangular

SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Step, MultiStep, Exp, Inv, Poly, Cosine, CosineRestarts, Warmup, Triangular)
}


def get(name: str, **kwargs) -> Schedule:
    """Build a schedule from its policy name, e.g. `get('step', lr=0.1, step_size=30, gamma=0.1)`.
    For 'warmup', `schedule` may itself be a config dict."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; choose from {sorted(SCHEDULES)}")
    if name == "warmup" and isinstance(kwargs.get("schedule"), dict):
        kwargs["schedule"] = from_config(kwargs["schedule"])
    try:
        return SCHEDULES[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"learning-rate schedule {name!r}: {exc}") from None


def from_config(config: dict) -> Schedule:
    """Inverse of `Schedule.to_config()`."""
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"schedule config must be a dict with a 'name', got {config!r}")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    return get(config["name"], **kwargs)


def scale_lr_for_batch(lr: float, base_batch: int, batch: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): a batch N× larger gets an N× larger learning rate."""
    _positive("scale_lr_for_batch", base_batch=base_batch, batch=batch)
    return float(lr * batch / base_batch)


class Scheduler:
    """Drives `optimizer.lr` from a schedule. Sets `lr = schedule(0)` at construction; call `step()`
    after each `optimizer.step()` to advance t and set `lr = schedule(t)` (torch's LRScheduler order)."""

    def __init__(self, optimizer, schedule: Schedule, last_step: int = 0):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"Scheduler: {type(optimizer).__name__} has no 'lr' attribute to schedule")
        if not callable(schedule):
            raise TypeError(f"Scheduler: schedule must be callable, got {schedule!r}")
        self.optimizer, self.schedule, self.t = optimizer, schedule, int(last_step)
        self._apply()

    def _apply(self) -> None:
        self.optimizer.lr = self.schedule(self.t)

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def step(self) -> float:
        self.t += 1
        self._apply()
        return self.optimizer.lr

    def state_dict(self) -> dict:
        """JSON-able: the step and, for Schedule objects, the schedule's config."""
        state = {"t": self.t}
        if isinstance(self.schedule, Schedule):
            state["schedule"] = self.schedule.to_config()
        return state

    def load_state_dict(self, state: dict) -> Scheduler:
        if "schedule" in state:
            self.schedule = from_config(state["schedule"])
        self.t = int(state["t"])
        self._apply()
        return self

    def __repr__(self) -> str:
        return f"Scheduler(t={self.t}, {self.schedule!r})"
