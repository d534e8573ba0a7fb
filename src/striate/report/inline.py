"""`show(run)`: a run's report in a notebook, inline — the HTML of report.html with its figures embedded as
data: URIs (it needs no file beside the notebook, and survives the notebook being moved or shared), drawn from
the run's files as `striate report` draws it, without writing anything. `show([run_a, run_b])`: the page
comparing them (`striate report A B`).

The page is one `<div class='striate'>` with the report's style sheet scoped to it (`markup.fragment`, as
every notebook display of striate), not an iframe: an iframe needs a fixed height (its content cannot size it
without a script, which VS Code and untrusted notebooks do not run), while a div grows with the page and
renders alike in JupyterLab, Notebook 7 and VS Code, and the scoped rules restyle nothing else in the
notebook."""

from __future__ import annotations

from ..markup import Displayed


class InlineReport(Displayed):
    """A report to display: `_repr_html_` is the page (a notebook shows it when it is a cell's last expression
    or given to `IPython.display.display`); `repr` a line naming what it shows; `parts` the page's HTML."""

    def __init__(self, parts: list[str], title: str):
        self.parts, self.title = parts, title

    def _html(self) -> list[str]:
        return self.parts

    def _text(self) -> str:
        return f"<{self.title}: display it in a notebook, or write it with striate.report.write_report>"


def _run_dir(run):
    """The `RunDir`-like object of `run`: a RunDir itself, or what holds one (`st.run.build`'s Run)."""
    if hasattr(run, "metrics_file"):
        return run
    if hasattr(getattr(run, "directory", None), "metrics_file"):
        return run.directory
    raise TypeError(f"report.show: expected a run directory (st.run.RunDir(path)) or a list of them, got "
                    f"{type(run).__name__} {str(run)[:60]!r}")


def show(runs, *, title: str | None = None, log_loss: bool | None = None) -> InlineReport:
    """The report of the run `runs` (a `striate.run.RunDir`, or the `Run` `st.run.build` returns) as an
    `InlineReport`, to end a cell with (like `IPython.display.HTML`, it is displayed as the cell's value,
    never on its own: give it to `display(...)` to show it from inside a cell). A list of runs: the page
    comparing them (one run in a list: its report). `log_loss`: as `write_report`. FileNotFoundError for a
    directory without metrics.jsonl."""
    from .compare import comparison_body
    from .html import report_body

    many = isinstance(runs, list | tuple)
    dirs = [_run_dir(r) for r in (runs if many else [runs])]
    if not dirs:
        raise ValueError("report.show: no run given (an empty list)")
    missing = [d for d in dirs if not d.metrics_file.is_file()]
    if missing:
        raise FileNotFoundError(f"report.show: {str(missing[0].path)!r} has no metrics (metrics.jsonl): not a "
                                "run directory, or a run that has not trained a step yet")
    if len(dirs) == 1:
        title = title or f"striate report: {dirs[0].path.name}"
        body, _ = report_body(dirs[0], title, log_loss)
    else:
        title = title or "striate: runs compared"
        body = comparison_body(dirs, title)
    return InlineReport(body, title)
