"""The `striate` command line (also `python -m striate`): one module per command, one parser factory
(`parser.py`, flags from the option table of `run.config`), one map from exceptions to the exit-status
table (`errors.py`). Every failure prints one line, `striate <command>: error: …`.

    striate train | eval | predict | summary | finetune | doctor | report | search | export   (--help on each)
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # the exit table's status for Ctrl-C (parser.py is not loaded yet when it is needed)


def commands() -> dict:
    """Command name → its module (`HELP`, `add_arguments(parser)`, `run(args)`)."""
    from . import doctor, export, finetune, predict, report, search, summary, train
    from . import eval as evaluate

    return {"train": train, "eval": evaluate, "predict": predict, "summary": summary, "finetune": finetune,
            "doctor": doctor, "report": report, "search": search, "export": export}


def __getattr__(name: str):
    """`COMMANDS` and `EXIT_TABLE` load on first use: importing this package (the `striate` command's entry
    point) must load next to nothing, so that `main` is running, and guarding, before anything heavy loads."""
    if name == "COMMANDS":
        return commands()
    if name == "EXIT_TABLE":
        from .parser import EXIT_TABLE
        return EXIT_TABLE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser():
    from .parser import Parser, version

    parser = Parser(prog="striate", description="Convolutional networks in plain NumPy, after the CS231n notes.")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, module in commands().items():
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        module.add_arguments(p)
    parser.commands = sub.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `striate` command (also `python -m striate`); returns the exit status. A Ctrl-C while striate and
    NumPy load, or while the arguments are read, is one line and status 130, never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before the command started: it has written nothing
        try:
            print("striate: interrupted", file=sys.stderr)
        except OSError:
            pass
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    from . import errors

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the command's own parser, so the line names the command and the nearest flag
        parser.commands[args.command].unknown(extra)
    try:
        return commands()[args.command].run(args)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the one place every failure is reported
        status, message = errors.exit_status(e)
        if isinstance(e, BrokenPipeError):
            errors.silence_stdout()
        elif message is not None:
            print(f"striate {args.command}: error: {errors.rank_prefix()}{errors.one_line(message)}", file=sys.stderr)
        errors.end_job(status)
        return status


__all__ = ["COMMANDS", "EXIT_TABLE", "build_parser", "commands", "main"]  # noqa: F822 - COMMANDS, EXIT_TABLE: lazy
