"""`Option`: one setting of the option table (`run.config.OPTIONS`) — its type, default, help, choices and
bounds — and its conversion of a command-line string or a run-file value into a checked value."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from .values import ConfigError, boolean, check_text, number

RUN_COMMANDS = ("train", "finetune", "search")  # the options of a run (a search's [train] table is a run)


@dataclass(frozen=True)
class Option:
    """One setting. `type`: str, int, float or list (of `item` values); `choices` / `minimum` (`exclusive`:
    the minimum itself is refused) / `below` (an exclusive upper bound) are checked on every value; `check`
    is an extra test (value, where) → raises ConfigError. `commands`: who takes it; `defaults`: a command's
    own default; `resumable`: `train --resume` may change it; `flag`: it is also a command-line flag."""

    name: str
    type: type
    default: object
    help: str
    choices: tuple | None = None
    minimum: float | None = None
    exclusive: bool = False
    below: float | None = None
    item: type = str
    check: Callable | None = None
    commands: tuple[str, ...] = RUN_COMMANDS
    defaults: tuple[tuple[str, object], ...] = ()
    resumable: bool = False
    flag: bool = True
    group: str = "run"  # the section of --help it is listed in
    names_path: bool = False  # a recorded value keeps a path that no longer exists (the data moved): `check` is
    # for values given now; the data's presence is checked where it is loaded
    aliases: tuple[str, ...] = ()  # names people try for it (other frameworks' names): suggested, not accepted
    listing: Callable | None = None  # f() -> the names a help text lists (models, datasets)
    label: str = ""  # how an error names a table option (default: its name)
    words: tuple[str, ...] = ()  # words a number option also takes (freeze: 'all'), kept as the word

    def default_for(self, command: str):
        value = dict(self.defaults).get(command, self.default)
        return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value, where: str, recorded: bool = False):
        """`value` (a command-line string or a run-file value) as this option's type, checked. `recorded`: a
        run directory's own record, whose paths need not exist any more."""
        if self.type is dict:  # a table: its check names the key inside it that is wrong
            bad = f"{where}: {self.label or self.name}"
        elif where == "command line":
            bad = f"{where}: {self.flag_name} {value!r}"
        else:
            bad = f"{where}: {self.name} = {value!r}"
        if self.type is list and self.item is dict:
            if not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
                raise ConfigError(f"{bad} is not a list of tables")
        elif self.type is list:
            value = self._list(value, bad)
        elif self.type is dict:
            if not isinstance(value, dict):
                raise ConfigError(f"{bad} is not a table")
        elif isinstance(value, str) and value.strip().lower() in self.words:
            return value.strip().lower()
        elif self.type is int:
            value = self._int(value, bad)
        elif self.type is float:
            value = number(value, float, bad)
        elif self.type is bool:
            value = boolean(value, bad)
        elif not isinstance(value, str):
            raise ConfigError(f"{bad} is not a string")
        check_text(value, bad)
        if self.choices is not None and value not in self.choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in self.choices], n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{bad}: unknown {self.name}{maybe}; choose from {', '.join(map(str, self.choices))}")
        for v in value if self.type is list and self.item is float else [value]:
            self._bounds(v, bad)
        if self.check is not None and not (recorded and self.names_path):
            self.check(value, bad)
        return value

    def _int(self, value, bad: str) -> int:
        try:
            return number(value, int, bad)
        except ConfigError as e:
            if not self.words:
                raise
            raise ConfigError(f"{e} or {' or '.join(map(repr, self.words))}") from None

    def _list(self, value, bad: str) -> list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{bad} is not a comma-separated string or a list")
        if self.item is float:
            return [number(v, float, bad) for v in value]
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{bad} is not a list of strings")
        return list(value)

    def _bounds(self, value, bad: str) -> None:
        if not isinstance(value, int | float):
            return
        if self.minimum is not None and (value < self.minimum or (self.exclusive and value == self.minimum)):
            raise ConfigError(f"{bad}: must be {'>' if self.exclusive else '≥'} {self.minimum:g}")
        if self.below is not None and value >= self.below:
            raise ConfigError(f"{bad}: must be < {self.below:g}")
