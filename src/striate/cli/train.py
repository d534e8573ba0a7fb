"""`striate train`: train a model and write a run directory.

    striate train                                   # digits net on the embedded digits, a few seconds
    striate train --data cifar10 --model reference --optimizer nesterov --lr 0.05 --schedule cosine \\
                  --warmup 1 --epochs 20 --batch-size 128 --augment crop,flip --preprocess standardize
    striate train --config run.toml                 # the same keys in TOML; flags given too override it
    striate train --resume runs/x [--epochs 30]     # continue exactly where the last checkpoint left off
    striate train --resume runs/x --data new/imgs   # … on the same data, which moved
    mpiexec -n 4 striate train --data cifar10 …      # one run on 4 processes (pip install 'striate[mpi]')

Under an MPI launcher rank 0 does everything above; it hands the resolved configuration and the fitted
preprocessing to the other ranks, which build the same run without a directory and only train (see
`run.build`). An error before training reaches every rank as an exit status; one during training aborts
the job.
"""

from __future__ import annotations

from .. import console
from .parser import EXIT_DIVERGED, add_options, given

HELP = "train a model; writes a run directory"
DESCRIPTION = "Train a model. Keys may also come from --config FILE.toml; flags win over the file."


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", help="a run file: TOML with the keys below (dashes or "
                        "underscores), flat or under [train], and a [model] table (default: none)")
    from ..run import config as cfg

    flags = [cfg.BY_NAME[name].flag_name for name in cfg.resumable()]  # the table says what a resume may change
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this directory from its last "
                        f"checkpoint; only {', '.join(flags[:-1])} and {flags[-1]} may change, and --data gives "
                        "the same data's new place if it moved (default: none)")
    add_options(parser, "train")
    parser.add_argument("--distributed", action="store_true", help="be one rank of an MPI job even when no "
                        "launcher is detected (default: detected from mpiexec's environment)")


def configuration(args, command: str = "train") -> dict:
    """The resolved configuration of a new run: defaults, then the run file, then the flags."""
    from ..run import config as cfg
    from ..run import run_file

    base = cfg.defaults(command)
    if args.config:
        base = cfg.resolve(run_file.load_run_file(args.config, command), where=args.config, base=base, command=command)
    return cfg.resolve(given(args, command), where="command line", base=base, command=command)


def run(args, callbacks=()) -> int:
    """The command; `callbacks` are added to the run's own (a seam for tests and tools)."""
    from ..distributed import share_cores, world

    comm = world(force=getattr(args, "distributed", False))
    if comm.size == 1:
        return _lead(args, callbacks, comm)
    share_cores(comm)
    if not comm.is_root:
        return _follow(comm)
    try:
        return _lead(args, callbacks, comm)
    except BaseException as error:
        if not comm.joined:  # the other ranks wait for the run: tell them it will not come
            from .errors import exit_status

            comm.bcast({"exit": exit_status(error)[0]})
        raise


def _follow(comm) -> int:
    """A rank but 0: rank 0's configuration and preprocessing, the same run without a directory, training."""
    from ..run import build, execute

    console.silence()
    message = comm.bcast(None)
    if "exit" in message:
        return message["exit"]
    comm.joined = True
    built = build(message["config"], None, fitted=message["fitted"], test=False, comm=comm)
    return _status(execute(built), built)


def _share(comm, built) -> None:
    """Rank 0's resolved configuration and fitted preprocessing to the other ranks."""
    if comm.size > 1:
        comm.bcast({"config": built.config, "fitted": built.preprocess.state()})
        comm.joined = True


def _lead(args, callbacks, comm) -> int:
    from ..run import RunDir, build, config, resume

    if args.resume:
        if args.config:
            raise config.ConfigError("--resume takes the configuration from the run; do not pass --config")
        directory = RunDir(args.resume).require()
        with directory.lock("striate train --resume"):
            built = resume(directory, given(args, "train"), callbacks=callbacks, comm=comm)
            if built is None:
                status = _finished(directory)
                if comm.size > 1:
                    comm.bcast({"exit": status})
                return status
            _share(comm, built)
            _ranks(comm, built.config["batch_size"])
            t = built.trainer  # as the interruption said it: inside epoch e+1 at a step, else after epoch e
            console.line(f"resuming {directory} " + (f"at epoch {t.epoch + 1}, step {t.batch}" if t.batch
                                                      else f"after epoch {t.epoch}"))
            return _execute(built)
    cfg = configuration(args)
    directory = RunDir.new(cfg["out"]).claim("striate train")  # before the lock: nothing written yet
    cfg["out"] = str(directory)
    with directory.lock("striate train"):
        if directory.has_checkpoint("last"):
            raise config.ConfigError(f"'{directory}' already holds a run; resume it with --resume {directory} "
                                     "or choose another --out")
        built = build(cfg, directory, callbacks=callbacks, comm=comm)
        cfg["model"] = built.meta["model"]["name"]
        directory.write_config(cfg, ranks=comm.size)
        _share(comm, built)
        _ranks(comm, cfg["batch_size"])
        d = built.data
        console.line(f"run {directory}: {cfg['model']} ({built.model.num_parameters():,} parameters) on "
                     f"{cfg['data']} {'×'.join(map(str, d.shape))}: {len(d.train_x):,} train, "
                     f"{0 if d.val_x is None else len(d.val_x):,} val, "
                     f"{'no' if d.test is None else f'{len(d.test):,}'} test images")
        return _execute(built)


def _ranks(comm, batch: int) -> None:
    if comm.size > 1:
        console.line(f"{comm.size} MPI ranks: each trains on 1/{comm.size} of every batch of {batch} images")


def _finished(directory) -> int:
    config = directory.read_config()
    console.line(f"run '{directory}' has already trained its {config['epochs']} epochs: nothing to do. To train "
                 f"further: striate train --resume {directory} --epochs {config['epochs'] + 5} (or any number above "
                 f"{config['epochs']})")
    return 0


def _execute(built) -> int:
    from ..run import execute

    summary = execute(built)
    print_summary(summary, built.directory)
    after = summary.get("after_training")
    if after:  # training is complete: what the signal stopped is the work after it
        console.note(f"{after['interrupted_by']} while {after['while']}: training {after['status']} and is saved; "
                     f"to finish: {after['to_finish']}")
    elif summary["status"] == "interrupted":
        console.note(f"checkpoint saved; continue with: striate train --resume {built.directory}")
    return _status(summary, built)


def _status(summary: dict, built) -> int:
    if summary["status"] == "diverged":
        return EXIT_DIVERGED
    if summary["status"] == "interrupted":
        return 128 + int(built.trainer.interrupted)
    return 0


def print_summary(s: dict, directory) -> None:
    epochs = s["epochs_completed"]
    lines = [f"{s['status']}: {epochs} epoch{'s' if epochs != 1 else ''}, {s['iterations']} iterations in "
             f"{s['seconds']:.1f}s" + (f" on {s['ranks']} MPI ranks" if s.get("ranks", 1) > 1 else "")]
    # the stop reason (diverged, early stopping) is not repeated: the Progress callback said it as training ended
    if s.get("best_val_accuracy") is not None:
        lines.append(f"best val accuracy {100 * s['best_val_accuracy']:.2f}% (epoch {s['best_epoch']})")
    elif s.get("best_train_accuracy") is not None:
        lines.append(f"best training accuracy {100 * s['best_train_accuracy']:.2f}% (epoch {s['best_epoch']}; "
                     "no validation split)")
    if "test" in s:
        lines.append(f"test accuracy {100 * s['test']['accuracy']:.2f}% on {s['test']['count']} images "
                     f"({s['test']['checkpoint']} checkpoint)")
        averaged, snapshots = s["test"].get("averaged"), s["test"].get("snapshot_ensemble")
        if averaged:
            lines.append(f"test accuracy {100 * averaged['accuracy']:.2f}% with the averaged weights "
                         f"({averaged['kind']}; striate eval {directory} --weights averaged)")
        if snapshots:
            lines.append(f"test accuracy {100 * snapshots['accuracy']:.2f}% with the snapshot ensemble of "
                         f"{snapshots['members']} snapshots (striate eval {directory} --weights snapshots)")
    lines.append(f"run directory: {directory}")
    console.line("\n".join(lines))
