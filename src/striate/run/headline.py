"""A run directory's notebook displays (`RunDir`'s repr, IPython's pretty printer and `_repr_html_`): what was
trained and the headline numbers of its report — status, best validation accuracy and its epoch, test
accuracy, epochs run — drawn by the report's own pieces (`report.header`), from the run's files as they are
now (a run still training shows its history's numbers)."""

from __future__ import annotations

import html
import re

from ..markup import percent
from ..report.header import current_summary, effective_config, headline, subtitle


def _read(run) -> tuple[dict | None, dict, list[dict]]:
    """(summary.json or None, the effective configuration, the epoch records); a damaged file reads as absent."""
    from ..diagnose.curves import load_history
    from ..train.json_files import DamagedFile

    epochs: list[dict] = []
    if run.metrics_file.is_file():
        try:
            epochs = load_history(run.metrics_file)[1]
        except (OSError, DamagedFile):
            epochs = []
    return run.read_json(run.SUMMARY), effective_config(run.read_json(run.CONFIG_JSON)), epochs


def text(run) -> str:
    """'RunDir('runs/x'): finished', what was trained, then the numbers, one line each."""
    head = f"RunDir({str(run.path)!r})"
    if not run.path.is_dir() or not (run.is_run() or run.metrics_file.is_file()):
        return head + ": not a run directory (yet)"
    summary, config, epochs = _read(run)
    s = current_summary(summary, epochs)
    lines = [f"{head}: {s.get('status') or '–'}"]
    what = re.sub(r"<[^>]+>", "", subtitle(config))
    if what:
        lines.append("  " + html.unescape(what))
    best, label = s.get("best_val_accuracy"), "best val accuracy"
    if best is None and s.get("best_train_accuracy") is not None:
        best, label = s["best_train_accuracy"], "best train accuracy"
    numbers = [f"{label} {percent(best)}" + ("" if s.get("best_epoch") is None else f" (epoch {s['best_epoch']})")]
    test = (s.get("test") or {}).get("accuracy")
    numbers.append(f"test accuracy {percent(test)}" if test is not None else "not evaluated on the test split")
    done, planned = s.get("epochs_completed"), config.get("epochs")
    numbers.append(f"{'–' if done is None else done}" + ("" if planned is None else f" of {planned}") + " epochs")
    lines.append("  " + " · ".join(numbers))
    return "\n".join(lines)


def html_parts(run) -> list[str]:
    """The report's title line, subtitle and headline cards (status, test and best val accuracy, parameters,
    MACs, wall time, epochs) for the run."""
    title = f"<h3>{html.escape(run.path.name or str(run.path))}</h3><p class='meta'>{html.escape(str(run.path))}</p>"
    if not run.path.is_dir() or not (run.is_run() or run.metrics_file.is_file()):
        return [title, "<p class='meta'>not a run directory (yet)</p>"]
    summary, config, epochs = _read(run)
    return [title, subtitle(config), headline(summary, config, epochs)]
