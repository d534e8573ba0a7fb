"""Search results: a table (best first) of every trial of every stage, results.csv, and search_report.html
with val accuracy against each hyperparameter (log axes for log dimensions: the notes' random-vs-grid
picture), the optimisation history and the loss curves of the top trials (matplotlib Agg, embedded PNG)."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .space import Space
from .spec import SearchSpec

TOP_CURVES = 5


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
                            a.get("curve", []), dict(t.intermediate_values)))
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
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stage", "trial", *names, "val_accuracy", "epochs", "seconds", "status", "reason"])
        for r in ranked(rows):
            w.writerow([r.stage, r.number, *[r.params.get(n, "") for n in names],
                        "" if r.value is None else r.value, r.epochs, r.seconds, r.status, r.reason or ""])


# ----- figures ---------------------------------------------------------------------------------
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _scatter(rows: list[Row], space: Space, name: str) -> str:
    import matplotlib.pyplot as plt

    dim = space[name]
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    stages = sorted({r.stage for r in rows})
    for s in stages:
        done = [r for r in rows if r.stage == s and r.value is not None and name in r.params]
        failed = [r for r in rows if r.stage == s and r.value is None and name in r.params]
        xs = [r.params[name] for r in done]
        if not dim.numeric:
            xs = [str(x) for x in xs]
        ax.scatter(xs, [100 * r.value for r in done], s=18, label=f"stage {s}", alpha=0.8)
        if failed:
            fx = [r.params[name] if dim.numeric else str(r.params[name]) for r in failed]
            ax.scatter(fx, [0.0] * len(fx), marker="x", s=18, color="red",
                       label="failed / pruned" if s == stages[0] else None)
    if dim.numeric and dim.log:
        ax.set_xscale("log")
    ax.set_xlabel(name + (" (log)" if dim.log else ""))
    ax.set_ylabel("val accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _history(rows: list[Row]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    offset = 0
    best_so_far, xs_best, ys_best = -math.inf, [], []
    for s in sorted({r.stage for r in rows}):
        srows = sorted((r for r in rows if r.stage == s), key=lambda r: r.number)
        xs = [offset + r.number for r in srows if r.value is not None]
        ax.scatter(xs, [100 * r.value for r in srows if r.value is not None], s=14, label=f"stage {s}")
        for r in srows:
            if r.value is not None and r.value > best_so_far:
                best_so_far = r.value
            if best_so_far > -math.inf:
                xs_best.append(offset + r.number)
                ys_best.append(100 * best_so_far)
        offset += len(srows)
    ax.step(xs_best, ys_best, where="post", color="black", lw=1, label="best so far")
    ax.set_xlabel("trial (stages in order)")
    ax.set_ylabel("val accuracy (%)")
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _curves(rows: list[Row]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for r in [r for r in ranked(rows) if r.value is not None][:TOP_CURVES]:
        if r.curve:
            xs, ys = zip(*r.curve, strict=True)
            ax.plot(xs, ys, lw=1, label=f"stage {r.stage} trial {r.number} ({100 * r.value:.1f}%)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title(f"loss curves of the top {TOP_CURVES} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def write_html(rows: list[Row], spec: SearchSpec, spaces: list, path: Path) -> None:
    """search_report.html: the figures (embedded PNG) and the table."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    space = next((s for s in spaces if s is not None), spec.space)
    names = space.names
    parts = [f"<h1>striate search {html.escape(spec.name)}</h1>",
             f"<p>{len(rows)} trials; stages: "
             + "; ".join(f"{s.trials} trials × {s.epochs} epochs" + (f", narrow {s.narrow}" if s.narrow else "")
                         for s in spec.stages) + "</p>"]
    for i, sp in enumerate(spaces):
        if sp is not None:
            parts.append(f"<p>stage {i + 1} space: {html.escape(str(sp))}</p>")
    b = best(rows)
    if b is not None:
        parts.append(f"<p><b>best</b>: stage {b.stage} trial {b.number}, val accuracy {100 * b.value:.2f}%: "
                     f"{html.escape(', '.join(f'{k} = {_fmt(v)}' for k, v in b.params.items()))}</p>")
    parts.append("<h2>val accuracy vs each hyperparameter</h2><div>")
    for n in names:
        png = _scatter(rows, space, n)
        parts.append(f'<img alt="val accuracy vs {html.escape(n)}" src="data:image/png;base64,{png}">')
    parts.append("</div><h2>optimisation history</h2>")
    parts.append(f'<img alt="optimisation history" src="data:image/png;base64,{_history(rows)}">')
    parts.append("<h2>loss curves of the top trials</h2>")
    parts.append(f'<img alt="loss curves" src="data:image/png;base64,{_curves(rows)}">')
    header, body = table(rows, names)
    parts.append("<h2>all trials, best first</h2><table border=1 cellspacing=0 cellpadding=3><tr>"
                 + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "<th>reason</th></tr>")
    for r, cells in zip(ranked(rows), body, strict=True):
        parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                     + f"<td>{html.escape(r.reason or '')}</td></tr>")
    parts.append("</table>")
    doc = ("<!doctype html><html><head><meta charset='utf-8'><title>striate search</title>"
           "<style>body{font-family:sans-serif} img{margin:4px} td,th{font-size:12px}</style></head><body>"
           + "\n".join(parts) + "</body></html>\n")
    path.write_text(doc)


def write_all(spec: SearchSpec, storage, directory: Path) -> tuple[list[Row], str]:
    """results.csv, results.txt and search_report.html in `directory`; returns (rows, the text table)."""
    rows, spaces = collect(spec, storage)
    names = spec.space.names
    text = format_table(rows, names)
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(rows, names, directory / "results.csv")
    (directory / "results.txt").write_text(text + "\n")
    try:
        write_html(rows, spec, spaces, directory / "search_report.html")
    except ImportError as e:  # matplotlib is missing: the table is still there
        print(f"search_report.html not written: {e} (pip install 'striate[search]')", file=sys.stderr)
    return rows, text
