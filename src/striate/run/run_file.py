"""Run files: TOML read into option values (`load_run_file`), and a resolved configuration written back as the
run file that reproduces it (`to_toml`, the run directory's config.toml)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np

from .config import BY_NAME, OPTIONS, ConfigError, resolve


def read_toml(path: str | Path, error: type[Exception] = ConfigError, what: str = "config file") -> dict:
    """Parse a TOML file; a missing or malformed file raises `error` quoting the path."""
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))  # TOML is UTF-8, whatever the locale
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{what} {str(path)!r} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {str(path)!r}: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise error(f"{what} {str(path)!r}: arrays or tables nested too deeply to read (a few hundred levels); "
                    "nest less") from None


def run_values(doc: dict, where: str) -> dict:
    """The option values of a run file's table: flat keys, or under [train]; a [model] table becomes
    `model` (its `name`), `width` and `model_options` (the rest)."""
    doc = dict(doc)
    doc.pop("resume", None)  # a run's config.toml lists its resumes: the settings are what reproduce it
    if set(doc) <= {"train", "model", "param_groups"} and isinstance(doc.get("train"), dict):
        doc = {**doc.pop("train"), **doc}
    table = doc.get("model")
    if isinstance(table, dict):
        table = dict(table)
        doc["model"] = table.pop("name", "")
        if "width" in table:
            doc["width"] = table.pop("width")
        if "layers" in table:  # a network as a layer list (models/layers.py)
            if doc["model"] not in ("", "layers"):
                raise ConfigError(f"{where}: [model] gives both name = {doc['model']!r} and layers: one or the other")
            doc["model"] = "layers"
        doc["model_options"] = {**doc.get("model_options", {}), **table}
    return doc


def load_run_file(path: str | Path, command: str = "train") -> dict:
    """A run file's values, checked (not yet merged with the defaults: `resolve(..., base=defaults)`): a [model]
    table of a named model is checked against its builder's keywords here, before any work."""
    return checked_values(read_toml(path), str(path), command)


def checked_values(doc: dict, path: str, command: str = "train") -> dict:
    """The values of run file `path`, read as `doc`, checked (see `load_run_file`)."""
    values = run_values(doc, path)
    if "from" in values and command != "finetune":
        raise ConfigError(f"{path}: from = {values['from']!r} makes it a fine-tuned run's file: reproduce it with "
                          f"striate finetune --config {path}")
    values = resolve(values, where=path, base={}, command=command)
    options = values.get("model_options")
    if options:
        from ..models import registry
        from .data import default_model

        name = values.get("model") or default_model(values.get("data") or BY_NAME["data"].default)
        try:
            if values.get("model"):
                registry.check_keywords(name, options, user=True)
            else:  # the model may yet come from --data: only what no model takes
                registry.check_fixed(name, options)
        except ValueError as e:
            raise ConfigError(f"{path}: {e}") from None
    return values


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """`text` as a TOML basic string: quote, backslash and the control characters (U+0000-U+001F, U+007F)
    escaped, everything else written as itself (TOML files are UTF-8; a non-BMP character has no \\u escape
    of its own, and the JSON surrogate pair `\\ud83d\\ude80` is not TOML)."""
    out = []
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04X}")
        elif "\ud800" <= ch <= "\udfff":  # a lone surrogate (a non-UTF-8 file name): no TOML text holds it
            raise ConfigError(f"{text!r} is not valid Unicode text (a name that is not UTF-8?): it cannot be "
                              "written to a run file")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k) -> str:
    """A bare key when TOML allows one (ASCII letters, digits, _ and -), else a quoted one."""
    k = str(k)
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def toml_value(v) -> str:
    """`v` (bool, int, float, str, date/time, or a list or table of these) as TOML that reads back equal."""
    if isinstance(v, np.generic):  # a NumPy scalar (np.float64's repr is "np.float64(0.1)")
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):  # Python's shortest repr (1e-05, 1e+16, inf, -inf, nan) is a TOML float
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(v, datetime.date | datetime.time):  # TOML's own types, as tomllib reads them
        return v.isoformat()
    raise TypeError(f"cannot write a {type(v).__name__} ({v!r}) to a run file")


def to_toml(config: dict, header: str = "") -> str:
    """A run file that resolves back to `config` (model keywords under [model]); a fine-tuned run's (it has
    `from`) is `striate finetune`'s."""
    command = "finetune" if "from" in config else "train"
    lines = [f"# {header or f'striate run configuration (striate {command} --config this-file)'}"]
    model_options = config.get("model_options") or {}
    for o in OPTIONS:
        if o.name not in config or o.name == "model_options" or (o.name == "model" and model_options):
            continue
        lines.append(f"{o.name} = {toml_value(config[o.name])}")
    if model_options:
        lines += ["", "[model]", f"name = {toml_value(config.get('model', ''))}"]
        for k, v in model_options.items():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):  # a layer list: one per line
                lines += [f"{_toml_key(k)} = ["] + [f"  {toml_value(x)}," for x in v] + ["]"]
            else:
                lines.append(f"{_toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n"
