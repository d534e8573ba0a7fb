"""Read PyTorch weight files without torch, safely: `read_state_dict(path) -> {key: np.ndarray}`.

Formats (told apart by their first bytes; `.safetensors` also by name):
- torch's zip format (torch >= 1.6, `torch.save`'s default): one top folder (the saved file's name without
  extension, or `archive`) holding `data.pkl` (the pickled object), `data/<key>` (each storage's raw bytes,
  stored uncompressed), `version`, and `byteorder` ("little" or "big"; absent means little);
- the legacy format (`_use_new_zipfile_serialization=False`, older published files): pickles of the magic
  number, the protocol version (1001) and the writer's sys info, then the object's pickle, then the list of
  storage keys, then each storage as its element count (int64, little-endian) and its little-endian bytes;
- safetensors (via the safetensors package).
The pickles go through `torch_unpickler` (an allow-list of stand-ins; its docstring explains the design), so
nothing in the file can run; tensors come back as bounds-checked descriptions and are read only afterwards.

What comes back. A plain state dict or OrderedDict as is. A wrapper — a dict with no tensor of its own whose
`state_dict`, `model_state_dict`, `model` or `net` entry is a dict (first found, in that order; repeatedly, so
`{"model": {"state_dict": …}}` works) — is replaced by that entry and the rest (epoch, optimizer, ...) dropped.
Nested dicts, lists and tuples are flattened, keys joined with "." (list items by index): `{"a": {"b": t}}`
gives "a.b". Non-tensor leaves (numbers, strings, None) are skipped. When every key starts with "module."
(nn.DataParallel) the prefix is removed. Anything else is refused: a file with no tensors, a single tensor,
a key that is not a string or int, two tensors under one key.
dtypes: float16 and bfloat16 become float32, float64 stays float64 (striate's loaders refuse lossy casts),
every integer type becomes int64 (BatchNorm's `num_batches_tracked`), bool stays bool.
Limits: a storage may not claim more bytes than the file (or its zip member) holds, a tensor may not reach
outside its storage, zip members may not point outside the archive, and the members read may not claim more
than `MAX_EXPANSION` × the archive's size (torch stores storages uncompressed). Errors: UnreadableFileError
(a ValueError) naming the file; UnsafeFileError, its subclass, when the file tried something hostile.
"""

from __future__ import annotations

import mmap
import os
import zipfile
from pathlib import Path

import numpy as np

from .torch_unpickler import TensorRef, UnreadableFileError, UnsafeFileError, pickle_end, safe_loads

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
MAX_EXPANSION = 4  # members read may claim at most 4 × the archive's size (+ 1 MiB) once decompressed
MAX_DEPTH, MAX_NODES = 64, 1_000_000
# kind -> numpy dtype as stored (little-endian) and the dtype handed out
KINDS = {"float64": ("<f8", np.float64), "float32": ("<f4", np.float32), "float16": ("<f2", np.float32),
         "bfloat16": ("<u2", np.float32), "int64": ("<i8", np.int64), "int32": ("<i4", np.int64),
         "int16": ("<i2", np.int64), "int8": ("i1", np.int64), "uint8": ("u1", np.int64), "bool": ("u1", np.bool_)}

__all__ = ["UnreadableFileError", "UnsafeFileError", "read_state_dict"]


def read_state_dict(path) -> dict[str, np.ndarray]:
    """The arrays of a PyTorch `.pth`/`.pt` file (zip or legacy format) or a `.safetensors` file, by key.

    Never imports torch and never runs anything the file names (see the module docstring for the formats,
    the wrappers flattened, the dtypes and the limits). Raises FileNotFoundError, or UnreadableFileError /
    UnsafeFileError naming the file."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {str(path)!r}")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or (len(head) > 8 and head[8:9] == b"{"):
        return _read_safetensors(path)
    if head.startswith(b"PK\x03\x04"):
        reader = _ZipFile(path)
    elif head.startswith(b"\x80"):
        reader = _LegacyFile(path)
    else:
        raise UnreadableFileError(f"{path}: not a PyTorch file (zip or legacy format) nor safetensors")
    with reader:
        tensors = flatten_state_dict(reader.load(), str(path))
        return materialize(tensors, reader.storage, reader.byteorder, str(path))


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - SafetensorError and friends: not valid safetensors
        raise UnreadableFileError(f"{path}: not a readable safetensors file ({err})") from None
    return {k: _normalise(v) for k, v in arrays.items()}


def _normalise(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float16:
        return a.astype(np.float32)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    return a


# ----- the object in the file -> {key: TensorRef} ----------------------------------------------------
def flatten_state_dict(obj, source: str) -> dict[str, TensorRef]:
    """The tensors of an unpickled object by dotted key, after unwrapping (see the module docstring)."""
    if type(obj) is TensorRef:
        raise UnreadableFileError(f"{source} holds a single tensor, not a dict of tensors")
    while isinstance(obj, dict) and not any(type(v) is TensorRef for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    out: dict[str, TensorRef] = {}
    _flatten(obj, "", out, source, [0], set(), 0)
    if not out:
        raise UnreadableFileError(f"{source} holds no tensors (a {type(obj).__name__}, not a state dict)")
    if all(k.startswith("module.") for k in out):
        out = {k[len("module."):]: v for k, v in out.items()}
    return out


def _flatten(obj, prefix: str, out: dict, source: str, nodes: list, seen: set, depth: int) -> None:
    nodes[0] += 1
    if depth > MAX_DEPTH or nodes[0] > MAX_NODES:
        raise UnsafeFileError(f"{source}: the object is nested deeper than {MAX_DEPTH} or has more than "
                              f"{MAX_NODES} parts")
    if type(obj) is TensorRef:
        if prefix in out:
            raise UnreadableFileError(f"{source}: two tensors under the key {prefix!r}")
        out[prefix] = obj
        return
    if isinstance(obj, dict | list):
        if id(obj) in seen:
            raise UnsafeFileError(f"{source}: the container at {prefix!r} appears twice (a cycle?)")
        seen.add(id(obj))
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, list | tuple):
        items = list(enumerate(obj))
    else:
        return  # numbers, strings, None, bytes: not weights
    for key, value in items:
        if type(key) not in (str, int):
            raise UnreadableFileError(f"{source}: a key of type {type(key).__name__} under {prefix!r}: keys must "
                                      "be strings")
        _flatten(value, f"{prefix}.{key}" if prefix else str(key), out, source, nodes, seen, depth + 1)


# ----- {key: TensorRef} -> {key: array} --------------------------------------------------------------------
def materialize(tensors: dict[str, TensorRef], read_storage, byteorder: str, source: str) -> dict[str, np.ndarray]:
    """Read each storage once (`read_storage(ref) -> bytes`, at least `ref.nbytes` long) and copy every tensor
    out of it, in striate's dtypes. The total handed out is capped at 4 × the storages' elements (+ 2**20):
    views are copies, and a file may not multiply its size by viewing one storage many times."""
    by_storage: dict[str, list[str]] = {}
    for key, ref in tensors.items():
        by_storage.setdefault(ref.storage.key, []).append(key)
    budget = 4 * sum(tensors[keys[0]].storage.numel for keys in by_storage.values()) + (1 << 20)
    if sum(ref.numel for ref in tensors.values()) > budget:
        raise UnsafeFileError(f"{source}: its tensors hold more elements than 4 × its storages (views of views?)")
    out: dict[str, np.ndarray] = {}
    for keys in by_storage.values():
        storage = tensors[keys[0]].storage
        stored, _ = KINDS[storage.kind]
        dtype = np.dtype(stored).newbyteorder(">" if byteorder == "big" else "<")
        raw = read_storage(storage) if storage.numel else b""
        if len(raw) < storage.nbytes:
            raise UnsafeFileError(f"{source}: {storage!r} claims {storage.nbytes} bytes, the file holds {len(raw)}")
        base = np.frombuffer(raw, dtype=dtype, count=storage.numel)
        for key in keys:
            out[key] = _tensor(base, tensors[key], storage.kind)
    return {key: out[key] for key in tensors}


def _tensor(base: np.ndarray, ref: TensorRef, kind: str) -> np.ndarray:
    """A contiguous copy of the (already bounds-checked) view `ref` of `base`, converted to its output dtype."""
    if ref.numel == 0:
        view = np.zeros(ref.size, dtype=base.dtype)
    else:
        strides = tuple(s * base.itemsize for s in ref.stride)
        view = np.lib.stride_tricks.as_strided(base[ref.offset:], shape=ref.size, strides=strides, writeable=False)
    if kind == "bfloat16":  # the upper half of a float32
        return (view.astype(np.uint32) << 16).view(np.float32)
    if kind == "bool":  # any non-zero byte is True, as in torch
        return np.array(view) != 0
    return np.array(view, dtype=KINDS[kind][1])


# ----- the zip format -------------------------------------------------------------------------------------
class _ZipFile:
    """torch's zip archive: checks the member names and sizes before reading any."""

    def __init__(self, path: Path):
        self.path, self.source = path, str(path)
        self.size = path.stat().st_size
        self.budget = MAX_EXPANSION * self.size + (1 << 20)
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise UnreadableFileError(f"{path}: damaged zip archive ({err})") from None
        try:
            self.members = self._check_names(infos)
        except UnreadableFileError:
            self.zf.close()
            raise
        self.byteorder = "little"

    def _check_names(self, infos) -> dict[str, zipfile.ZipInfo]:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "\x00" in name:
                raise UnsafeFileError(f"{self.source}: zip member {name!r} points outside the archive")
            if name in members:
                raise UnsafeFileError(f"{self.source}: zip member {name!r} appears twice")
            members[name] = info
        tops = {name.split("/")[0] for name in members}
        if len(tops) != 1 or any("/" not in name for name in members):
            raise UnreadableFileError(f"{self.source}: not a PyTorch archive (expected one top folder, found "
                                      f"{sorted(tops)[:4]})")
        self.top = tops.pop()
        if f"{self.top}/constants.pkl" in members or any(n.startswith(f"{self.top}/code/") for n in members):
            raise UnreadableFileError(f"{self.source} is a TorchScript archive (torch.jit.save), not a state dict")
        if f"{self.top}/data.pkl" not in members:
            raise UnreadableFileError(f"{self.source}: not a PyTorch archive (no {self.top}/data.pkl)")
        return members

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def _read(self, record: str, at_least: int = 0) -> bytes:
        """The bytes of `<top>/<record>`, after checking its declared size against what is left of the budget."""
        info = self.members.get(f"{self.top}/{record}")
        if info is None:
            raise UnreadableFileError(f"{self.source}: the archive has no {record!r}")
        if info.file_size > self.budget:
            raise UnsafeFileError(f"{self.source}: zip member {info.filename!r} claims {info.file_size} bytes, "
                                  f"far more than the {self.size}-byte archive holds (a zip bomb?)")
        if info.file_size < at_least:
            raise UnsafeFileError(f"{self.source}: storage {record.rpartition('/')[2]!r} claims {at_least} bytes, "
                                  f"the archive holds {info.file_size}")
        self.budget -= info.file_size
        try:
            with self.zf.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as err:
            raise UnreadableFileError(f"{self.source}: damaged zip member {info.filename!r} ({err})") from None
        if len(data) != info.file_size:
            raise UnreadableFileError(f"{self.source}: zip member {info.filename!r} is not the size it claims")
        return data

    def load(self):
        if f"{self.top}/byteorder" in self.members:
            order = self._read("byteorder")
            if order not in (b"little", b"big"):
                raise UnreadableFileError(f"{self.source}: unknown byte order {order[:20]!r} (little or big)")
            self.byteorder = order.decode()
        if f"{self.top}/version" in self.members and not self._read("version").strip().isdigit():
            raise UnreadableFileError(f"{self.source}: its version record is not a number")
        data = self._read("data.pkl")
        pickle_end(data, 0, self.source)
        return safe_loads(data, source=self.source, max_storage_bytes=self.size)

    def storage(self, ref) -> bytes:
        return self._read(f"data/{ref.key}", at_least=ref.nbytes)


# ----- the legacy format ----------------------------------------------------------------------------------
class _LegacyFile:
    """The pre-1.6 stream of pickles and raw storages, read in place through a read-only memory map."""

    byteorder = "little"  # the writer converts storages to little-endian on every machine

    def __init__(self, path: Path):
        self.source = str(path)
        self.file = open(path, "rb")  # noqa: SIM115 - closed in __exit__
        try:
            self.mm = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as err:
            self.file.close()
            raise UnreadableFileError(f"{path}: unreadable ({err})") from None
        self.storages: dict[str, object] = {}
        self.offsets: dict[str, int] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.mm.close()
        self.file.close()

    def _pickle(self, pos: int, storages: bool = False):
        end = pickle_end(self.mm, pos, self.source)
        obj = safe_loads(self.mm[pos:end], source=self.source, max_storage_bytes=len(self.mm),
                         storages=self.storages if storages else {})
        return obj, end

    def load(self):
        magic, pos = self._pickle(0)
        if type(magic) is not int or magic != LEGACY_MAGIC:
            raise UnreadableFileError(f"{self.source}: not a PyTorch file (no legacy magic number)")
        protocol, pos = self._pickle(pos)
        if protocol != LEGACY_PROTOCOL:
            raise UnreadableFileError(f"{self.source}: legacy protocol {protocol!r}, expected {LEGACY_PROTOCOL}")
        _sys_info, pos = self._pickle(pos)
        obj, pos = self._pickle(pos, storages=True)
        keys, pos = self._pickle(pos)
        if type(keys) is not list or any(type(k) is not str for k in keys) or len(set(keys)) != len(keys):
            raise UnreadableFileError(f"{self.source}: damaged list of storage keys")
        if set(keys) != set(self.storages):
            raise UnreadableFileError(f"{self.source}: the storage keys do not match the storages the object uses")
        for key in keys:
            ref = self.storages[key]
            if pos + 8 > len(self.mm):
                raise UnsafeFileError(f"{self.source}: {ref!r} lies past the end of the file")
            count = int.from_bytes(self.mm[pos:pos + 8], "little", signed=True)
            if count != ref.numel:
                raise UnsafeFileError(f"{self.source}: {ref!r} is stored with {count} elements")
            self.offsets[key] = pos + 8
            pos += 8 + ref.nbytes
            if pos > len(self.mm):
                raise UnsafeFileError(f"{self.source}: {ref!r} claims {ref.nbytes} bytes, the file ends first")
        return obj

    def storage(self, ref) -> bytes:
        start = self.offsets[ref.key]
        return self.mm[start:start + ref.nbytes]
