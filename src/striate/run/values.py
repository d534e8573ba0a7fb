"""A setting's scalar value from a command-line string or a run-file value: numbers, booleans and text,
each checked, the bad one quoted (`bad`: where it came from and what it was) in a ConfigError."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A bad key or value in a configuration (the message quotes it and says where it came from)."""


def number(value, kind: type, bad: str):
    what = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | str) or (
            kind is int and isinstance(value, float)):
        raise ConfigError(f"{bad} is not {what}")
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{bad} is not {what}") from None
    if kind is float and not math.isfinite(number):
        raise ConfigError(f"{bad} is not a finite number")
    return number


def check_text(value, bad: str) -> None:
    """A command-line string holds a lone surrogate where a name was not UTF-8 (Python's surrogateescape):
    the run's files (config.toml is UTF-8 TOML) cannot record it, so it is refused before anything is written."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, str) and any("\ud800" <= ch <= "\udfff" for ch in v):  # what UTF-8 cannot encode
            raise ConfigError(f"{bad} is not valid UTF-8 text (a name in another encoding?): rename it")


def boolean(value, bad: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{bad} is not true or false")
