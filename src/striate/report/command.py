"""`striate report RUN_DIR` regenerates RUN_DIR/report.html; `striate report RUN_A RUN_B ...` overlays the
runs' curves on one page (`--out`, default ./comparison.html). Failures raise; `striate.cli` reports them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_report_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.description = "Write report.html for a run directory, or a page comparing several runs."
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (two or more: compare them)")
    parser.add_argument("--out", metavar="FILE", help="output file (default: RUN_DIR/report.html, or "
                        "./comparison.html for several runs)")
    parser.add_argument("--log", action="store_true", help="draw the loss on a log scale")
    return parser


def run_report(args, out=None) -> int:
    from ..train.config import ConfigError
    from .html import write_comparison, write_report

    out = out if out is not None else sys.stdout
    missing = [r for r in args.runs if not Path(r).is_dir()]
    if missing:
        raise ConfigError(f"{missing[0]!r} is not a run directory")
    if len(args.runs) == 1:
        path = write_report(args.runs[0], out=args.out, log_loss=True if args.log else None)
    else:
        path = write_comparison(args.runs, args.out or "comparison.html")
    print(f"report: {path}", file=out)
    return 0
