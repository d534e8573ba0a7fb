"""The Trainer: a small loop (forward, loss, backward, step) with everything optional in callbacks.

    trainer = Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1),
                      schedule=st.optim.schedules.cosine(0.1, 1000),
                      callbacks=[ExplosionGuard.for_classes(10), History("run/metrics.jsonl"),
                                 ModelCheckpoint("run/checkpoints")])
    trainer.fit(train_loader, val_loader, epochs=10)

`fit(..., epochs=N)` trains until N epochs have completed *in total*, so after `restore(...)` of a
checkpoint taken at epoch k it runs the remaining N − k, and the result is bit-identical to an
uninterrupted run: the checkpoint holds weights, buffers, optimizer state, the schedule position, the
loader's position, every random generator (the trainer's `rngs` and any Generator a layer holds) and the
convolution algorithm chosen for each shape (`kernels.conv_algorithm`), which a resume adopts whatever its
own STRIATE_CONV_ALGO says.

Data-parallel (`comm`, an MPI communicator from `distributed.world()`): every rank trains on its part of
each global batch (a sharded loader); after the backward pass the gradients are averaged over the global
batch (`distributed.GradientAverager`), so every rank takes the same step. Rank 0's weights and state are
broadcast when training starts (a resume on rank 0 reaches every rank), BatchNorm's running statistics at
the end of each epoch, and validation is split over the ranks and summed. Logs hold global numbers, so
callbacks decide alike on every rank; only callbacks given to rank 0 write anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterable

import numpy as np

from ..kernels import keyed_random
from ..kernels.conv_algorithm import check_conv_algorithms, conv_algorithms, load_conv_algorithms
from ..nn.module import Module
from ..optim.schedules import Scheduler
from . import inference
from .callbacks import Callback
from .callbacks.progress import with_progress
from .data_parallel import DataParallel
from .tta import check


def _model_generators(model: Module) -> dict[str, np.random.Generator]:
    """Every np.random.Generator held as an attribute by a layer of `model` (dropout masks, stochastic
    depth, fractional pooling), by 'layer.attribute' name."""
    found = {}
    for name, m in model.named_modules():
        for attr, value in vars(m).items():
            if isinstance(value, np.random.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


def _say(text: str) -> None:
    """A line on stderr from a signal handler. After SIGHUP the terminal may be gone (a write fails with EIO):
    stderr then goes to /dev/null, so that no later write (the bar, the interpreter's last flush) fails."""
    try:
        os.write(2, text.encode())
    except OSError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)


class Trainer:
    """Trains `model` with `loss` (a striate Loss: `loss(scores, labels) -> float`, `loss.backward()`)
    and `optimizer` (`step()`, `zero_grad()`, `lr`, `state_dict()`).

    - `schedule`: f(t) -> lr of the iteration t = 0, 1, …; applied before each step.
    - `penalty`: optional weight penalty (`st.nn.l2(reg)`): its value is added to the loss, its
      gradient to the weights.
    - `rngs`: extra named generators whose state goes into checkpoints (e.g. the augmentation's).
    - `tta`: test-time augmentation for `evaluate` and `predict_scores` ("none", "flip", "flip-translate[:P]" or
      "dropout:N", see `tta.py`).
    - `comm`: the processes of a data-parallel run (`distributed.world()`; None: this process alone).
    - `progress`: add a `Progress` callback if none is given (None: only in a notebook, and not data-parallel).

    State: `epoch` (completed epochs), `batch` (completed batches of the current epoch), `iteration`
    (optimizer steps), `stop_training`, `stop_reason`, `diverged` (set by the explosion guard; stays set,
    and nothing is checkpointed, until `restore`), `interrupted` (the signal number)."""

    def __init__(self, model: Module, loss, optimizer, schedule=None, callbacks: Iterable[Callback] = (),
                 penalty=None, rngs: dict[str, np.random.Generator] | None = None, eval_batch_size: int = 500,
                 tta: str = "none", comm=None, progress: bool | None = None):
        from ..distributed.comm import Single

        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.comm = Single() if comm is None else comm
        self._parallel = DataParallel(self) if self.comm.size > 1 else None
        self._keys = None  # the current batch's (seed, epoch, batch, sample ids) in a keyed loader
        self.tta = check(tta)  # an unknown mode fails here, not at the first evaluation
        self.schedule, self.penalty = schedule, penalty
        self.scheduler: Scheduler | None = None
        self.step_lr: float | None = None  # the learning rate of the last step
        self.rngs = dict(rngs or {})
        self.eval_batch_size = int(eval_batch_size)
        callbacks = with_progress(list(callbacks), False if progress is None and self.comm.size > 1 else progress)
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback instances, got {type(cb).__name__}")
            cb.set_trainer(self)
        self.epoch = self.batch = self.iteration = 0
        self.epochs = 0
        self.stop_training, self.stop_reason = False, None
        self.diverged, self.interrupted = False, None
        self.train_data = self.val_data = None
        self.last_size = 0  # samples in the last step (the global batch in a data-parallel run)
        self.last_batch = None  # the last (x, y) trained on: the explosion guard's check before a checkpoint
        self._sums = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        self._pending_loader_state = None
        self._restored = False  # a checkpoint was loaded: fit must put the loader where it was
        self._signal = self._agreed = None

    # ----- callbacks ----------------------------------------------------------------------
    def _call(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def callback(self, kind: type) -> Callback | None:
        """The first callback of type `kind`, or None."""
        return next((cb for cb in self.callbacks if isinstance(cb, kind)), None)

    # ----- signals ------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        """The first Ctrl-C / SIGTERM / SIGHUP stops after the current step (the checkpoint is saved); a second
        one exits at once (the last checkpoint stays loadable: every save is atomic)."""
        name = signal.Signals(signum).name
        if self._signal is not None:
            _say(f"\n{name} again: stopping at once\n")
            os._exit(128 + signum)
        self._signal = signum
        if self.comm.is_root:  # one voice: in an MPI run the other ranks got the same signal from the launcher
            _say(f"\n{name}: finishing this step and saving a checkpoint (again to stop at once)\n")

    def _stopping(self) -> int | None:
        """The signal that stops training: this process's own, or in a data-parallel run the one the ranks
        agreed on in the last step's sum (each rank's own arrives at another moment; they must stop together)."""
        return self._signal if self._parallel is None else self._agreed

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        hangup = getattr(signal, "SIGHUP", None)  # a closed terminal or a lost ssh session (none on Windows)
        if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:  # under nohup it stays ignored
            previous[hangup] = signal.signal(hangup, self._on_signal)
        return previous

    @staticmethod
    def _restore_signals(previous):
        for s, handler in previous.items():
            signal.signal(s, handler)

    # ----- the loop -----------------------------------------------------------------------
    def lr(self) -> float | None:
        return float(self.optimizer.lr) if hasattr(self.optimizer, "lr") else None

    def _scheduler(self) -> Scheduler | None:
        """The one owner of the learning rate: `optim.Scheduler` sets `optimizer.lr = schedule(t)` for the
        coming step t = `iteration` (made when training starts, and again after a restore)."""
        if self.schedule is None:
            return None
        if self.scheduler is None or self.scheduler.schedule is not self.schedule or self.scheduler.t != self.iteration:
            self.scheduler = Scheduler(self.optimizer, self.schedule, last_step=self.iteration)
        return self.scheduler

    def train_step(self, x, y) -> tuple[float, float]:
        """One optimizer step on a batch; returns (loss, batch accuracy) — of the global batch in a
        data-parallel run, whose size is then `last_size`."""
        scheduler = self._scheduler()
        self.step_lr = self.lr()
        self.optimizer.zero_grad()
        n, loss, correct = len(y), 0.0, 0
        if n:  # a rank's part of a short last batch may be empty: it adds nothing but takes the step
            keys = keyed_random.scope(*self._keys) if self._keys is not None else contextlib.nullcontext()
            with keys:
                scores = self.model.forward(x)
            loss = self.loss(scores, y)
            if getattr(self.loss, "reduction", "mean") == "sum":  # logged, guarded, averaged: the per-sample mean
                loss /= n
            wanted = self.model.requires_input_grad
            self.model.requires_input_grad = False  # d(loss)/d(images) is never used: skip the first layer's dx
            try:
                self.model.backward(self.loss.backward())
            finally:
                self.model.requires_input_grad = wanted
            correct = int(np.count_nonzero(scores.argmax(axis=1) == y))
        elif self._parallel is not None:
            self._parallel.idle_step()
        if self._parallel is not None:
            n, loss, correct, stop = self._parallel.finish_step(n, loss, correct, self._signal is not None)
            if stop:  # a rank was interrupted: every rank stops after this same step
                self._agreed = self._signal or signal.SIGTERM
        self.last_size = n
        if self.penalty is not None:
            loss += self.penalty.value(self.model)
            self.penalty.backward(self.model)
        self.optimizer.step()
        self.iteration += 1
        if scheduler is not None:
            scheduler.step()
        return float(loss), correct / n if n else 0.0

    def fit(self, train, val=None, epochs: int = 1) -> dict:
        """Train until `epochs` epochs have completed in total; returns the last epoch's logs.

        `train` is an iterable of (x, y) batches re-iterated each epoch (a DataLoader); `val` is a
        loader or an (images, labels) pair of float arrays. Ctrl-C or SIGTERM stop after the current
        step: callbacks get `on_interrupt` (the checkpoint is saved) and `interrupted` is set."""
        self.epochs = int(epochs)
        self.train_data, self.val_data = train, val
        self.stop_training, self.stop_reason, self.interrupted = False, None, None
        if self._restored and hasattr(train, "load_state_dict"):
            if self._pending_loader_state is None:
                from .checkpoint import CheckpointError

                raise CheckpointError("the checkpoint holds no data-loader position (its 'loader' state is empty): "
                                      "resuming it would start a fresh shuffle, not continue exactly; restore it "
                                      "with weights_only=True to start a new run from its weights")
            train.load_state_dict(self._pending_loader_state)
        self._pending_loader_state, self._restored = None, False
        if self._parallel is not None:
            self._parallel.start(train)
        previous = self._install_signals()
        self._signal = self._agreed = None
        logs: dict = {}
        try:
            self._call("on_train_begin")
            while self.epoch < self.epochs and not self.stop_training:
                logs = self._run_epoch(train, val)
                if self._stopping() is not None:
                    break
            if self._stopping() is not None and not self.diverged:
                self.interrupted = self._stopping()
                where = f"epoch {self.epoch + 1}, step {self.batch}" if self.batch else f"the end of epoch {self.epoch}"
                self.stop_reason = f"interrupted by {signal.Signals(self.interrupted).name} at {where}"
                self._call("on_interrupt", logs)  # the checkpoint is saved; a second signal here exits at once
        finally:
            self._restore_signals(previous)
        self._call("on_train_end", logs)
        return logs

    def _run_epoch(self, train, val) -> dict:
        epoch = self.epoch
        if self.batch == 0:
            self._sums = {"loss": 0.0, "correct": 0, "seen": 0, "time": 0.0}
        self._call("on_epoch_begin", epoch)
        self.model.train()
        sums = self._sums
        total = len(train) if hasattr(train, "__len__") else None
        start = time.perf_counter()
        batches = iter(train)
        try:
            for x, y in batches:
                self._keys = getattr(train, "keys", None)
                loss, acc = self.train_step(x, y)
                self.last_batch = (x, y)
                n = self.last_size
                sums["loss"] += loss * n
                sums["correct"] += int(round(acc * n))
                sums["seen"] += n
                logs = {"loss": loss, "accuracy": acc, "lr": self.step_lr, "size": n, "iteration": self.iteration}
                self.batch += 1
                self._call("on_batch_end", self.batch - 1, logs)
                # a signal on the epoch's last batch lets the epoch finish (and be checkpointed) normally
                last = total is not None and self.batch >= total
                if self.stop_training or (self._stopping() is not None and not last):
                    return logs if self.diverged else self._epoch_logs(partial=True)
        finally:
            sums["time"] += time.perf_counter() - start
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # lets a loader settle its position before anyone saves it
        logs = self._epoch_logs()
        if self._parallel is not None:
            self._parallel.share_buffers()
        if val is not None:
            v = self.evaluate(val)
            logs["val_loss"], logs["val_accuracy"] = v["loss"], v["accuracy"]
        self.epoch += 1
        self.batch = 0
        self._call("on_epoch_end", epoch, logs)
        return logs

    def _epoch_logs(self, partial: bool = False) -> dict:
        s = self._sums
        seen = max(s["seen"], 1)
        logs = {"loss": s["loss"] / seen, "accuracy": s["correct"] / seen, "lr": self.step_lr, "time": s["time"]}
        if partial:
            logs["partial"] = True
        return logs

    # ----- evaluation ---------------------------------------------------------------------
    def predict_scores(self, x: np.ndarray) -> np.ndarray:
        """Class scores (N, C) in eval mode without caches, batch by batch (with the trainer's TTA)."""
        return inference.scores(self.model, x, self.eval_batch_size, self.tta)

    def evaluate(self, data, keep: bool = False) -> dict:
        """Mean loss and accuracy on `data` (a loader or an (images, labels) pair) in eval mode, with the
        trainer's loss and TTA; with `keep`, every sample's `scores` and `labels` too (see `inference`).
        In a data-parallel run an (images, labels) pair is split over the ranks (without `keep`)."""
        if self._parallel is None or keep or not isinstance(data, tuple | list):
            return inference.evaluate(self.model, self.loss, data, self.eval_batch_size, self.tta, keep=keep)
        return self._parallel.evaluate(data)

    # ----- state --------------------------------------------------------------------------
    def _all_rngs(self) -> dict[str, np.random.Generator]:
        rngs = {f"model/{k}": g for k, g in _model_generators(self.model).items()}
        rngs.update({f"trainer/{k}": g for k, g in self.rngs.items()})
        return rngs

    def _callback_keys(self) -> list[str]:
        keys, counts = [], {}
        for cb in self.callbacks:
            name = type(cb).__name__
            counts[name] = counts.get(name, 0) + 1
            keys.append(name if counts[name] == 1 else f"{name}{counts[name]}")
        return keys

    def state_dict(self) -> dict:
        """Everything but the weights: progress, optimizer, schedule, generators, loader, callbacks."""
        loader = self.train_data
        return {
            "progress": {"epoch": self.epoch, "batch": self.batch, "iteration": self.iteration,
                         "epochs": self.epochs, "sums": dict(self._sums)},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self._scheduler().state_dict() if self.schedule is not None else {"t": self.iteration},
            "rngs": {k: g.bit_generator.state for k, g in self._all_rngs().items()},
            "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
            "callbacks": {k: cb.state_dict() for k, cb in zip(self._callback_keys(), self.callbacks, strict=True)},
            "conv_algorithms": conv_algorithms(),
        }

    REQUIRED_STATE = ("progress", "optimizer", "schedule", "rngs", "loader", "callbacks")
    # a checkpoint without "conv_algorithms" predates the choice of algorithm: every convolution was im2col
    PRE_CHOICE_ALGORITHMS = {"mode": "im2col", "choices": {}}

    def load_state_dict(self, state: dict) -> Trainer:
        """Everything `state_dict` saved, checked first: an incomplete state is refused whole, so a resume
        either continues exactly or does not start."""
        from .checkpoint import CheckpointError

        missing = [k for k in self.REQUIRED_STATE if not isinstance(state, dict) or k not in state]
        if missing:
            raise CheckpointError(f"checkpoint state lacks {', '.join(repr(k) for k in missing)}: it cannot be "
                                  "resumed exactly (a checkpoint written by Trainer holds "
                                  f"{', '.join(self.REQUIRED_STATE)})")
        not_tables = [k for k in ("rngs", "callbacks") if not isinstance(state[k], dict)]
        if not_tables:
            key = not_tables[0]
            raise CheckpointError(f"checkpoint state {key!r} is malformed: {state[key]!r:.60} is not a table")
        try:
            p = state["progress"]
            epoch, batch, iteration = int(p["epoch"]), int(p["batch"]), int(p["iteration"])
            sums = dict(p.get("sums") or self._sums)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint state 'progress' is malformed: {e!r}") from None
        schedule_t = state["schedule"].get("t") if isinstance(state["schedule"], dict) else None
        if schedule_t != iteration:
            raise CheckpointError(f"checkpoint state 'schedule' is at step {schedule_t!r}, its progress at "
                                  f"iteration {iteration}: the two must agree")
        rngs = self._all_rngs()
        missing = sorted(set(state["rngs"]) - set(rngs))
        if missing:
            raise CheckpointError(f"checkpoint holds generator states for {missing}, which this trainer does not have")
        absent = sorted(set(rngs) - set(state["rngs"]))
        if absent:
            raise CheckpointError(f"checkpoint holds no state for the generators {absent}: resuming would not be exact")
        algorithms = state.get("conv_algorithms", self.PRE_CHOICE_ALGORITHMS)
        try:
            check_conv_algorithms(algorithms)
        except ValueError as e:
            raise CheckpointError(f"checkpoint state 'conv_algorithms': {e}") from None
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise CheckpointError(f"checkpoint state 'optimizer' does not fit this optimizer: {e}") from None
        self.epoch, self.batch, self.iteration, self._sums = epoch, batch, iteration, sums
        self.scheduler = None  # the schedule this trainer was given resumes at step `iteration`
        saved, part = state["callbacks"], "rngs"
        try:  # a damaged part is one CheckpointError naming it (the trainer is not used after a refused resume)
            for k, s in state["rngs"].items():
                part = f"rngs/{k}"
                rngs[k].bit_generator.state = s
            for key, cb in zip(self._callback_keys(), self.callbacks, strict=True):
                if key in saved:
                    part = f"callbacks/{key}"
                    cb.load_state_dict(saved[key])
        except (AttributeError, TypeError, KeyError, ValueError, IndexError) as e:
            raise CheckpointError(f"checkpoint state {part!r} is malformed ({type(e).__name__}: {e})") from None
        self._pending_loader_state, self._restored = state["loader"], True
        load_conv_algorithms(algorithms)  # the original run's algorithm for every shape it met, and its mode
        self.diverged = False
        return self

    def restore(self, checkpoint, tag: str = "last", weights_only: bool = False) -> Trainer:
        """Load a `Checkpoint` (from `CheckpointStore.load`), or checkpoint `tag` of a checkpoint directory:
        weights into the model, the rest into the trainer (the loader's position is applied by `fit`).
        `weights_only=True` takes only the weights and starts training afresh from them."""
        if isinstance(checkpoint, str | os.PathLike):
            from .checkpoint import CheckpointStore

            checkpoint = CheckpointStore(checkpoint).load(tag)
        if not weights_only:  # check the state before touching the model: a refused resume changes nothing
            from .checkpoint import CheckpointError

            missing = [k for k in self.REQUIRED_STATE if k not in checkpoint.state]
            if missing:
                raise CheckpointError(f"checkpoint {checkpoint.path} lacks {', '.join(repr(k) for k in missing)} in "
                                      "its state: it cannot be resumed exactly (restore it with weights_only=True "
                                      "to start from its weights)")
        self.model.load_state_dict(checkpoint.weights)
        return self if weights_only else self.load_state_dict(checkpoint.state)
