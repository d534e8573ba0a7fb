"""The command line's parser factory: one argparse parser per command, whose option flags come from the
option table (`run.config`), with the defaults shown in one notation, no abbreviations, one error line,
and the exit-status table at the end of every help."""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3
EXIT_TABLE = """exit status:
  0        done
  1        the command could not complete on its inputs: an unreadable, corrupt or tampered file, a failed
           download, a dead worker, a full disk; for doctor: a check failed
  2        usage or configuration: unknown or mistyped flags and run-file keys, bad values, a --data path
           that does not exist, an unknown dataset or model name, options that contradict each other
  3        training diverged
  129      interrupted by SIGHUP (the terminal closed, the ssh session was lost), after saving
  130/143  interrupted by Ctrl-C / SIGTERM, after saving"""


class Parser(argparse.ArgumentParser):
    """argparse with one error line, `striate <command>: error: …` (with the nearest flag for a typo), no
    abbreviations, and the exit-status table in every help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("allow_abbrev", False)  # `--epoch 1` is a typo, not `--epochs 1`
        epilog = (kwargs.get("epilog") or "").rstrip()
        kwargs["epilog"] = (epilog + "\n\n" if epilog else "") + EXIT_TABLE
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def unknown(self, extra: list[str]):
        """Refuse unrecognised arguments, naming the nearest known flag (an option's alias counts: a
        PyTorch user's `--learning-rate` gets `--lr`)."""
        from ..run.config import nearest

        flags = {f.lstrip("-").replace("-", "_"): f for a in self._actions for f in a.option_strings
                 if f.startswith("--")}
        hints = []
        for arg in extra:
            if arg.startswith("-"):
                near = nearest(arg.split("=")[0], flags)
                if near:
                    hints.append(f"did you mean {flags[near]}?")
        self.error(f"unrecognized arguments: {' '.join(extra)}" + (f"; {' '.join(hints)}" if hints else ""))


def shown(value) -> str:
    """A default as the help shows it: one notation for every option."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    if value == "":
        return "none"
    return str(value)


def add_options(parser: argparse.ArgumentParser, command: str, skip: tuple[str, ...] = ()) -> None:
    """A flag per option of `command` in the option table, converted and checked later by `run.config`
    (so a bad value is quoted with the flag it came from). Flags default to None: given ones are the
    command line's changes."""
    from ..run import config as cfg

    groups: dict[str, argparse._ArgumentGroup] = {}
    for o in cfg.options(command):
        if not o.flag or o.name in skip:
            continue
        group = groups.setdefault(o.group, parser.add_argument_group(o.group))
        metavar = "{" + ",".join(map(str, o.choices)) + "}" if o.choices else (
            "A,B" if o.type is list else o.name.upper())
        text = o.help if "(default" in o.help else f"{o.help} (default: {shown(o.default_for(command))})"
        if o.listing is not None:
            text += f"; one of: {', '.join(o.listing())}"
        if o.type is bool:  # a switch: present means true
            group.add_argument(o.flag_name, dest=o.name, default=None, action="store_const", const="true", help=text)
        else:
            group.add_argument(o.flag_name, dest=o.name, default=None, metavar=metavar, help=text)


def given(args, command: str) -> dict:
    """The options the command line set: option name → the string it gave."""
    from ..run import config as cfg

    return {o.name: getattr(args, o.name) for o in cfg.options(command)
            if o.flag and getattr(args, o.name, None) is not None}


def version() -> str:
    from ..version import __version__

    return f"striate {__version__} (Python {sys.version.split()[0]})"
