"""Running a built run: train (or continue), evaluate the test split once with the best checkpoint, write
summary.json and evaluation.json, and only then draw the final report, from those files.

summary.json: status ('finished', 'stopped_early', 'diverged' or 'interrupted'), epochs_completed (counted
from 1, as on the console), iterations, seconds, stop_reason, the last epoch's numbers, the best validation
accuracy and its epoch (or, without validation data, the best training accuracy), parameters, MACs per
image, ranks (the MPI processes that trained it, 1 without MPI) and, when the test split was evaluated,
`test` (accuracy, loss, count, checkpoint).

A signal after training (Ctrl-C, SIGTERM, SIGHUP while the test split is evaluated or the report drawn)
ends the work there: summary.json then says 'interrupted', with `after_training` naming the signal, the
step, the status training had and the command that finishes the job (`striate report RUN`), and
`report: "interrupted"` when the page was not drawn. A failure there (a full disk) keeps training's status
and records `after_training` (`failed_while`, the error, the command) and `report` the same way.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time

import numpy as np

from .. import console
from .build import Run
from .directory import RunDir
from .evaluation import evaluate, top_losses


def _status(trainer) -> str:
    if trainer.diverged:
        return "diverged"
    if trainer.interrupted:
        return "interrupted"
    return "stopped_early" if trainer.stop_training else "finished"


def evaluate_test(run: Run) -> dict | None:
    """The test split on the best checkpoint (else the final weights), written to evaluation.json; its top
    losses and most-confused pairs name their images (`source`, `examples`: files of an image folder)."""
    test = run.data.test
    if test is None or not run.test:
        return None
    store = run.directory.store
    checkpoint = "best" if store.has("best") else "final"
    if checkpoint == "best":
        run.model.load_state_dict(store.load("best").weights)
    x = run.preprocess.lazy(test.images)  # preprocessed a batch at a time
    result = evaluate(run.model, x, test.labels, run.data.classes, run.trainer.tta, run.trainer.loss, test.sources)
    result.update(_other_weights(run, x, test.labels))
    worst = top_losses(result.pop("scores"), test.labels, run.data.classes, sources=test.sources)
    for rank, item in enumerate(worst):
        item["file"] = run.directory.write_image(f"{RunDir.TOP_LOSSES}/{rank:02d}.png", test.images[item["index"]])
    result.update(split="test", checkpoint=checkpoint, top_losses=worst)
    run.directory.write_json(run.directory.EVALUATION, result)
    return result


def _other_weights(run: Run, x, labels) -> dict:
    """The test split with the averaged weights (EMA / Polyak) and with the snapshot ensemble, when the run
    keeps them: {'averaged': {...}, 'snapshot_ensemble': {...}}."""
    from ..models.ensemble import snapshot_ensemble
    from ..train import inference
    from ..train.callbacks import WeightAveraging

    out = {}
    averaging = run.trainer.callback(WeightAveraging)
    if averaging is not None and averaging.ema is not None:
        with averaging.ema.swapped():
            r = inference.evaluate(run.model, run.trainer.loss, (x, labels), tta=run.trainer.tta)
        out["averaged"] = {"accuracy": r["accuracy"], "loss": r["loss"],
                           "kind": "polyak" if averaging.decay is None else f"ema {averaging.decay:g}"}
    files = sorted(run.directory.snapshots_dir.glob("snapshot-*.safetensors")) if run.config.get("snapshots") else []
    if files:
        r = snapshot_ensemble(run.model, files).evaluate(x, labels)
        out["snapshot_ensemble"] = {"accuracy": r["accuracy"], "loss": r["loss"], "members": len(files),
                                    "member_accuracies": r["members"]}
    return out


CHECK_TRAIN, CHECK_VAL = 5000, 2000  # samples the start-up data check reads (evenly strided)
CHECK_BYTES = 128 << 20  # at most, float32 bytes of the training sample (of the validation sample: 2/5 of it)


def announce_data(run: Run) -> None:
    """Before training: the files of an image folder that were left out (unreadable or not images; listed in
    the run directory), then a warning for each problem the doctor's data check finds in what the model will see."""
    from ..atomic import write_atomic

    skipped = run.data.skipped
    if skipped:
        write_atomic(run.directory.skipped_file, "".join(f"{path}\t{why}\n" for path, why in skipped))
        console.note(f"warning: skipped {len(skipped)} file{'s' if len(skipped) != 1 else ''} (unreadable, not images, "
                     f"or beside the class folders; e.g. {skipped[0][0]}); the list, with the reasons, is in "
                     f"{run.directory.skipped_file} (--strict stops instead)")
    for verdict in data_warnings(run):
        console.note(f"warning: {verdict.check}: {verdict.advice}")


def data_warnings(run: Run) -> list:
    """The doctor's data-check verdicts that are not PASS for an evenly strided sample of the training
    images after preprocessing (and of the validation split): blank or unpreprocessed inputs, a single
    class, a class imbalance, labels that do not match their images."""
    from ..diagnose import check_inputs

    def sample(x, y, most):
        idx = np.linspace(0, len(x) - 1, min(most, len(x))).astype(np.int64)
        return x[idx], y[idx]

    per = 4 * math.prod(run.data.train_x.shape[1:])  # fewer large images (224×224: 222 and 89), small ones as ever
    x, y = sample(run.data.train_x, run.data.train_y, min(CHECK_TRAIN, max(2, CHECK_BYTES // per)))
    val = None if run.val is None else sample(*run.val, min(CHECK_VAL, max(2, CHECK_BYTES * 2 // 5 // per)))
    verdicts = check_inputs(run.preprocess(x), y, len(run.data.classes), val=val, seed=run.config["seed"],
                            class_names=list(run.data.classes))
    return [v for v in verdicts if not v.ok]


def execute(run: Run, draw: bool = True, *, live_curves: bool = True) -> dict:
    """Train the run to its configured epochs and write what it produced; returns the summary. `draw=False`
    skips the final report (it is skipped anyway after Ctrl-C, so that a stop is quick). In a notebook the
    training curves are redrawn in place at each epoch's end (`report.LiveCurves`); `live_curves=False`: not."""
    from ..train.callbacks import ModelCheckpoint

    if run.comm is not None and not run.comm.is_root:  # a rank but 0 of an MPI run: it only trains
        run.trainer.fit(run.train_loader, run.val, epochs=run.config["epochs"])
        return {"status": _status(run.trainer)}
    if live_curves:
        _add_live_curves(run.trainer)
    announce_data(run)
    trainer = run.trainer
    start = time.perf_counter()
    logs = trainer.fit(run.train_loader, run.val, epochs=run.config["epochs"])
    status = _status(trainer)
    ckpt = trainer.callback(ModelCheckpoint)
    summary = {"status": status, "epochs_completed": trainer.epoch, "iterations": trainer.iteration,
               "seconds": round(time.perf_counter() - start, 3), "stop_reason": trainer.stop_reason,
               "last": {k: v for k, v in logs.items() if isinstance(v, int | float)},
               "best_val_accuracy": ckpt.best if run.val is not None else None,
               "best_epoch": None if ckpt.best_epoch is None else ckpt.best_epoch + 1,
               "parameters": run.model.num_parameters(),
               "macs": run.model.macs((1, *run.preprocess.output_shape(run.data.shape))),  # the net's input
               "ranks": 1 if run.comm is None else run.comm.size}  # the MPI processes that trained it
    if run.val is None:  # without a validation split the best checkpoint follows training accuracy
        summary["best_train_accuracy"] = ckpt.best
    drawing = draw and status != "interrupted" and run.config["report"] == "on"
    step = None
    try:
        with _signals_stop():  # the trainer's handlers are gone: a signal from here on must still say what it did
            if status in ("finished", "stopped_early") and run.test and run.data.test is not None:
                step = "evaluating the test split"
                console.note(f"evaluating the test split ({len(run.data.test):,} images) …")
                result = evaluate_test(run)
                if result is not None:
                    summary["test"] = {k: result[k] for k in ("accuracy", "loss", "count", "checkpoint", "averaged",
                                                              "snapshot_ensemble") if k in result}
            step = "writing summary.json"
            run.directory.write_json(run.directory.SUMMARY, summary)
            if drawing:
                step = "drawing report.html"
                console.note("drawing report.html …")
                draw_report(run.directory)
    except Stopped as stop:
        summary = _stopped_after_training(run, summary, stop.signum, step, drawing)
    except Exception as error:  # a full disk: summary.json must say what was not done, not claim it was
        _failed_after_training(run, summary, step, drawing, error)
        raise
    return summary


def _add_live_curves(trainer) -> None:
    """A `LiveCurves` among the trainer's callbacks, in a notebook with matplotlib (and none there already)."""
    import importlib.util

    from ..report.live import LiveCurves

    if not console.in_notebook() or importlib.util.find_spec("matplotlib") is None or trainer.callback(LiveCurves):
        return
    live = LiveCurves()
    live.set_trainer(trainer)
    trainer.callbacks = sorted([*trainer.callbacks, live], key=lambda c: c.order)  # as the Trainer sorts them


def _to_finish(run: Run, step: str | None, drawing: bool) -> str:
    """The command(s) that do what `step` and the steps after it left undone."""
    todo = f"striate report {run.directory}"
    if step == "evaluating the test split":
        return f"striate eval {run.directory}" + (f", then {todo}" if drawing else "")
    return todo


def _failed_after_training(run: Run, summary: dict, step: str | None, drawing: bool, error: Exception) -> None:
    """summary.json after the work that follows training failed (`after_training`: the step, the error, the
    command that finishes the job; `report` when the page was not drawn). On a disk too full even for that,
    the error that is about to be reported says it all."""
    summary = {**summary, "after_training": {"failed_while": step, "error": f"{type(error).__name__}: {error}",
                                             "to_finish": _to_finish(run, step, drawing)}}
    if drawing:
        summary["report"] = f"failed: draw it with: striate report {run.directory}"
    with contextlib.suppress(OSError):
        run.directory.write_json(run.directory.SUMMARY, summary)


class Stopped(BaseException):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) after training: raised where the work was, so that it ends cleanly."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop():
    """Ctrl-C, SIGTERM and SIGHUP raise `Stopped` inside the block (SIGHUP stays ignored under nohup)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(signum)

    names = ("SIGINT", "SIGTERM", "SIGHUP")
    wanted = [getattr(signal, n) for n in names if hasattr(signal, n)]
    previous = {s: signal.signal(s, stop) for s in wanted if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stopped_after_training(run: Run, summary: dict, signum: int, step: str | None, drawing: bool) -> dict:
    """summary.json after a signal stopped the work that follows training: status 'interrupted', what was
    left undone and the command that does it (`after_training`); `report` says the page was not drawn."""
    name = signal.Signals(signum).name
    summary = {**summary, "status": "interrupted",
               "stop_reason": f"interrupted by {name} while {step} (training {summary['status']} and is saved)",
               "after_training": {"interrupted_by": name, "while": step, "status": summary["status"],
                                  "stop_reason": summary["stop_reason"], "to_finish": _to_finish(run, step, drawing)}}
    if drawing:
        summary["report"] = "interrupted"
    run.directory.write_json(run.directory.SUMMARY, summary)
    run.trainer.interrupted = signum
    return summary


@contextlib.contextmanager
def redrawing(directory: RunDir):
    """Around `striate report` drawing a run's own page when its drawing had been stopped (a signal) or had
    failed (a full disk): summary.json loses its `report` note and, when the drawing was all that was left,
    says what the run is again (its status after training), on the page being drawn too; should this drawing
    fail as well, the note is put back."""
    summary = directory.read_json(directory.SUMMARY)
    if not (isinstance(summary, dict) and "report" in summary):
        yield
        return
    done = {k: v for k, v in summary.items() if k != "report"}
    after = summary.get("after_training")
    if isinstance(after, dict) and after.get("failed_while") == "drawing report.html":
        del done["after_training"]
    if isinstance(after, dict) and after.get("while") == "drawing report.html":
        del done["after_training"]
        done.update(status=after.get("status"), stop_reason=after.get("stop_reason"))
    directory.write_json(directory.SUMMARY, done)
    try:
        yield
    except BaseException:
        directory.write_json(directory.SUMMARY, summary)
        raise


def draw_report(directory, title: str | None = None) -> None:
    """The run's report.html from its files (nothing without matplotlib)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return
    from ..report import write_report

    write_report(directory, title=title)
