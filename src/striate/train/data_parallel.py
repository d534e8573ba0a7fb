"""The data-parallel side of a `Trainer` whose `comm` holds several ranks (`distributed.world()` under an MPI
launcher): every rank trains on its part of each global batch, and this keeps the ranks one run.

- `start`: rank 0's weights, buffers and trainer state on every rank (a fresh start, or rank 0's resume);
- `finish_step`: the global batch's mean gradient on every rank (`distributed.GradientAverager`), with the
  step's global loss, accuracy and stop flag, and rank 0's convolution algorithm table whenever it grows;
- `idle_step`: a rank without samples (a short last batch) still takes part in the synchronised BatchNorms'
  exchanges;
- `share_buffers`: rank 0's BatchNorm running statistics on every rank at each epoch's end;
- `evaluate`: an (images, labels) pair split over the ranks, the sums added.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.rows import Rows
from ..kernels.conv_algorithm import conv_algorithms, load_conv_algorithms
from . import inference
from .metrics import Evaluation


class DataParallel:
    def __init__(self, trainer):
        self.trainer, self.comm = trainer, trainer.comm
        self.averager = None
        self.root_choices = -1  # rank 0's count of convolution algorithm choices last adopted

    def start(self, train) -> None:
        """Every rank from rank 0's weights, buffers and trainer state (a fresh start or rank 0's resume)."""
        from ..distributed.gradients import GradientAverager

        t, root = self.trainer, self.comm.is_root
        state = self.comm.bcast({"weights": t.model.state_dict(), "trainer": t.state_dict()} if root else None)
        if not root:
            t.model.load_state_dict(state["weights"])
            t.load_state_dict(state["trainer"])
            if hasattr(train, "load_state_dict") and t._pending_loader_state is not None:
                train.load_state_dict(t._pending_loader_state)
            t._pending_loader_state, t._restored = None, False
        self.averager = GradientAverager(self.comm, t.model.parameters())

    def finish_step(self, n: int, loss: float, correct: int, signalled: bool) -> tuple[int, float, int, bool]:
        """This rank's step (n samples, mean loss, correct) → the global batch's (n, mean loss, correct) and
        whether any rank was interrupted; every rank's gradients are then the global mean (a summed loss's:
        the global sum)."""
        n, loss_sum, correct, stop, choices = self.averager.average(
            n, float(loss) * n, correct, signalled, len(conv_algorithms()["choices"]),
            summed=getattr(self.trainer.loss, "reduction", "mean") == "sum")
        if choices != self.root_choices:  # rank 0 chose algorithms for new shapes: every rank adopts them
            table = self.comm.bcast(conv_algorithms() if self.comm.is_root else None)
            if not self.comm.is_root:
                load_conv_algorithms(table)
            self.root_choices = choices
        return n, (loss_sum / n if n else 0.0), correct, stop

    def idle_step(self) -> None:
        """Take part in the synchronised BatchNorms' exchanges without samples: forward in the order the layers
        run, backward in reverse, for those a backward pass reaches (after the first trainable layer)."""
        synced, reached = [], False
        for m in self.trainer.model.modules():
            reached = reached or any(p.requires_grad for p in m._parameters.values())
            if hasattr(m, "idle_sync") and m.__dict__.get("comm") is not None and m.comm.size > 1:
                synced.append((m, reached))
        for m, _ in synced:
            m.idle_sync()
        for m, backward in reversed(synced):
            if backward:
                m.idle_sync(backward=True)

    def share_buffers(self) -> None:
        """Rank 0's BatchNorm running statistics on every rank (each rank's own batches moved its copy), as
        PyTorch's DDP does: what is evaluated and saved is the same everywhere."""
        model = self.trainer.model
        buffers = dict(model.named_buffers())
        if buffers:
            model.load_state_dict(self.comm.bcast(buffers if self.comm.is_root else None), strict=False)

    def evaluate(self, data) -> dict:
        """Mean loss and accuracy of an (images, labels) pair, each rank evaluating its part."""
        t = self.trainer
        part = np.array_split(np.arange(len(data[1])), self.comm.size)[self.comm.rank]
        x = data[0].take(part) if isinstance(data[0], Rows) else data[0][part]  # Rows: read per batch, not here
        mine = inference.evaluate(t.model, t.loss, (x, data[1][part]), t.eval_batch_size, t.tta)
        n = mine["count"]
        sums = np.array([mine["loss"] * n if n else 0.0, mine["accuracy"] * n if n else 0.0, n], np.float64)
        loss_sum, correct, count = self.comm.allreduce(sums).tolist()
        return Evaluation(loss=loss_sum / count if count else math.nan, count=int(count),
                          accuracy=correct / count if count else math.nan)
