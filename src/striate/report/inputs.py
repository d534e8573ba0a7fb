"""The run files a report is drawn from, read once: metrics.jsonl (required reading: a damaged one is a
`DamagedFile` naming it, exit status 1), and the optional summary.json, config.json, evaluation.json and
diagnostics.json. A page can be drawn without any optional file, so a damaged one — unreadable, not a JSON
object, or holding values the page cannot draw (found by drawing without it, `draw_without_damage`) — is
left out with a warning naming it, never a failed page."""

from __future__ import annotations

from .. import console
from ..train.json_files import DamagedFile, read_json

OPTIONAL = ("diagnostics", "evaluation", "summary", "config")  # the order a damaged file is looked for
# what drawing from values of the wrong type raises (a bug in the page raises the same: it is re-raised when
# no single optional file is to blame)
DRAW_ERRORS = (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError, ZeroDivisionError,
               RecursionError)


def read_inputs(run) -> dict:
    """{'metrics': (iterations, epochs), 'diagnostics' | 'evaluation' | 'summary' | 'config': a dict or None,
    'paths': {name: path}} from a `RunDir`-like `run`."""
    from ..diagnose.curves import load_history

    paths = {"diagnostics": run.diagnostics_file, "evaluation": run.evaluation_file, "summary": run.summary_file,
             "config": run.config_file}
    inputs = {"metrics": load_history(run.metrics_file), "paths": paths}
    for name, path in paths.items():
        inputs[name] = read_optional(path)
    return inputs


def read_optional(path) -> dict | None:
    """The JSON object in `path`; None when there is none, or (with a warning naming it) when it is damaged."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, DamagedFile) as e:
        console.note(f"warning: {e}; the report is drawn without it")
        return None


def _left_out(path, error: BaseException) -> None:
    console.note(f"warning: {path} holds values the page cannot draw ({type(error).__name__}: {str(error)[:100]}); "
                 "the report is drawn without it")


def draw_without_damage(draw, inputs: dict):
    """`draw(inputs)`; when it fails on the values of an optional file, the page drawn without that file (a
    warning names it). Failures no optional file explains are re-raised."""
    try:
        return draw(inputs)
    except DRAW_ERRORS as error:
        for name in OPTIONAL:
            if inputs[name] is None:
                continue
            try:
                result = draw({**inputs, name: None})
            except DRAW_ERRORS:
                continue
            _left_out(inputs["paths"][name], error)
            return result
        present = [name for name in OPTIONAL if inputs[name] is not None]
        try:  # more than one file is damaged
            result = draw({**inputs, **dict.fromkeys(present)})
        except DRAW_ERRORS:
            raise error from None
        for name in present:
            _left_out(inputs["paths"][name], error)
        return result
