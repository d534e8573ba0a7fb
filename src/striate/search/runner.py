"""The search worker: claims trials from an Optuna study, trains each through `train/experiment.py`,
and records the outcome. Any number of workers (processes, machines) may run `work` on one storage.

- One Optuna study per stage, named "<name>/stage<k>", in one storage: SQLite in the search directory by
  default, or any RDB URL (PostgreSQL for workers on several machines).
- A trial slot is claimed under a lock (a file lock next to a SQLite database, a PostgreSQL advisory
  lock), so N workers finish exactly a stage's `trials` with no duplicate and none lost; trial k of stage
  s samples with a seed derived from (seed, s, k), so the trials do not depend on which worker ran them.
- A running trial records a heartbeat every `heartbeat` seconds; one silent for `grace` seconds (its
  worker died) is marked failed by whichever worker looks next, and the others carry on.
- A trial that diverges stops early by the run's rule (its ExplosionGuard): a non-finite loss at once, a
  median loss over 5 steps past `explode_factor` × max(first loss, ln C, 1) within 3 steps; it is recorded
  as failed with the reason. Optuna's median pruner stops hopeless trials at epoch boundaries; no trial's
  failure stops the search.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..train.callbacks import Callback
from .space import SearchError, Space
from .spec import SearchSpec
from .stages import narrow
from .storage import claim_lock, default_storage, open_storage

FINISHED = ("COMPLETE", "PRUNED", "FAIL")
CURVE_POINTS = 200  # iteration losses kept per trial (for the report's loss curves)


def study_name(spec: SearchSpec, stage: int) -> str:
    return f"{spec.name}/stage{stage + 1}"


class Heartbeat:
    """Records the trial's heartbeat now and every `interval` seconds until the block ends."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a missed beat is not fatal; `grace` covers several
                self.storage.record_heartbeat(self.trial_id)

    def __enter__(self):
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def trial_seed(seed: int, stage: int, number: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, stage, number]).generate_state(1)[0])


def make_sampler(kind: str, seed: int, space: Space, grid_points: int, search_seed: int = 0):
    """`seed`: the trial's own seed. The grid sampler takes the search's seed instead: it shuffles the
    grid with it and gives trial k grid point k, so every trial must see the same shuffle."""
    import optuna

    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(grid_points), seed=search_seed & 0xFFFFFFFF)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(kind: str):
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


def stage_trials(spec: SearchSpec, stage: int, space: Space) -> int:
    """The stage's trial count (a grid stage has at most one trial per grid point)."""
    n = spec.stages[stage].trials
    if spec.stage_sampler(stage) == "grid":
        n = min(n, space.grid_size(spec.grid_points))
    return n


# ----- stages ----------------------------------------------------------------------------------
def _load_study(spec: SearchSpec, storage, stage: int, sampler=None):
    import optuna

    return optuna.create_study(study_name=study_name(spec, stage), storage=storage, direction="maximize",
                               load_if_exists=True, sampler=sampler or optuna.samplers.RandomSampler(),
                               pruner=make_pruner(spec.pruner))


def fail_stale(study) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def wait_finished(study, count: int, poll: float, stream=None) -> list:
    """The study's trials once `count` exist and none is running (stale ones are failed meanwhile)."""
    said = False
    while True:
        fail_stale(study)
        trials = study.get_trials(deepcopy=False)
        running = [t.number for t in trials if t.state.name not in FINISHED]
        if len(trials) >= count and not running:
            return trials
        if stream is not None and not said:
            print(f"waiting for trials {running} of {study.study_name} (other workers)", file=stream, flush=True)
            said = True
        time.sleep(poll)


def stage_space(spec: SearchSpec, storage, stage: int, stream=None) -> Space:
    """Stage 1 searches the spec's space; a narrowing stage waits for the stage before to finish and
    derives its ranges from that stage's completed trials (`stages.narrow`)."""
    space = spec.space
    for s in range(1, stage + 1):
        rule = spec.stages[s].narrow
        if rule is None:
            continue
        prev = _load_study(spec, storage, s - 1)
        trials = wait_finished(prev, stage_trials(spec, s - 1, space), poll=min(2.0, spec.heartbeat),
                               stream=stream)
        results = [(t.params, t.value) for t in trials if t.state.name == "COMPLETE"]
        try:
            space = narrow(space, results, rule)
        except SearchError as e:
            raise SearchError(f"stage {s + 1} narrows from stage {s}: {e}") from None
    return space


def _check_stage_attrs(study, spec: SearchSpec, stage: int, space: Space) -> None:
    """Record the stage's space and settings in the study, or check a resumed study has the same ones."""
    # the trial count may change (raise it to extend a search); what a trial means may not
    stage_info = {k: v for k, v in spec.stages[stage].describe().items() if k != "trials"}
    want = {"space": space.describe(), "stage": stage_info, "base": spec.base, "sampler": spec.stage_sampler(stage)}
    have = study.user_attrs
    if "space" not in have:  # callers hold the claim lock; "space" goes last, marking the set complete
        for k in ("stage", "base", "sampler", "space"):
            study.set_user_attr(k, want[k])
        return
    for k, v in want.items():
        if k == "base":
            v = {key: val for key, val in v.items() if key != "out"}
            old = {key: val for key, val in have.get(k, {}).items() if key != "out"}
        else:
            old = have.get(k)
        if json.dumps(old, sort_keys=True) != json.dumps(v, sort_keys=True):
            raise SearchError(f"study {study.study_name!r} in this storage was created with a different {k} "
                              f"({json.dumps(old)} ≠ {json.dumps(v)}); use another search directory, "
                              "another [search] name, or restore the settings to resume it")


# ----- one trial -------------------------------------------------------------------------------
class MedianPruning(Callback):
    """Reports each epoch's val accuracy to the Optuna trial; stops the run when the pruner says so
    (never after the last epoch, where stopping saves nothing)."""

    order = 90  # after early stopping, before checkpointing

    def __init__(self, trial, epochs: int):
        self.trial, self.epochs = trial, epochs
        self.pruned = False

    def on_epoch_end(self, epoch, logs):
        value = logs.get("val_accuracy")
        if value is None or not math.isfinite(value) or self.trainer.diverged:
            return
        self.trial.report(float(value), epoch)
        if epoch + 1 < self.epochs and self.trial.should_prune():
            self.pruned = True
            self.trainer.stop_training = True
            self.trainer.stop_reason = (f"pruned after epoch {epoch + 1}: val accuracy {100 * value:.2f}% is below the "
                                        "median of earlier trials at this epoch")


def _curve(history) -> list[list[float]]:
    its = history.iterations if history is not None else []
    step = max(1, math.ceil(len(its) / CURVE_POINTS))
    return [[r["iteration"], r["loss"]] for r in its[::step] if r["loss"] is not None and math.isfinite(r["loss"])]


@dataclass
class Outcome:
    state: str  # COMPLETE, PRUNED or FAIL
    value: float | None
    attrs: dict
    interrupted: bool = False


def run_trial(trial, params: dict, space: Space, spec: SearchSpec, stage: int, directory: Path) -> Outcome:
    """Train one trial's configuration; every failure becomes an Outcome, never an exception."""
    from ..run import RunDir, build, execute
    from ..train.callbacks import History

    epochs = spec.stages[stage].epochs
    attrs = {"stage": stage + 1, "dir": str(directory), "status": "error", "reason": None, "epochs": 0,
             "seconds": 0.0, "curve": [], "epoch_logs": []}
    start = time.perf_counter()
    log = None
    try:
        config = space.apply(params, spec.base, where=f"trial {trial.number} of stage {stage + 1}")
        config = {**config, "epochs": epochs, "out": str(directory)}
        run_dir = RunDir(directory)
        run_dir.write_config(config)
        log = open(run_dir.log_file, "a")
        pruning = MedianPruning(trial, epochs)
        # a search ranks by validation accuracy: the test split stays unseen
        run = build(config, run_dir, callbacks=[pruning], test=False, stream=log)
        summary = execute(run, live_curves=False)  # a trial among many: its log file says how it goes
        history = run.trainer.callback(History)
        attrs.update(epochs=summary["epochs_completed"], curve=_curve(history), reason=summary["stop_reason"],
                     epoch_logs=[{k: r.get(k) for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")}
                                 for r in (history.epochs if history else [])])
        status = summary["status"]
        if status == "interrupted":
            attrs["status"] = "interrupted"
            return Outcome("FAIL", None, attrs, interrupted=True)
        if status == "diverged":
            attrs["status"] = "diverged"
            return Outcome("FAIL", None, attrs)
        if pruning.pruned:
            attrs["status"] = "pruned"
            return Outcome("PRUNED", None, attrs)
        value = summary["best_val_accuracy"]
        if value is None or not math.isfinite(value):
            attrs["reason"] = "no validation accuracy was measured"
            return Outcome("FAIL", None, attrs)
        attrs["status"] = "complete"
        return Outcome("COMPLETE", float(value), attrs)
    except KeyboardInterrupt:
        attrs.update(status="interrupted", reason="interrupted while building the run")
        return Outcome("FAIL", None, attrs, interrupted=True)
    except Exception as e:  # a trial's error is its own result; the search goes on
        from ..run.config import ConfigError

        attrs["reason"] = f"{type(e).__name__}: {e}"
        attrs["config_error"] = isinstance(e, ConfigError)  # a search of nothing but these exits 2 (launch.py)
        return Outcome("FAIL", None, attrs)
    finally:
        attrs["seconds"] = round(time.perf_counter() - start, 3)
        if log is not None:
            log.close()


def _fmt_params(params: dict) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


# ----- the worker loop -------------------------------------------------------------------------
@dataclass
class WorkResult:
    trials: int = 0  # trials this worker ran
    interrupted: bool = False


def work(spec: SearchSpec, directory: str | os.PathLike, storage_url: str | None = None,
         max_trials: int | None = None, stream=None) -> WorkResult:
    """Run trials of every stage in turn until each stage has its count (or `max_trials` ran here)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stream = stream if stream is not None else sys.stderr
    directory = Path(directory)
    storage = open_storage(storage_url or default_storage(directory), spec)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    result = WorkResult()
    for stage in range(len(spec.stages)):
        space = stage_space(spec, storage, stage, stream=stream)
        study = _load_study(spec, storage, stage)
        with claim_lock(storage, study.study_name):
            _check_stage_attrs(study, spec, stage, space)
        count = stage_trials(spec, stage, space)
        kind = spec.stage_sampler(stage)
        while True:
            if max_trials is not None and result.trials >= max_trials:
                return result
            fail_stale(study)
            with claim_lock(storage, study.study_name):
                n = len(study.get_trials(deepcopy=False, states=None))
                if n >= count:
                    break
                sampler = make_sampler(kind, trial_seed(spec.seed, stage, n), space, spec.grid_points, spec.seed)
                asking = _load_study(spec, storage, stage, sampler=sampler)
                with warnings.catch_warnings():  # heartbeats are recorded here, not by Study.optimize
                    warnings.filterwarnings("ignore", message="Heartbeat of storage")
                    trial = asking.ask()
                storage.record_heartbeat(trial._trial_id)
            trial.set_user_attr("worker", worker)
            with Heartbeat(storage, trial._trial_id, spec.heartbeat):
                params = space.suggest(trial)
                out = run_trial(trial, params, space, spec, stage,
                                directory / "trials" / f"stage{stage + 1}-{trial.number:04d}")
                for k, v in out.attrs.items():
                    trial.set_user_attr(k, v)
                # told through `study` (a plain sampler): GridSampler.after_trial calls study.stop(), which
                # only works inside Study.optimize
                if out.state == "COMPLETE":
                    study.tell(trial, out.value)
                else:
                    study.tell(trial, state=getattr(optuna.trial.TrialState, out.state))
            result.trials += 1
            a = out.attrs
            what = (f"val acc {100 * out.value:.2f}%" if out.state == "COMPLETE"
                    else f"{a['status']}: {a['reason']}" if a["reason"] else a["status"])
            epochs = f"{a['epochs']} epoch{'s' if a['epochs'] != 1 else ''}"
            print(f"stage {stage + 1} trial {trial.number} ({epochs}, {a['seconds']:.1f}s) {_fmt_params(params)} → "
                  f"{what}", file=stream, flush=True)
            if out.interrupted:
                result.interrupted = True
                return result
    # the report should show every trial: wait for the other workers' trials (a dead worker's trial is
    # failed once its heartbeat is `grace` seconds old)
    wait_finished(study, count, poll=min(2.0, spec.heartbeat), stream=stream)
    return result
