"""The callbacks every run gets from its configuration: the explosion guard, the history in
metrics.jsonl, progress on the console, checkpoints, early stopping, the diagnostics and the report."""

from __future__ import annotations

import importlib.util

from .directory import RunDir


def run_callbacks(config: dict, directory: RunDir, meta: dict, num_classes: int, has_val: bool, stream) -> list:
    from ..train.callbacks import EarlyStopping, ExplosionGuard, History, ModelCheckpoint, Progress

    callbacks = [ExplosionGuard(config["explode_factor"]), History(directory.metrics_file), Progress(stream=stream),
                 ModelCheckpoint(directory.checkpoints_dir, meta=meta)]
    if config["patience"] and has_val:
        callbacks.append(EarlyStopping(config["patience"]))
    if config["diagnostics"]:
        from ..diagnose.callbacks import Diagnostics

        every = config["diagnostics"]
        callbacks.append(Diagnostics(directory.diagnostics_file, stats_interval=every,
                                     ratio_interval=max(1, every // 10), num_classes=num_classes))
    if config["report"] == "on":
        if importlib.util.find_spec("matplotlib") is None:
            print("note: matplotlib is not installed, so no report.html is drawn "
                  "(pip install 'striate[report]'); training goes on", file=stream)
        else:
            from ..report.callback import ReportWriter

            callbacks.append(ReportWriter(directory))
    return callbacks
