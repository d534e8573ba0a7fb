"""Search results: a table (best first) of every trial of every stage, results.csv, and search_report.html
in the run report's style, with val accuracy against each hyperparameter (log axes for log dimensions: the
notes' random-vs-grid picture), the optimisation history and the loss curves of the top trials across the
stages, and Optuna's own plots for each stage (the figures are in `figures.py`; embedded PNG)."""

from __future__ import annotations

import csv
import html
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..markup import Displayed
from ..markup import table as html_table
from .space import Space
from .spec import SearchSpec


@dataclass
class Row:
    stage: int
    number: int
    params: dict
    value: float | None  # best val accuracy (complete trials)
    epochs: int
    seconds: float
    status: str  # complete, pruned, diverged, error, interrupted, died, running
    reason: str | None
    curve: list = field(default_factory=list)
    intermediate: dict = field(default_factory=dict)  # epoch → val accuracy reported to the pruner
    config_error: bool = False  # failed on a bad configuration (a ConfigError), not in training


def collect(spec: SearchSpec, storage) -> tuple[list[Row], list[Space | None]]:
    """Every trial of every stage that exists in `storage`, and each stage's recorded space."""
    import optuna

    from .runner import study_name

    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    rows, spaces = [], []
    for stage in range(len(spec.stages)):
        name = study_name(spec, stage)
        if name not in names:
            spaces.append(None)
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        spaces.append(Space.from_description(attrs["space"]) if "space" in attrs else None)
        for t in study.get_trials(deepcopy=False):
            a = t.user_attrs
            state = t.state.name
            recorded = a.get("status")
            if state == "RUNNING":
                status = "running"
            elif state == "FAIL" and recorded in (None, "complete", "pruned"):
                # failed by the heartbeat check: its worker stopped mid-trial (perhaps after recording its
                # own status, before telling the study): the stored state is the truth
                status = "died"
            else:
                status = recorded or state.lower()
            reason = a.get("reason")
            if status == "died":
                reason = f"worker {a.get('worker', '?')} stopped sending heartbeats (killed or lost)"
            rows.append(Row(stage + 1, t.number, dict(t.params), t.value if state == "COMPLETE" else None,
                            int(a.get("epochs", 0)), float(a.get("seconds", 0.0)), status, reason,
                            a.get("curve", []), dict(t.intermediate_values), bool(a.get("config_error"))))
    return rows, spaces


def ranked(rows: list[Row]) -> list[Row]:
    """Best first: completed trials by value (later stages first on ties), then the rest by stage/number."""
    def key(r: Row):
        done = r.value is not None and math.isfinite(r.value)
        return (0, -r.value, -r.stage, r.number) if done else (1, 0.0, r.stage, r.number)
    return sorted(rows, key=key)


def best(rows: list[Row], stage: int | None = None) -> Row | None:
    """The best completed trial (of the last stage that has one, unless `stage` is given)."""
    done = [r for r in rows if r.value is not None]
    if stage is None and done:
        stage = max(r.stage for r in done)
    done = [r for r in done if r.stage == stage]
    return ranked(done)[0] if done else None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: list[Row], names: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["stage", "trial", *names, "val_acc", "epochs", "time_s", "status"]
    body = []
    for r in ranked(rows):
        body.append([str(r.stage), str(r.number), *[_fmt(r.params.get(n, "")) for n in names],
                     "" if r.value is None else f"{100 * r.value:.2f}%", str(r.epochs), f"{r.seconds:.1f}", r.status])
    return header, body


def format_table(rows: list[Row], names: list[str]) -> str:
    header, body = table(rows, names)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(lines)


def write_csv(rows: list[Row], names: list[str], path: Path) -> None:
    """results.csv, written atomically (a reader never sees half a table)."""
    from ..atomic import write_atomic

    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["stage", "trial", *names, "val_accuracy", "epochs", "seconds", "status", "reason"])
    for r in ranked(rows):
        w.writerow([r.stage, r.number, *[r.params.get(n, "") for n in names],
                    "" if r.value is None else r.value, r.epochs, r.seconds, r.status, r.reason or ""])
    write_atomic(path, buf.getvalue())


class Results(Displayed, list):
    """Every trial of a search, best first (`Row`s), and the hyperparameters' `names`: what `results` returns,
    displayed as the best trials (the first SHOWN rows of `striate search`'s table) under the headline."""

    SHOWN = 10

    def __init__(self, rows: list[Row], names: list[str]):
        super().__init__(ranked(rows))
        self.names = list(names)

    @property
    def best(self) -> Row | None:
        return best(self)

    def _text(self) -> str:
        b = self.best
        head = (f"{len(self)} trials, {sum(r.status == 'complete' for r in self)} completed; best: "
                + ("none" if b is None else f"stage {b.stage} trial {b.number}, val accuracy {100 * b.value:.2f}% "
                   f"({', '.join(f'{k} = {_fmt(v)}' for k, v in b.params.items())})"))
        lines = format_table(self[:self.SHOWN], self.names).splitlines()
        more = [f"… {len(self) - self.SHOWN} more trials (results.txt)"] if len(self) > self.SHOWN else []
        return "\n".join([head, *lines, *more])

    def _html(self) -> list[str]:
        header, cells = table(self[:self.SHOWN], self.names)
        shown = f"the best {self.SHOWN} of {len(self)} trials" if len(self) > self.SHOWN else "every trial, best first"
        b = self.best
        return [_headline(self), f"<p class='meta'>{shown}</p>",
                html_table(header, cells, row_classes=["best" if r is b else "" for r in self[:self.SHOWN]])]


def results(directory, storage: str | None = None) -> Results:
    """The trials of the search in `directory` (its search.json, and its study: `storage`, default the
    directory's study.db), best first; `st.search.results("searches/cifar")` in a notebook shows the best."""
    from .spec import SearchSpec
    from .storage import default_storage, open_storage

    directory = Path(directory)
    spec = SearchSpec.from_json((directory / "search.json").read_text())
    rows, spaces = collect(spec, open_storage(storage or default_storage(directory), spec))
    space = next((sp for sp in spaces if sp is not None), spec.space)
    return Results(rows, space.names)


# ----- the page --------------------------------------------------------------------------------
def studies(spec: SearchSpec, storage) -> list:
    """(stage, Optuna study) for every stage that exists in `storage`."""
    import optuna

    from .runner import study_name

    names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    return [(i + 1, optuna.load_study(study_name=study_name(spec, i), storage=storage))
            for i in range(len(spec.stages)) if study_name(spec, i) in names]


def _headline(rows: list[Row]) -> str:
    from ..markup import card, duration, headline_row

    b = best(rows)
    counts = {s: sum(r.status == s for r in rows) for s in ("complete", "pruned", "diverged", "error", "died")}
    detail = ", ".join(f"{n} {s}" for s, n in counts.items() if n and s != "complete")
    cards = [card("best", "best val accuracy", "–" if b is None else f"{100 * b.value:.2f} %",
                  "" if b is None else f"stage {b.stage}, trial {b.number}", "finished" if b else ""),
             card("trials", "trials completed", f"{counts['complete']} of {len(rows)}", detail),
             card("time", "trial time", duration(sum(r.seconds for r in rows)), "summed over the trials")]
    return headline_row(cards)


def write_html(rows: list[Row], spec: SearchSpec, spaces: list, path: Path, stage_studies: list = ()) -> None:
    """search_report.html in the run report's style: the best trial, our figures across the stages, Optuna's
    own for each stage's study (`stage_studies`: [(stage, study)]), and the table of every trial."""
    from ..report.style import figure, write_page
    from . import figures as F

    space = next((s for s in spaces if s is not None), spec.space)
    names = space.names
    title = f"striate search {spec.name}"
    stages = "; ".join(f"stage {i + 1}: {s.trials} trials × {s.epochs} epoch{'s' if s.epochs != 1 else ''}"
                       + (f", narrowed to the {s.narrow}" if s.narrow else "") for i, s in enumerate(spec.stages))
    body = [f"<h1>{html.escape(title)}</h1>", f"<p class='sub'>{len(rows)} trials · {html.escape(stages)}</p>",
            _headline(rows)]
    b = best(rows)
    if b is not None:
        body.append(f"<p><b>best</b>: stage {b.stage} trial {b.number}, val accuracy {100 * b.value:.2f}%: "
                    f"{html.escape(', '.join(f'{k} = {_fmt(v)}' for k, v in b.params.items()))}</p>")
    for i, sp in enumerate(spaces):
        if sp is not None:
            body.append(f"<p class='meta'>stage {i + 1} space: {html.escape(str(sp))}</p>")
    body.append("<h2>All stages</h2><div class='grid'>")
    body += [figure(f"scatter_{n}", F.png(F.scatter(rows, space, n)), f"val accuracy vs {n}: each trial (red ×: "
                    "failed or pruned)") for n in names]
    body.append(figure("history", F.png(F.history(rows)), "optimisation history: every trial in order, the stages "
                       "one after the other, and the best so far"))
    body.append(figure("curves", F.png(F.curves(rows, ranked(rows))), "loss curves of the top trials"))
    body.append("</div>")
    for stage, study in stage_studies:
        body.append(f"<h2>Stage {stage}: Optuna's plots</h2><div class='grid'>")
        for kind, caption in F.OPTUNA_PLOTS:
            fig, why = F.optuna_figure(study, kind)
            if fig is None:
                body.append(f"<figure id='optuna_{kind}_{stage}'><p class='meta'>{html.escape(caption)}: not drawn "
                            f"({html.escape(why)})</p></figure>")
            else:
                body.append(figure(f"optuna_{kind}_{stage}", F.png(fig), f"{caption} (Optuna)", wide=kind == "slice"))
        body.append("</div>")
    header, cells = table(rows, names)
    body.append("<h2>All trials, best first</h2><table class='v' id='trials'><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "<th>reason</th></tr>")
    for r, row in zip(ranked(rows), cells, strict=True):
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                    + f"<td>{html.escape(r.reason or '')}</td></tr>")
    body.append("</table>")
    write_page(path, title, body)


def write_all(spec: SearchSpec, storage, directory: Path) -> tuple[list[Row], str]:
    """results.csv, results.txt and search_report.html in `directory`; returns (rows, the text table)."""
    from ..atomic import write_atomic

    rows, spaces = collect(spec, storage)
    names = spec.space.names
    text = format_table(rows, names)
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(rows, names, directory / "results.csv")
    write_atomic(directory / "results.txt", text + "\n")
    try:
        write_html(rows, spec, spaces, directory / "search_report.html", studies(spec, storage))
    except ImportError as e:  # matplotlib is missing: the table is still there
        print(f"search_report.html not written: {e} (pip install 'striate[search]')", file=sys.stderr)
    return rows, text
