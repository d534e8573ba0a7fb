"""`striate report`: redraw a run's report.html from its files, or overlay several runs on one page."""

from __future__ import annotations

HELP = "write report.html for a run directory, or overlay the curves of several runs"
DESCRIPTION = "Write report.html for a run directory, or a page comparing several runs."


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (two or more: compare them)")
    parser.add_argument("--out", metavar="FILE", help="output file (default: the run's report.html, or "
                        "comparison.html in the runs' common parent directory)")
    parser.add_argument("--log", action="store_true", help="draw the loss on a log scale (default: linear, or "
                        "log when it spans more than 30×)")


def run(args) -> int:
    import contextlib
    import os
    from pathlib import Path

    from ..report import write_comparison, write_report
    from ..run import RunDir, config

    runs = [RunDir(r) for r in args.runs]
    missing = [r for r in runs if not r.path.is_dir()]
    if missing:
        raise config.ConfigError(f"'{missing[0]}' is not a run directory (no such directory)")
    for r in runs:
        own = (r.CONFIG_JSON, r.METRICS, r.DIAGNOSTICS)  # a run's, or `striate doctor --out`'s
        if any((r / name).is_file() for name in own):
            continue
        if (r / "search.json").is_file() and len(runs) == 1:  # a search draws its own page as trials finish
            page = r / "search_report.html"
            if not page.is_file():
                raise config.ConfigError(f"'{r}' is a search directory whose page is not drawn yet: striate search "
                                         "writes search_report.html there once trials finish")
            print(f"report: {page} (a search directory: striate search draws its page)")
            return 0
        raise config.ConfigError(f"'{r}' is not a run directory (no {own[0]}, {own[1]} or {own[2]})")
    if len(runs) == 1:
        from ..run.execute import redrawing

        with redrawing(runs[0]) if args.out is None else contextlib.nullcontext():  # the run's own page
            path = write_report(runs[0], out=args.out, log_loss=True if args.log else None)
    else:
        parent = Path(os.path.commonpath([str(r.path.resolve()) for r in runs]))
        path = write_comparison(runs, args.out or parent / "comparison.html")
    print(f"report: {path}")
    return 0
