"""Crash-safe checkpoints: weights and optimizer arrays in safetensors, everything else in JSON.

Layout of a checkpoint directory::

    checkpoints/
      gen-000007/            one complete, immutable generation
        weights.safetensors  model parameters and buffers (names from `model.state_dict()`)
        arrays.safetensors   every other array (optimizer moments, fitted preprocessing, ...)
        state.json           the rest, with {"__array__": key} where an array was, and file checksums; its
                             "format" (`FORMAT`) is checked on load: another version's layout is refused
      last                   pointer file: {"generation": "gen-000007"}
      best                   pointer file

A generation is written into a temporary directory (each file flushed and fsynced), renamed into place,
and only then is a pointer switched with `os.replace` (the directory fsynced after each step). A kill at
any moment leaves every pointer naming a complete generation, so the weights/state pair stays consistent.
Generations no pointer names are deleted afterwards. A failed write (a full disk) removes its temporary
directory; one left by a killed writer (`.tmp-gen-N-<pid>`, the process gone) is removed, with unnamed
generations, before the next write and by `collect_garbage` (`atomic.remove_stale_temps`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import fsync_dir, remove_stale_temps, write_atomic, write_synced  # noqa: F401  (re-exported)

FORMAT = "striate-checkpoint/1"  # state.json's "format": the one layout `load` reads
_GEN = re.compile(r"^gen-(\d{6,})$")
_TAG = re.compile(r"^[a-z][a-z0-9_-]*$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not verify."""


# ----- atomic files -----------------------------------------------------------------------------


# ----- nested state ↔ JSON + arrays -------------------------------------------------------------
def flatten_state(obj, prefix: str = "") -> tuple[object, dict[str, np.ndarray]]:
    """Split a nested structure into a JSON-able skeleton and a flat dict of arrays.

    Arrays become `{"__array__": key}` with `key` the slash-joined path; NumPy scalars become Python
    numbers; tuples become lists. Dict keys must be strings (ints are converted and kept as strings)."""
    arrays: dict[str, np.ndarray] = {}

    def walk(x, path):
        if isinstance(x, np.ndarray):
            key = path or "_"
            if key in arrays:
                raise ValueError(f"checkpoint state: two arrays map to the key '{key}'")
            arrays[key] = _contiguous(x)
            return {"__array__": key}
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, dict):
            return {str(k): walk(v, f"{path}/{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [walk(v, f"{path}/{i}" if path else str(i)) for i, v in enumerate(x)]
        if x is None or isinstance(x, bool | int | float | str):
            return x
        raise TypeError(f"checkpoint state at '{path}': cannot store a {type(x).__name__}")

    return walk(obj, prefix), arrays


def unflatten_state(skeleton, arrays: dict[str, np.ndarray]):
    """Inverse of `flatten_state`."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__array__"}:
            key = skeleton["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise CheckpointError(f"checkpoint state refers to array '{key}', which is missing")
            return arrays[key]
        return {k: unflatten_state(v, arrays) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten_state(v, arrays) for v in skeleton]
    return skeleton


def _contiguous(a: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (np.ascontiguousarray would make them (1,))."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_safetensors(data: bytes, path: Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file; a malformed or tampered one (bad header, header too large,
    offsets outside the file) is a CheckpointError naming it, never safetensors' own exception."""
    from safetensors.numpy import load as st_load

    try:
        return st_load(data)
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends: the file is not valid safetensors
        raise CheckpointError(f"checkpoint file {path} is not valid safetensors: {e}") from None


def _check_format(doc, path: Path) -> None:
    """A state.json of another layout (a newer striate's `striate-checkpoint/2`, a damaged or foreign file) is
    refused before any of it is interpreted: its keys may mean something else there."""
    if not isinstance(doc, dict):
        return  # not a checkpoint at all: `load` says so
    found = doc.get("format")
    if found != FORMAT:
        what = "no format marker" if found is None else f"format {str(found)[:60]!r}"
        raise CheckpointError(f"checkpoint {path} has {what}; this striate reads {FORMAT!r} only (a checkpoint "
                              "of another striate version, or a damaged one)")


# ----- the store --------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """What `CheckpointStore.load` returns: model weights, the rest of the state, and where it came from."""

    weights: dict[str, np.ndarray]
    state: dict
    generation: str
    path: Path
    tags: list[str] = field(default_factory=list)


class CheckpointStore:
    """Generations of (weights, state) pairs under `directory`, named by pointer files ("last", "best")."""

    WEIGHTS, ARRAYS, STATE = "weights.safetensors", "arrays.safetensors", "state.json"

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    # -- pointers --
    def _pointer(self, tag: str) -> Path:
        if not _TAG.match(tag):
            raise ValueError(f"checkpoint tag must be a lowercase word, got {tag!r}")
        return self.directory / tag

    def generation_of(self, tag: str) -> str | None:
        """The generation a pointer names, or None if the pointer does not exist."""
        from .json_files import parse_json

        p = self._pointer(tag)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return None
        doc = parse_json(data, f"checkpoint pointer {p}")
        gen = doc.get("generation") if isinstance(doc, dict) else None
        if gen is None:
            raise CheckpointError(f"checkpoint pointer {p} is unreadable: {data[:80]!r}")
        if not isinstance(gen, str) or not _GEN.match(gen):
            raise CheckpointError(f"checkpoint pointer {p} names {gen!r}, not a generation")
        return gen

    def has(self, tag: str = "last") -> bool:
        return self.generation_of(tag) is not None

    def _point(self, tag: str, generation: str) -> None:
        write_atomic(self._pointer(tag), json.dumps({"generation": generation}) + "\n")

    def tags(self) -> dict[str, str]:
        """Every pointer → the generation it names."""
        out = {}
        if self.directory.is_dir():
            for p in sorted(self.directory.iterdir()):
                if p.is_file() and _TAG.match(p.name):
                    gen = self.generation_of(p.name)
                    if gen is not None:
                        out[p.name] = gen
        return out

    # -- save --
    def _next_generation(self) -> str:
        numbers = [int(m.group(1)) for p in self.directory.iterdir() if (m := _GEN.match(p.name))]
        return f"gen-{max(numbers, default=0) + 1:06d}"

    def save(self, weights: dict[str, np.ndarray], state: dict, tags: tuple[str, ...] | list[str] = ("last",)) -> str:
        """Write a new generation holding `weights` and `state`, then point each of `tags` at it.
        Returns the generation name."""
        from safetensors.numpy import save as st_save

        self.directory.mkdir(parents=True, exist_ok=True)
        skeleton, arrays = flatten_state(state)
        weight_bytes = st_save({k: _contiguous(np.asarray(v)) for k, v in weights.items()})
        array_bytes = st_save(arrays)
        doc = {
            "format": "striate-checkpoint/1",
            "files": {self.WEIGHTS: _sha256(weight_bytes), self.ARRAYS: _sha256(array_bytes)},
            "state": skeleton,
        }
        state_bytes = json.dumps(doc, indent=1, allow_nan=True).encode("utf-8")

        self.collect_garbage()  # a killed or failed writer's leftovers would take the space this one needs
        generation = self._next_generation()
        tmp = self.directory / f".tmp-{generation}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            tmp.mkdir()
            write_synced(tmp / self.WEIGHTS, weight_bytes)
            write_synced(tmp / self.ARRAYS, array_bytes)
            write_synced(tmp / self.STATE, state_bytes)
            fsync_dir(tmp)
            os.rename(tmp, self.directory / generation)
        except BaseException:  # a full disk, a Ctrl-C: no half-written generation stays to fill the disk
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(self.directory)
        for tag in tags:
            self._point(tag, generation)
        self.collect_garbage()
        return generation

    def tag(self, tag: str, generation: str) -> None:
        """Point `tag` at an existing generation."""
        if not (self.directory / generation / self.STATE).is_file():
            raise CheckpointError(f"no generation {generation!r} in {self.directory}")
        self._point(tag, generation)
        self.collect_garbage()

    def collect_garbage(self) -> None:
        """Delete generations no pointer names and the temporary files and directories of writers that are
        gone (killed mid-write); a live writer's stay."""
        live = set(self.tags().values())
        for p in self.directory.iterdir():
            if p.is_dir() and _GEN.match(p.name) and p.name not in live:
                shutil.rmtree(p, ignore_errors=True)
        remove_stale_temps(self.directory)

    # -- load --
    def load(self, tag: str = "last", verify: bool = True) -> Checkpoint:
        """Read the generation `tag` names; with `verify`, check the safetensors files' SHA-256."""
        from .json_files import parse_json

        generation = self.generation_of(tag)
        if generation is None:
            raise CheckpointError(f"no '{tag}' checkpoint in {self.directory}")
        path = self.directory / generation
        try:
            doc = parse_json((path / self.STATE).read_bytes(), f"checkpoint {path / self.STATE}")
            blobs = {name: (path / name).read_bytes() for name in (self.WEIGHTS, self.ARRAYS)}
        except OSError as e:
            raise CheckpointError(f"checkpoint {path} is incomplete or unreadable: {e}") from e
        _check_format(doc, path / self.STATE)
        if not (isinstance(doc, dict) and isinstance(doc.get("files"), dict) and "state" in doc):
            raise CheckpointError(f"checkpoint {path / self.STATE} is not a striate checkpoint (needs 'files' and "
                                  "'state')")
        if verify:
            for name in (self.WEIGHTS, self.ARRAYS):
                if name not in doc["files"]:
                    raise CheckpointError(f"checkpoint {path / self.STATE} lists no checksum for {name}")
                if _sha256(blobs[name]) != doc["files"][name]:
                    raise CheckpointError(f"checkpoint {path / name} does not match its checksum")
        weights, arrays = (_read_safetensors(blobs[name], path / name) for name in (self.WEIGHTS, self.ARRAYS))
        try:
            state = unflatten_state(doc["state"], arrays)
        except RecursionError:
            raise CheckpointError(f"checkpoint {path / self.STATE}: 'state' nests too deep") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"checkpoint {path / self.STATE}: 'state' is not a table")
        tags = [t for t, g in self.tags().items() if g == generation]
        return Checkpoint(weights=weights, state=state, generation=generation, path=path, tags=tags)
