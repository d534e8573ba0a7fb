"""Checks 6–8 during training, as Trainer callbacks that cost nothing between samples.

- `LayerStatsMonitor(interval)`: every `interval` steps, taps the next training step's forward and backward
  passes (hooks.Tap) and records per-layer activation statistics, output-gradient RMS and per-parameter
  gradient norms; ReLU units are also tracked over the sampled batches of each epoch ("dead over an epoch").
- `UpdateRatioMonitor(interval)`: every `interval` steps, copies the weight tensors before the next step and
  records ‖ΔW‖/‖W‖ after it (`interval=1`: every iteration).
- `Diagnostics(path, ...)`: both, plus the learning-curve check on the trainer's `History`; writes the JSON
  file `path` (snapshots, ratios, the diagnosis and the verdicts; a run's diagnostics.json) at each epoch end
  and at the end.

Memory and the file stay bounded over any run length: snapshots and ratio records are kept as an evenly
spaced downsample (`train.callbacks.downsample`, as the History keeps its iteration records) that always
holds the first and the latest; the per-epoch dead-unit records are all kept. A resumed run takes up what
its diagnostics.json holds up to the restored step (the first snapshot stays the one at initialisation) and
samples the same steps as a straight run; a diagnostics.json that cannot be read is ignored and rewritten.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..train.callbacks import Callback, History
from ..train.callbacks.downsample import Downsample
from .checks import activations, gradients, learning_curves, update_ratio
from .checks.update_ratio import update_ratios, weight_tensors
from .diagnosis import Diagnosis, diagnose
from .hooks import Tap, leaf_modules
from .stats import (
    MAX_VALUES,
    LayerStats,
    json_number,
    param_gradients,
    param_gradients_from_dict,
    summarize,
    summarize_gradient,
)
from .verdict import Verdict, jsonable


class LayerStatsMonitor(Callback):
    """Snapshots `{"iteration", "layers": [LayerStats], "params": {...}}` every `interval` steps (the
    first step included). Histograms are kept for the first and the latest snapshot only, and `snapshots`
    holds at most `max_snapshots` evenly spaced ones besides the first and the latest (`Downsample`; None:
    all); `epoch_dead` has every epoch's."""

    order = 20
    MAX_SNAPSHOTS = 64

    def __init__(self, interval: int = 100, bins: int = 40, max_snapshots: int | None = MAX_SNAPSHOTS):
        if interval < 1:
            raise ValueError(f"LayerStatsMonitor: interval must be ≥ 1, got {interval!r}")
        self.interval, self.bins = int(interval), int(bins)
        self._snapshots = Downsample(max_snapshots, step=self.interval)  # at iterations 1, 1 + interval, …
        self.epoch_dead: list[dict] = []  # per epoch: {"epoch", "dead": {layer: fraction}}
        self.outputs: int | None = None  # width of the last layer's output (the number of classes)
        self._tap: Tap | None = None
        self._pending: dict[str, LayerStats] = {}
        self._active: dict[str, np.ndarray] = {}

    @property
    def snapshots(self) -> list[dict]:
        return self._snapshots.records

    # ----- taps ---------------------------------------------------------------------------------
    def _on_forward(self, name, module, x, y):
        if module.training:  # validation passes in eval mode are not training statistics
            self._pending[name] = summarize(name, module, y, self.bins, MAX_VALUES)
            self.outputs = int(y.shape[-1])

    def _on_backward(self, name, module, dy, dx):
        if name in self._pending:
            summarize_gradient(self._pending[name], dy, self.bins, MAX_VALUES)

    def _arm(self):
        self._pending = {}
        self._tap = Tap(leaf_modules(self.trainer.model), self._on_forward, self._on_backward)

    def _disarm(self):
        if self._tap is not None:
            self._tap.remove()
            self._tap = None

    # ----- hooks --------------------------------------------------------------------------------
    def on_train_begin(self):
        done = self.trainer.iteration
        self._snapshots.reset([s for s in self.snapshots if s["iteration"] <= done])
        self.epoch_dead = [e for e in self.epoch_dead if e["epoch"] < self.trainer.epoch]
        self._active = {}
        if not self.snapshots or done % self.interval == 0:  # else a straight run's next snapshot is later
            self._arm()

    def on_batch_end(self, batch, logs):
        if self._tap is not None:
            self._disarm()
            if self._pending:
                self._record(logs["iteration"])
        if logs["iteration"] % self.interval == 0:
            self._arm()

    def _record(self, iteration: int):
        layers = list(self._pending.values())
        for s in layers:
            if s.active_units is not None:
                prev = self._active.get(s.name)
                self._active[s.name] = s.active_units if prev is None or prev.shape != s.active_units.shape \
                    else prev | s.active_units
        if len(self.snapshots) > 1:  # keep the first snapshot's histograms and the latest's
            for s in self.snapshots[-1]["layers"]:
                s.hist, s.edges, s.grad_hist, s.grad_edges = [], [], [], []
                s.active_units = None  # merged into the epoch's units above
        self._snapshots.add({"iteration": iteration, "layers": layers, "params": param_gradients(self.trainer.model)})
        self._pending = {}

    def on_epoch_end(self, epoch, logs):
        if self._active:
            self.epoch_dead.append({"epoch": epoch, "dead": {n: float(1 - a.mean()) for n, a in self._active.items()}})
        self._active = {}

    def on_interrupt(self, logs):
        self._disarm()

    def on_train_end(self, logs):
        self._disarm()

    # ----- results ------------------------------------------------------------------------------
    def verdicts(self, input_rms: float | None = None) -> list[Verdict]:
        """Activation and gradient diagnoses of the first (initialisation) and the latest snapshot; a finding
        of the latest that the first did not have is put down to training (`checks.activations.judge`)."""
        if not self.snapshots:
            return []
        out = []
        first, last = self.snapshots[0], self.snapshots[-1]
        baseline = None
        for snap, when in ((first, "at start"), (last, "latest")) if last is not first else ((first, "at start"),):
            layers = snap["layers"]
            if snap is last and self.epoch_dead:
                # "dead" over the sampled batches of the last whole epoch is more telling than over one batch
                dead = self.epoch_dead[-1]["dead"]
                layers = [dataclasses.replace(s, dead=dead.get(s.name, s.dead)) for s in layers]
            a = activations.judge(layers, input_rms, baseline=baseline)
            g = gradients.judge(snap["layers"], snap["params"], activations=a)
            baseline = baseline or a
            for v in (a, g):
                v.check = f"{v.check} ({when}, step {snap['iteration']})"
                v.details.pop("params", None)
            out += [a, g]
        return out

    def to_dict(self) -> dict:
        return jsonable({"interval": self.interval, "outputs": self.outputs, "epoch_dead": self.epoch_dead,
                         "snapshots": [{"iteration": s["iteration"], "layers": [x.to_dict() for x in s["layers"]],
                                        "params": s["params"]} for s in self.snapshots]})

    def load(self, saved: dict) -> None:
        """Take up `saved` (a `to_dict()`, from a run's diagnostics.json); raises KeyError, TypeError,
        ValueError or OverflowError, before changing anything, when it is not one (every value is converted to
        its type here, so a damaged file cannot fail later, in a check)."""
        snaps = [{"iteration": int(json_number(s["iteration"])),
                  "layers": [LayerStats.from_dict(x) for x in s["layers"]],
                  "params": {str(n): param_gradients_from_dict(p) for n, p in s["params"].items()}}
                 for s in saved["snapshots"]]
        dead = [{"epoch": int(json_number(e["epoch"])), "dead": {str(k): json_number(v) for k, v in e["dead"].items()}}
                for e in saved["epoch_dead"]]
        outputs = None if saved.get("outputs") is None else int(json_number(saved["outputs"]))
        self._snapshots.reset(snaps)
        self.epoch_dead, self.outputs = dead, outputs


class UpdateRatioMonitor(Callback):
    """Records `{"iteration", "ratios": {weight name: ‖ΔW‖/‖W‖}}` for one step out of every `interval`;
    `records` holds at most `max_records` evenly spaced ones besides the first and the latest (`Downsample`;
    None: all)."""

    order = 20
    MAX_RECORDS = 512

    def __init__(self, interval: int = 10, max_records: int | None = MAX_RECORDS):
        if interval < 1:
            raise ValueError(f"UpdateRatioMonitor: interval must be ≥ 1, got {interval!r}")
        self.interval = int(interval)
        self._records = Downsample(max_records, step=self.interval)  # at iterations 1, 1 + interval, …
        self._before: dict[str, np.ndarray] | None = None

    @property
    def records(self) -> list[dict]:
        return self._records.records

    def _snapshot(self):
        self._before = {n: p.data.copy() for n, p in weight_tensors(self.trainer.model)}

    def on_train_begin(self):
        done = self.trainer.iteration
        self._records.reset([r for r in self.records if r["iteration"] <= done])
        self._before = None
        if not self.records or done % self.interval == 0:  # else a straight run's next record is later
            self._snapshot()

    def load(self, saved: list[dict]) -> None:
        """Take up `saved` (`records`, from a run's diagnostics.json); raises as `LayerStatsMonitor.load`."""
        records = [{"iteration": int(json_number(r["iteration"])),
                    "ratios": {str(k): json_number(v) for k, v in r["ratios"].items()}} for r in saved]
        self._records.reset(records)

    def on_batch_end(self, batch, logs):
        if self._before is not None:
            ratios = update_ratios(self._before, self.trainer.model)
            self._records.add({"iteration": logs["iteration"], "ratios": ratios})
            self._before = None
        if logs["iteration"] % self.interval == 0:
            self._snapshot()

    def verdict(self) -> Verdict:
        return update_ratio.judge(self.records)


class Diagnostics(Callback):
    """Checks 6–9 while training; the JSON file `path` (if given) written at every epoch end.

    stats_interval: steps between activation/gradient snapshots; ratio_interval: steps between
    update-ratio measurements; max_snapshots / max_records: the bounds of their evenly spaced downsamples
    (None: keep all). `verdicts()` gives the current diagnosis at any time."""

    order = 20

    def __init__(self, path: str | os.PathLike | None = None, stats_interval: int = 100,
                 ratio_interval: int = 10, num_classes: int | None = None, *,
                 max_snapshots: int | None = LayerStatsMonitor.MAX_SNAPSHOTS,
                 max_records: int | None = UpdateRatioMonitor.MAX_RECORDS):
        self.path = None if path is None else Path(path)
        self.layers = LayerStatsMonitor(stats_interval, max_snapshots=max_snapshots)
        self.ratios = UpdateRatioMonitor(ratio_interval, max_records=max_records)
        self.num_classes = num_classes
        self.extra: dict = {}  # anything else to save with the diagnostics (e.g. the doctor's verdicts)

    def set_trainer(self, trainer):
        super().set_trainer(trainer)
        self.layers.set_trainer(trainer)
        self.ratios.set_trainer(trainer)

    def on_train_begin(self):
        if self.trainer.iteration and self.path is not None and not self.layers.snapshots and not self.ratios.records:
            self._resume()
        self.layers.on_train_begin()
        self.ratios.on_train_begin()

    def _resume(self) -> None:
        """A resumed run's earlier measurements, from its diagnostics.json (written at the same epoch ends as the
        checkpoints). The file only informs: one that is missing, damaged or from other settings is ignored
        (and rewritten at the next epoch end), as if the diagnostics had started with the resume."""
        try:
            saved = json.loads(self.path.read_text())
            layers, ratios = saved["layer_stats"], saved["update_ratio"]
            if layers["interval"] != self.layers.interval:
                return
            self.layers.load(layers)
            self.ratios.load(ratios)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
            self.layers.load({"snapshots": [], "epoch_dead": []})
            self.ratios.load([])

    def on_batch_end(self, batch, logs):
        self.layers.on_batch_end(batch, logs)
        self.ratios.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs):
        self.layers.on_epoch_end(epoch, logs)
        self.write()

    def on_interrupt(self, logs):
        self.layers.on_interrupt(logs)
        self.write()

    def on_train_end(self, logs):
        self.layers.on_train_end(logs)
        self.write()

    def verdicts(self) -> list[Verdict]:
        out = self.layers.verdicts() + [self.ratios.verdict()]
        history = self.trainer.callback(History) if getattr(self, "trainer", None) is not None else None
        if history is not None:
            out.append(learning_curves.judge(history, num_classes=self.num_classes or self.layers.outputs))
        return out

    def diagnosis(self) -> tuple[Diagnosis, list[Verdict]]:
        """The current diagnosis (root cause first, `diagnosis.py`) and the verdicts it was made from."""
        verdicts = self.verdicts()
        return diagnose(verdicts), verdicts

    def to_dict(self) -> dict:
        diagnosis, verdicts = self.diagnosis()
        return jsonable({"layer_stats": self.layers.to_dict(), "update_ratio": self.ratios.records,
                         "diagnosis": diagnosis.to_dict(), "verdicts": [v.to_dict() for v in verdicts],
                         **self.extra})

    def write(self) -> Path | None:
        if self.path is None:
            return None
        from ..atomic import write_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.to_dict()) + "\n")
        return self.path

