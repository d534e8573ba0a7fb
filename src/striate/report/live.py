"""`LiveCurves`: the report's training curves redrawn in a notebook while a fit runs, the fastprogress way —
one PNG shown through one IPython display handle and replaced in place at each epoch's end, so the cell
keeps one output however long the training (no `clear_output`: nothing else in the cell is erased; no
ipywidgets). Outside a notebook it draws nothing, so terminals and logs stay as they are.

The numbers are the ones the report draws, from the callbacks that already hold them: the trainer's
`History` (loss per iteration, loss and accuracy per epoch; a History of its own when the trainer has none)
and, when the trainer measures them (`Diagnostics` or `UpdateRatioMonitor`), the update-to-weight ratios.
The panels are `plots.draw_loss`, `plots.draw_accuracy` and `plots.draw_update_ratio`: the report's own
drawings. IPython is imported only when a notebook is detected."""

from __future__ import annotations

import time

from .. import console
from ..train.callbacks import Callback, History

PANEL_WIDTH, PANEL_HEIGHT = 4.4, 3.2  # inches per panel: two or three side by side fill a notebook's output


def ratio_records(trainer) -> list[dict]:
    """The update-to-weight ratio records the trainer's callbacks measure ([] when none does)."""
    from ..diagnose.callbacks import Diagnostics, UpdateRatioMonitor

    for cb in trainer.callbacks:
        if isinstance(cb, UpdateRatioMonitor):
            return cb.records
        if isinstance(cb, Diagnostics):
            return cb.ratios.records
    return []


def curves_png(iterations: list[dict], epochs: list[dict], ratios: list[dict] | None = None) -> bytes:
    """One PNG of the panels side by side: loss (train per iteration, validation per epoch, best epoch),
    accuracy (train and validation per epoch, best epoch) and, given ratio records, ‖ΔW‖/‖W‖ with the
    healthy band. Records as History's and UpdateRatioMonitor's."""
    from . import plots as P
    from .figure import new_figure

    panels = [lambda ax: P.draw_loss(ax, iterations, epochs), lambda ax: P.draw_accuracy(ax, epochs)]
    if ratios:
        panels.append(lambda ax: P.draw_update_ratio(ax, ratios))
    fig, axes = new_figure(PANEL_WIDTH * len(panels), PANEL_HEIGHT, 1, len(panels), left=0.7, right=0.2,
                           wspace=0.3, squeeze=False)
    for draw, ax in zip(panels, axes[0], strict=True):
        draw(ax)
    return P.png_bytes(fig)


class LiveCurves(Callback):
    """Loss, accuracy and update-ratio curves redrawn in place in a notebook at each epoch's end (after
    `min_interval` seconds at least since the last drawing; the last epoch is always drawn).

    `striate.run.execute` adds one in a notebook (`execute(run, live_curves=False)`: none). A `Trainer` you
    build yourself gets them from its callbacks::

        trainer = st.train.Trainer(net, loss, opt, callbacks=[st.train.callbacks.History(), LiveCurves()])

    Give the trainer a `Diagnostics` (or `UpdateRatioMonitor`) callback to see the update ratios too.
    `ratios=False` leaves them out. Outside a notebook (no kernel) nothing is drawn. `shown`: the drawings
    made in this fit (1 display, then updates of it)."""

    order = 105  # after the History, the diagnostics and checkpointing: the epoch just finished is in the records

    def __init__(self, ratios: bool = True, min_interval: float = 0.0):
        self.ratios = bool(ratios)
        self.min_interval = float(min_interval)
        self._history: History | None = None  # our own, when the trainer has none
        self._handle = None
        self._last = -float("inf")
        self._pending = False  # an epoch ended since the last drawing
        self._on = False
        self.shown = 0

    def on_train_begin(self):
        self._on = console.in_notebook()
        self._handle, self._pending, self.shown = None, False, 0
        self._history = None
        if self._on and self.trainer.callback(History) is None:
            self._history = History()
            self._history.set_trainer(self.trainer)
            self._history.on_train_begin()

    def on_batch_end(self, batch, logs):
        if self._history is not None:
            self._history.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs):
        if not self._on:
            return
        if self._history is not None:
            self._history.on_epoch_end(epoch, logs)
        self._pending = True
        if time.monotonic() - self._last >= self.min_interval:
            self._draw()

    def on_train_end(self, logs):
        if self._on and self._pending:  # the last epoch, when `min_interval` skipped it
            self._draw()

    def _draw(self) -> None:
        history = self._history or self.trainer.callback(History)
        try:
            from IPython.display import Image, display

            png = curves_png(history.iterations, history.epochs, ratio_records(self.trainer) if self.ratios else None)
        except Exception as error:  # a picture of the training must never be what stops it
            self._on = False
            console.note(f"warning: the live curves stopped ({type(error).__name__}: {error}); training goes on")
            return
        if self._handle is None:
            self._handle = display(Image(data=png, format="png"), display_id=True)
        else:
            self._handle.update(Image(data=png, format="png"))
        self._last, self._pending = time.monotonic(), False
        self.shown += 1

    def __repr__(self):
        return f"LiveCurves(ratios={self.ratios}, min_interval={self.min_interval:g})"
