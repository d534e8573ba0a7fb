"""Run files: TOML read into option values (`load_run_file`), and a resolved configuration written back as the
run file that reproduces it (`to_toml`, the run directory's config.toml)."""

from __future__ import annotations

import json
from pathlib import Path

from .config import BY_NAME, OPTIONS, ConfigError, resolve


def read_toml(path: str | Path, error: type[Exception] = ConfigError, what: str = "config file") -> dict:
    """Parse a TOML file; a missing or malformed file raises `error` quoting the path."""
    import tomllib

    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
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
    if set(doc) <= {"train", "model"} and isinstance(doc.get("train"), dict):
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
    values = resolve(run_values(doc, path), where=path, base={}, command=command)
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


def _toml_key(k) -> str:
    k = str(k)
    return k if k and all(ch.isalnum() or ch in "_-" for ch in k) else json.dumps(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def to_toml(config: dict, header: str = "striate run configuration (striate train --config this-file)") -> str:
    """A run file that resolves back to `config` (model keywords under [model])."""
    lines = [f"# {header}"]
    model_options = config.get("model_options") or {}
    for o in OPTIONS:
        if o.name not in config or o.name == "model_options" or (o.name == "model" and model_options):
            continue
        lines.append(f"{o.name} = {toml_value(config[o.name])}")
    if model_options:
        lines += ["", "[model]", f"name = {toml_value(config.get('model', ''))}"]
        for k, v in model_options.items():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):  # a layer list: one per line
                lines += [f"{k} = ["] + [f"  {toml_value(x)}," for x in v] + ["]"]
            else:
                lines.append(f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"
