"""Reading the JSON files striate writes into a run directory (config.json, summary.json, a checkpoint's
state.json and pointers, ...): whatever a file holds — bytes that are not UTF-8, truncated or deeply nested
JSON, a document of the wrong kind — the reader raises one `DamagedFile` naming it (exit status 1: an
unreadable, corrupt or tampered file), never the decoder's own exception."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .checkpoint import CheckpointError


class DamagedFile(CheckpointError):
    """A file of a run directory that striate cannot read back (the message names it and says why)."""


def kind_of(value) -> str:
    """'an object', 'an array', 'a string', ... : what a JSON value is, for messages."""
    if value is None:
        return "null"
    for types, name in ((bool, "a boolean"), (dict, "an object"), (list, "an array"), (str, "a string"),
                        (int | float, "a number")):
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def parse_json(data: bytes, where: str):
    """The JSON value in `data` (the bytes of `where`); DamagedFile naming `where` when it is not UTF-8 JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DamagedFile(f"{where} is damaged: byte {e.start} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise DamagedFile(f"{where} is damaged: its JSON nests too deep") from None
    except ValueError as e:
        what = "empty" if not text.strip() else f"not valid JSON ({e})"
        raise DamagedFile(f"{where} is damaged: {what}") from None


def read_json(path: str | os.PathLike, expect: type | None = dict):
    """The JSON document in `path` (FileNotFoundError when there is none): an object by default (`expect`
    another type, or None for any value); DamagedFile naming the file otherwise."""
    path = Path(path)
    doc = parse_json(path.read_bytes(), str(path))
    if expect is not None and not isinstance(doc, expect):
        want = kind_of(expect()) if expect in (dict, list, str) else expect.__name__
        raise DamagedFile(f"{path} is damaged: it holds {kind_of(doc)}, not {want}")
    return doc
