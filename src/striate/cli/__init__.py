"""The `striate` command line (also `python -m striate`): one module per command, one parser factory
(`parser.py`, flags from the option table of `run.config`), one map from exceptions to the exit-status
table (`errors.py`). Every failure prints one line, `striate <command>: error: …`.

    striate train | eval | predict | summary | finetune | doctor | report | search   (--help on each)
"""

from __future__ import annotations

import sys

from . import doctor, errors, finetune, predict, report, search, summary, train
from . import eval as evaluate
from .parser import EXIT_TABLE, Parser, version

COMMANDS = {"train": train, "eval": evaluate, "predict": predict, "summary": summary, "finetune": finetune,
            "doctor": doctor, "report": report, "search": search}


def build_parser() -> Parser:
    parser = Parser(prog="striate", description="Convolutional networks in plain NumPy, after the CS231n notes.")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
    parser.commands = sub.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, so the line names the command and the nearest flag
        parser.commands[args.command].unknown(extra)
    try:
        return COMMANDS[args.command].run(args)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the one place every failure is reported
        status, message = errors.exit_status(e)
        if isinstance(e, BrokenPipeError):
            errors.silence_stdout()
        elif message is not None:
            print(f"striate {args.command}: error: {errors.rank_prefix()}{errors.one_line(message)}", file=sys.stderr)
        errors.end_job(status)
        return status


__all__ = ["COMMANDS", "EXIT_TABLE", "build_parser", "main"]
