"""A hand edit of a run's config.toml, refused: config.json is the run's record, which every command reads;
config.toml is written from it (a run file that starts a new run like this one, then a [[resume]] table per
resume) and never read back, so an edit there would be ignored and then overwritten. `check_config_toml`
names the first key that differs, both values and the way to change it instead."""

from __future__ import annotations

import hashlib
import shlex

from ..train.checkpoint import CheckpointError
from . import config as cfg
from . import run_file


def check_config_toml(directory, command: str = "train") -> None:
    """Refuse a hand edit of config.toml before a command rewrites it or goes on without it.

    config.json is the run's record: every command reads it, and config.toml is written from it (a run file
    that starts a new run like this one, then a [[resume]] table per resume); it is never read back. An
    edit there would be ignored and then overwritten, so it is refused instead (ConfigError): the first key
    whose value differs from config.json's, both values, and the way to change it (`striate train --resume
    RUN --lr X` for a resumable setting). A config.toml whose digest is the one config.json recorded when
    both were written is not edited (then config.json may have been, which its own readers report). Values
    are compared resolved (lr = 1 is 1.0, a missing key is its default). A missing config.toml is no edit: it
    is written again from config.json. One that is not TOML is a damaged run directory (CheckpointError):
    undo the edit, or delete it to have it written again."""
    path = directory / directory.CONFIG_TOML
    saved = directory.read_json(directory.CONFIG_JSON)
    if not path.exists() or not isinstance(saved, dict):  # config.json's own faults are read_config's to report
        return
    if _as_written(path, saved.get(directory.TOML_DIGEST)):  # an edit, if any, was of config.json: its own checks
        return
    try:
        doc = run_file.read_toml(path, error=CheckpointError, what="the run's configuration file")
    except CheckpointError as e:
        raise CheckpointError(f"{e} (it is written from config.json: undo the edit, or delete it to have it "
                              "written again)") from None
    edited = _first_difference(_resolved(run_file.run_values(doc, str(path)), command),
                               _resolved({k: v for k, v in saved.items() if k in cfg.BY_NAME}, command))
    if edited is None:
        mine, theirs = doc.get("resume", []), saved.get("resume", [])
        if mine != theirs:
            raise cfg.ConfigError(f"{path}: its [[resume]] tables differ from the resumes config.json records "
                                  "(they are the run's history, not settings): undo the edit, or delete "
                                  f"{directory.CONFIG_TOML} to have it written again from config.json")
        return
    key, label, there, here = edited
    option = cfg.BY_NAME.get(key)
    if option is not None and option.resumable:
        how = (f"to change it, undo the edit and run: striate train --resume {shlex.quote(str(directory))} "
               f"{_flag(option, there)}")
    else:
        how = (f"{key} cannot change on a resume: undo the edit, or start a new run from the edited file: "
               f"striate train --config {shlex.quote(str(path))} --out NEW_DIR")
    raise cfg.ConfigError(f"{path} was edited: {label} = {_shown(there)} there, {_shown(here)} in config.json, "
                          f"the run's record (config.toml is written from it, not read); {how}")



_UNSET = object()


def _resolved(values: dict, command: str) -> dict:
    """Run-file values as options resolve them, a missing key its default; a value its option refuses (or a
    key no option has) is kept as written, so that it differs from the record."""
    out = {o.name: o.default_for(command) for o in cfg.OPTIONS}
    for name, value in values.items():
        key = str(name).replace("-", "_")
        try:
            out[key] = cfg.BY_NAME[key].convert(value, "config") if key in cfg.BY_NAME else value
        except cfg.ConfigError:
            out[key] = value
    return out


def _first_difference(edited: dict, record: dict) -> tuple[str, str, object, object] | None:
    """(key, its label, the edited value, the recorded value) of the first key that differs, or None; a
    [model] keyword is labelled `[model] name`."""
    for key in [*record, *(k for k in edited if k not in record)]:
        a, b = edited.get(key, _UNSET), record.get(key, _UNSET)
        if key == "model_options" and isinstance(a, dict) and isinstance(b, dict):
            inner = _first_difference(a, b)
            if inner is not None:
                return key, f"[model] {inner[1]}", inner[2], inner[3]
        elif a != b:
            return key, key, a, b
    return None


def _flag(option: cfg.Option, value) -> str:
    """The command-line flag that sets `option` to `value` (a placeholder where the value is not valid)."""
    try:
        value = option.convert(value, "config")
    except cfg.ConfigError:
        return f"{option.flag_name} VALUE"
    if isinstance(value, bool):  # a switch: present means true
        return option.flag_name if value else f"(no flag turns {option.name} off)"
    return f"{option.flag_name} {shlex.quote(str(value))}"


def _shown(value) -> str:
    if value is _UNSET:
        return "(not set)"
    try:
        return run_file.toml_value(value)  # as the user wrote it in config.toml
    except (TypeError, cfg.ConfigError):
        return repr(value)


def _as_written(path, digest) -> bool:
    """config.toml holds exactly the text written with config.json (whose digest it recorded)."""
    try:
        return isinstance(digest, str) and hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except OSError:
        return False
