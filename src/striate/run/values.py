"""What every option's value is checked against before its own rules: ConfigError (a bad key or value, quoted
with where it came from), and the conversions every option shares (numbers, booleans, text a run file can
hold, image sizes). `run.config` builds its option table on these."""

from __future__ import annotations

import math


class ConfigError(ValueError):
    """A bad key or value in a configuration (the message quotes it and says where it came from)."""


def number(value, kind: type, bad: str):
    """`value` as an int or a finite float (`kind`), or ConfigError starting with `bad`."""
    what = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | str) or (
            kind is int and isinstance(value, float)):
        raise ConfigError(f"{bad} is not {what}")
    try:
        converted = kind(value)
    except ValueError:
        raise ConfigError(f"{bad} is not {what}") from None
    if kind is float and not math.isfinite(converted):
        raise ConfigError(f"{bad} is not a finite number")
    return converted


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


def parse_size(text: str, where: str = "") -> tuple[tuple[int, int] | None, str | None]:
    """'32x32' → ((32, 32), None); '32x32x3' → ((32, 32), 'RGB'); 'x1' parts: C 1 → 'L'. '' → (None, None).
    `where` names the value in an error (it quotes it already); default: image_size = 'TEXT'."""
    if not text:
        return None, None
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) not in (2, 3) or min(dims) < 1 or (len(dims) == 3 and dims[2] not in (1, 3)):
        raise ConfigError(f"{where or f'image_size = {text!r}'}: expected HxW or HxWxC with C 1 or 3, e.g. 32x32 "
                          "or 32x32x3")
    return (dims[0], dims[1]), (None if len(dims) == 2 else "L" if dims[2] == 1 else "RGB")
