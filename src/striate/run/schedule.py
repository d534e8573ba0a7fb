"""A run's learning-rate schedule from its configuration: one builder per `schedule` name (this table's keys
are the option's choices, and its descriptions the option's help), with the snapshot ensemble's restarts and
the warm-up on top. The schedules themselves are `optim.schedules`, Caffe's policy names."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..optim import schedules as s


class Policy(NamedTuple):
    help: str  # what the option's help says of it ("" : its name says it all)
    build: Callable  # (config, lr, total iterations, steps per epoch) -> schedule


def _step(config: dict, lr: float, total: int, steps_per_epoch: int):
    size = config["step_size"] or config["epochs"] / 3
    return s.step(lr, max(1, int(round(size * steps_per_epoch))), config["gamma"])


def _multistep(config: dict, lr: float, total: int, steps_per_epoch: int):
    epochs = config["milestones"] or [config["epochs"] / 2, 3 * config["epochs"] / 4]
    return s.multistep(lr, sorted({max(1, int(round(e * steps_per_epoch))) for e in epochs}), config["gamma"])


POLICIES: dict[str, Policy] = {
    "constant": Policy("", lambda config, lr, total, steps: s.constant(lr)),
    "cosine": Policy("to 0", lambda config, lr, total, steps: s.cosine(lr, total)),
    "step": Policy("Caffe's: × gamma every step_size epochs", _step),
    "multistep": Policy("× gamma at each of the milestones", _multistep),
    "exp": Policy("a smooth exponential decay, × gamma over the whole run",
                  lambda config, lr, total, steps: s.exp(lr, config["gamma"] ** (1 / total))),
    "poly": Policy("linear to 0", lambda config, lr, total, steps: s.poly(lr, total, 1.0)),
    "triangular": Policy("one cycle: linear from start_factor × lr up to lr at pct_start of the run, then down to "
                         "end_factor × lr",
                         lambda config, lr, total, steps: s.triangular(lr, total, config["pct_start"],
                                                                       config["start_factor"], config["end_factor"])),
}
NAMES = tuple(POLICIES)


def describe() -> str:
    """The `schedule` option's help: each name and what it does."""
    return "learning-rate schedule over the whole run: " + "; ".join(
        f"{name} ({p.help})" if p.help else name for name, p in POLICIES.items())


def base_lr(config: dict) -> float:
    """--lr, or with lr_reference_batch the linear scaling rule (Goyal et al.): lr × batch_size / reference."""
    ref = config.get("lr_reference_batch", 0)
    return s.scale_lr_for_batch(config["lr"], ref, config["batch_size"]) if ref else config["lr"]


def make_schedule(config: dict, steps_per_epoch: int):
    """The configuration's learning-rate schedule over the whole run, per iteration."""
    lr, total = base_lr(config), max(1, config["epochs"] * steps_per_epoch)
    if config.get("snapshots"):  # a snapshot ensemble: cosine with K restarts, one snapshot per cycle
        sched = s.cosine_restarts(lr, max(1, total // config["snapshots"]))
    elif config["schedule"] in POLICIES:
        sched = POLICIES[config["schedule"]].build(config, lr, total, steps_per_epoch)
    else:  # the option's check refuses it first; a config built by hand must not get some other schedule
        raise ValueError(f"unknown schedule {config['schedule']!r}; choose from {', '.join(NAMES)}")
    warm = int(round(config["warmup"] * steps_per_epoch))
    return s.warmup(sched, warm) if warm > 0 else sched
