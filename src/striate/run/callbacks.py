"""The callbacks every run gets from its configuration: the explosion guard, the history in
metrics.jsonl, progress on the console, checkpoints, early stopping, the diagnostics and the report."""

from __future__ import annotations

import importlib.util

from .directory import RunDir


def run_callbacks(config: dict, directory: RunDir | None, meta: dict, num_classes: int, has_val: bool,
                  steps_per_epoch: int, stream=None, writers: bool = True, model=None) -> list:
    """`stream`: where a run started by a search writes its lines (a log file); None: the console.
    `writers=False` (the ranks but 0 of a data-parallel run): only the callbacks that steer training — the
    explosion guard, early stopping, the max-norm constraint and the weight averages — which act alike on every
    rank from the same weights and global numbers (and take part in the validation's exchanges). `model`: the
    run's network, for the callbacks its layers ask for (BiasEpochs for a PatchWhitening with bias_epochs)."""
    from ..train.callbacks import (
        BiasEpochs,
        EarlyStopping,
        ExplosionGuard,
        History,
        LookaheadAveraging,
        MaxNormConstraint,
        ModelCheckpoint,
        Progress,
        WeightAveraging,
    )

    callbacks = [ExplosionGuard.for_classes(num_classes, config["explode_factor"])]
    if model is not None and BiasEpochs.applies(model):
        callbacks.append(BiasEpochs())
    if writers:
        progress = Progress() if stream is None else Progress(stream=stream, bar=False)  # a log file: lines only
        callbacks += [History(directory.metrics_file), progress, ModelCheckpoint(directory.checkpoints_dir, meta=meta)]
    if config["patience"] and has_val:
        callbacks.append(EarlyStopping(config["patience"]))
    if config.get("max_norm"):
        callbacks.append(MaxNormConstraint(config["max_norm"]))
    if config.get("lookahead"):
        callbacks.append(LookaheadAveraging(config["lookahead"], config["lookahead_decay"], config["lookahead_power"]))
    if config.get("ema_decay") or config.get("polyak"):
        callbacks.append(WeightAveraging(config["ema_decay"] if config.get("ema_decay") else None))
    if not writers:
        return callbacks
    if config.get("snapshots"):
        from ..models.ensemble import SnapshotEnsemble

        steps = steps_per_epoch * config["epochs"]
        callbacks.append(SnapshotEnsemble(max(1, steps // config["snapshots"]), directory=directory.snapshots_dir))
    if config["diagnostics"]:
        from ..diagnose.callbacks import Diagnostics

        every = config["diagnostics"]
        callbacks.append(Diagnostics(directory.diagnostics_file, stats_interval=every,
                                     ratio_interval=max(1, every // 10), num_classes=num_classes))
    if config["report"] == "on":
        if importlib.util.find_spec("matplotlib") is None:
            from .. import console

            console.note("note: matplotlib is not installed, so no report.html is drawn (pip install "
                         "'striate[report]'); training goes on")
        else:
            from ..report.callback import ReportWriter

            callbacks.append(ReportWriter(directory))
    return callbacks
