"""Progress in a notebook, the fastprogress way: ONE HTML output updated in place through an IPython display
handle — a bar with the epoch's step, its ETA and the running loss and accuracy, above a table that grows by
one row per epoch. No ipywidgets, nothing else in the cell erased (never `clear_output`), and few updates:
the bar is redrawn at most `BAR_UPDATES` times per fit (spread over all its steps) and never twice within
`FLOOR` seconds; each epoch's end adds its row at once. A fit thus makes about `BAR_UPDATES` + epochs + 2
output messages however many steps it takes. (A loader without a length: in the first epoch the pause
between redraws grows with the fit's age, then the first epoch's length stands for every epoch's.)

IPython is imported here only, and only once a kernel has been detected (`console.in_notebook`).
"""

from __future__ import annotations

import html
import time

from ... import console, markup

BAR_UPDATES = 24  # bar redraws per fit, whatever its number of steps
FLOOR = 0.5  # seconds between two bar redraws at least

_COLUMNS = (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc"),
            ("lr", "lr"), ("time", "time"))


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if "accuracy" in key:
        return markup.percent(value)
    if key == "lr":
        return f"{value:.3g}"
    if key == "time":
        return markup.duration(value)
    return f"{value:.4f}"


def epoch_table(rows: list[tuple[int, dict]]) -> str:
    """The report's table (`markup.table`) of (epoch counted from 1, epoch logs) rows; a column per metric
    any row has."""
    keys = [(k, label) for k, label in _COLUMNS if any(logs.get(k) is not None for _, logs in rows)]
    header = ["epoch"] + [label for _, label in keys]
    cells = [[epoch] + [_cell(k, logs.get(k)) for k, _ in keys] for epoch, logs in rows]
    return markup.table(header, cells, numeric=set(range(len(header))), attrs=" style='width:auto'")


def bar(done: int, total: int | None, text: str) -> str:
    """A plain HTML `<progress>` bar (`done` of `total`; indeterminate without a total) and a line of text."""
    value = f" value='{done}' max='{total}'" if total else ""
    return (f"<div style='display:flex;align-items:center;gap:.6em'><progress{value} style='width:300px'>"
            f"</progress><span style='font-family:monospace;white-space:pre'>{html.escape(text)}</span></div>")


class ProgressDisplay:
    """One display handle for a whole fit. `epoch_begin`, `step` (throttled), `epoch_end`, `finish(note)`;
    `updates` counts the output messages sent (the first display included)."""

    def __init__(self, epochs: int, first_epoch: int, steps_per_epoch: int | None):
        from IPython.display import HTML, display  # a kernel was detected: IPython is there

        self._html = HTML
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        fit_steps = steps_per_epoch * max(epochs - first_epoch, 1) if steps_per_epoch else None
        self.every = max(1, -(-fit_steps // BAR_UPDATES)) if fit_steps else 1  # ceil: steps between redraws
        self._sized = fit_steps is not None  # the number of steps is known (else learnt from the first epoch)
        self.rows: list[tuple[int, dict]] = []
        self.epoch, self.done, self.start_batch = first_epoch, 0, 0
        self.line = f"epoch {first_epoch + 1}/{epochs}: starting"
        self.note = ""
        self._fit_start = self._epoch_start = self._last = time.monotonic()
        self._last_done = 0
        self.handle = display(self._html(self._page()), display_id=True)
        self.updates = 1

    def _page(self) -> str:
        parts = [bar(self.done, self.steps_per_epoch, self.line)]
        if self.note:
            parts.append(f"<p class='meta'>{html.escape(self.note)}</p>")
        if self.rows:
            parts.append(epoch_table(self.rows))
        return markup.fragment(parts)  # the report's scoped style sheet: it styles this output only

    def _show(self) -> None:
        self.handle.update(self._html(self._page()))
        self.updates += 1
        self._last = time.monotonic()

    def epoch_begin(self, epoch: int, batch: int) -> None:
        """No redraw: the next step's redraw shows the new epoch."""
        self.epoch, self.done, self.start_batch = epoch, batch, batch
        self._epoch_start, self._last_done = time.monotonic(), batch

    def step(self, done: int, running: str) -> None:
        """`done` steps of the epoch are complete; `running`: the epoch's running loss and accuracy."""
        self.done = done
        now = time.monotonic()
        floor = FLOOR if self._sized else max(FLOOR, (now - self._fit_start) / BAR_UPDATES)
        if done - self._last_done < self.every or now - self._last < floor:
            return
        self._last_done = done
        total = self.steps_per_epoch
        where = f"step {done}/{total}" if total else f"step {done}"
        eta = ""
        if total:
            elapsed = now - self._epoch_start
            left = elapsed / max(done - self.start_batch, 1) * (total - done)
            eta = f"  {console.duration(elapsed)} elapsed, {console.duration(left)} left"
        self.line = f"epoch {self.epoch + 1}/{self.epochs}  {where}{eta}  {running}"
        self._show()

    def epoch_end(self, epoch: int, logs: dict) -> None:
        self.rows.append((epoch + 1, dict(logs)))
        if not self._sized and self.done > self.start_batch:
            self._sized = True
            left = (self.done - self.start_batch) * max(self.epochs - epoch - 1, 1)
            self.every = max(1, -(-left // BAR_UPDATES))
        if self.steps_per_epoch:
            self.done = self.steps_per_epoch
        self.line = f"epoch {epoch + 1}/{self.epochs}  done in {console.duration(logs.get('time', 0.0))}"
        self._show()

    def finish(self, note: str | None) -> None:
        """The last redraw: why training stopped, when it did not simply run its epochs."""
        if note:
            self.note = note
            self._show()
