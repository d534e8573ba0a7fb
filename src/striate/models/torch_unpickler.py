"""A restricted unpickler for the pickles inside PyTorch files: tensors, storages and dicts, nothing that runs.

Design. A pickle is a program: GLOBAL / STACK_GLOBAL import any name, REDUCE / INST / OBJ / NEWOBJ call it,
BUILD calls `__setstate__` or sets attributes. `torch.load(weights_only=True)` (torch/_weights_only_unpickler.py)
answers with its own opcode interpreter whose GLOBAL resolves only an allow-list (rebuild functions, storage
types, dtypes, `OrderedDict`, ...), whose REDUCE/NEWOBJ call only allow-listed objects and whose BUILD touches
only tensors, parameters and OrderedDicts. Scanners such as picklescan do the opposite: they list the globals a
file names and compare them with a block list of dangerous ones, so every callable nobody thought of
(`runpy._run_code`, `pydoc.locate`, a nested `torch._utils.__builtins__` path, names the scanner parses
differently from pickle, opcodes it does not model, a zip member it does not open) gets through, and each
bypass is fixed only after it is published. This module allow-lists, and resolves each allowed name to its
OWN stand-in, never to the real object: `find_class` maps an exact (module, name) pair to a sealed stand-in
(rebuild functions that return a `TensorRef` description, storage types that carry only a dtype name, and
`StateDict`, an OrderedDict), and refuses everything else by name. So REDUCE / INST / OBJ / NEWOBJ can only
ever call those stand-ins; BUILD on them raises (they define `__setstate__` to refuse and have no `__dict__`),
and BUILD on a built-in container fails. `persistent_load` accepts only ('storage', type, key, location,
numel) ids and returns a `StorageRef` (no bytes are read while unpickling). The caller (`torch_file.py`)
bounds-checks every tensor against its storage and the storage against the file before reading a byte.
Before the C unpickler sees a pickle, `pickle_end` walks its opcodes with `pickletools` to find where it ends,
check that every declared length fits in the data and that memo indices stay small, and refuse the opcodes a
torch file never needs (extension registry, text persistent ids, out-of-band buffers): this is a length
check, not a scanner; safety rests on the allow-list.

The allow-list (`ALLOWED_GLOBALS`): torch._utils._rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter and
_rebuild_parameter_with_state; torch.{Double,Float,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage and
torch(.storage).UntypedStorage; collections.OrderedDict. Nothing else is needed for a state dict: the storage
type names the element type (no dtype objects), sizes and strides are tuples (no torch.Size). Tensor
subclasses and dtypes without a storage type (_rebuild_tensor_v3, _rebuild_from_type_v2), quantized and sparse
tensors, numpy scalars, argparse namespaces in training checkpoints: all refused by name.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
from collections import OrderedDict

MAX_DIMS = 64
MAX_EXTENT = 1 << 48  # product of a tensor's non-zero dimensions
# opcodes PyTorch never writes that reach past the allow-list's single door (find_class) or out of the data
_REFUSED_OPCODES = {"EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER", "READONLY_BUFFER"}
_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}
_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class UnreadableFileError(ValueError):
    """A weights file that is damaged, is not a PyTorch / safetensors file, or holds no dict of tensors."""


class UnsafeFileError(UnreadableFileError):
    """A weights file that asked for something a state dict never needs (a global outside the allow-list, a
    tensor reaching outside its storage, a zip member outside the archive, a zip bomb): hostile, not damaged."""


# storage type name in the file -> kind (see torch_file.KINDS); UntypedStorage holds bytes
STORAGE_KINDS = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "UntypedStorage": "uint8",
}
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2,
            "int8": 1, "uint8": 1, "bool": 1}


class _Sealed:
    """Base of every stand-in: no `__dict__`, and BUILD (`__setstate__`) is refused."""
    __slots__ = ()

    def __setstate__(self, state):
        raise UnsafeFileError(f"refused BUILD on {self!r}: only dicts may be built")

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} is not picklable")


class StorageType(_Sealed):
    """Stands for torch.FloatStorage & co. inside a pickle: a dtype name, nothing callable."""
    __slots__ = ("name", "kind")

    def __init__(self, name: str, kind: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", kind)

    def __setattr__(self, key, value):
        raise AttributeError("read-only")

    def __repr__(self):
        return f"torch.{self.name}"


class StorageRef(_Sealed):
    """One storage of the file: `key` (its record name), `kind` (element type), `numel` (element count)."""
    __slots__ = ("key", "kind", "numel")

    def __init__(self, key: str, kind: str, numel: int):
        self.key, self.kind, self.numel = key, kind, numel

    @property
    def nbytes(self) -> int:
        return self.numel * ITEMSIZE[self.kind]

    def __repr__(self):
        return f"storage {self.key!r} ({self.numel} × {self.kind})"


class TensorRef(_Sealed):
    """A tensor as the file describes it: elements `offset + Σ index_i * stride_i` of `storage`, all checked
    to lie inside the storage (no negative strides, more elements than the storage holds only if none)."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if type(storage) is not StorageRef:
            raise UnreadableFileError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
        size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
        if type(offset) is not int or offset < 0:
            raise UnsafeFileError(f"tensor storage offset {_short(offset)} is not a non-negative integer")
        if len(size) != len(stride):
            raise UnreadableFileError(f"tensor size {size} and stride {stride} differ in length")
        numel, extent = 1, 1
        for n in size:
            numel, extent = numel * n, extent * max(n, 1)
        if extent > MAX_EXTENT:  # an empty tensor's other dimensions too: numpy could not even describe it
            raise UnsafeFileError(f"tensor size {_short(size)} is absurdly large")
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if last >= storage.numel or numel > storage.numel:
                raise UnsafeFileError(f"tensor of size {size}, stride {stride}, offset {offset} reaches outside "
                                      f"its {storage!r}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def numel(self) -> int:
        out = 1
        for n in self.size:
            out *= n
        return out

    def __repr__(self):
        return f"tensor {self.size} of {self.storage!r}"


def _int_tuple(value, what: str) -> tuple[int, ...]:
    if type(value) is not tuple or len(value) > MAX_DIMS or any(type(v) is not int or v < 0 for v in value):
        raise UnsafeFileError(f"tensor {what} {_short(value)} is not a tuple of at most {MAX_DIMS} non-negative "
                              "integers")
    return value


def _short(value) -> str:
    text = repr(value) if isinstance(value, str | int | tuple | bytes | float | type(None)) else type(value).__name__
    return text if len(text) < 80 else text[:77] + "..."


# ----- the stand-ins the allow-list resolves to --------------------------------------------------------
def _rebuild_tensor(storage, storage_offset, size, stride):
    return TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return TensorRef(storage, storage_offset, size, stride)  # grad flag, hooks and metadata mean nothing here


def _rebuild_parameter(data, requires_grad, backward_hooks):
    if type(data) is not TensorRef:
        raise UnreadableFileError(f"a Parameter wraps a {type(data).__name__}, not a tensor")
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return _rebuild_parameter(data, requires_grad, backward_hooks)  # Python attributes of the Parameter: dropped


class SafeGlobal(_Sealed):
    """A callable stand-in for an allowed global: calls one function of this module, nothing else."""
    __slots__ = ("qualname", "fn")

    def __init__(self, qualname: str, fn):
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "fn", fn)

    def __setattr__(self, key, value):
        raise AttributeError("read-only")

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return self.qualname


class StateDict(OrderedDict):
    """Stands for collections.OrderedDict. BUILD may only give it a dict of attributes (torch's `_metadata`,
    the modules' version numbers), which is dropped."""

    def __setstate__(self, state):
        if state is not None and type(state) is not dict:
            raise UnsafeFileError(f"refused BUILD on an OrderedDict with a {type(state).__name__} state")


def _allowed_globals() -> dict[tuple[str, str], object]:
    table: dict[tuple[str, str], object] = {("collections", "OrderedDict"): StateDict}
    for fn in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter, _rebuild_parameter_with_state):
        table[("torch._utils", fn.__name__)] = SafeGlobal(f"torch._utils.{fn.__name__}", fn)
    for name, kind in STORAGE_KINDS.items():
        table[("torch", name)] = StorageType(name, kind)
    table[("torch.storage", "UntypedStorage")] = table[("torch", "UntypedStorage")]
    return table


ALLOWED_GLOBALS = _allowed_globals()


class SafeUnpickler(pickle.Unpickler):
    """Unpickles one of a PyTorch file's pickles: only `ALLOWED_GLOBALS` (as stand-ins) and storage ids.

    `source` names the file in errors; a storage may claim at most `max_storage_bytes`; `storages`
    collects every StorageRef by key (shared between the pickles of one file)."""

    def __init__(self, data: bytes, *, source: str, max_storage_bytes: int, storages: dict | None = None):
        super().__init__(io.BytesIO(data), fix_imports=False, encoding="utf-8")
        self.source, self.max_storage_bytes = source, max_storage_bytes
        self.storages: dict[str, StorageRef] = {} if storages is None else storages

    def find_class(self, module, name):
        target = ALLOWED_GLOBALS.get((module, name)) if type(module) is str and type(name) is str else None
        if target is None:
            qualname = f"{module}.{name}" if _plain(module, name) else f"module {module!r}, name {name!r}"
            hint = ""
            if type(module) is str and (module.startswith("torch.nn") or module == "__main__"):
                hint = " (this file holds a pickled model object: save `model.state_dict()` instead)"
            raise UnsafeFileError(f"refused to load {_short(qualname)} from {self.source}: only tensors and dicts "
                                  f"are allowed{hint}")
        return target

    def persistent_load(self, pid):
        if type(pid) is not tuple or len(pid) not in (5, 6) or _ascii(pid[0]) != "storage":
            raise UnsafeFileError(f"refused persistent id {_short(pid)} in {self.source}: only storages are allowed")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise UnreadableFileError(f"{self.source}: storage views of torch < 0.4 files are not supported")
        key = _ascii(key)
        if type(storage_type) is not StorageType:
            raise UnsafeFileError(f"{self.source}: storage type {_short(storage_type)} is not a torch storage type")
        if type(key) is not str or not _KEY.fullmatch(key):
            raise UnsafeFileError(f"{self.source}: storage key {_short(key)} is not a plain name")
        if type(numel) is not int or numel < 0 or numel * ITEMSIZE[storage_type.kind] > self.max_storage_bytes:
            raise UnsafeFileError(f"{self.source}: storage {key!r} claims {_short(numel)} elements of "
                                  f"{storage_type.kind}, more than the file's {self.max_storage_bytes} bytes")
        ref = self.storages.setdefault(key, StorageRef(key, storage_type.kind, numel))
        if (ref.kind, ref.numel) != (storage_type.kind, numel):
            raise UnsafeFileError(f"{self.source}: storage {key!r} is named as {ref.numel} × {ref.kind} and as "
                                  f"{numel} × {storage_type.kind}")
        return ref


def _plain(module, name) -> bool:
    """Whether module.name reads unambiguously (a dotted module path and one identifier)."""
    return type(module) is str and type(name) is str and bool(_MODULE.fullmatch(module)) and name.isidentifier()


def _ascii(value):
    if type(value) is bytes:
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return value
    return value


def pickle_end(buffer, start: int, source: str) -> int:
    """Where the pickle that starts at `buffer[start]` ends (one past its STOP), after checking its opcodes:
    each declared length inside the data, memo indices no larger than the opcodes read so far, and none of
    `_REFUSED_OPCODES`. `buffer` is bytes or an mmap (read in place, never copied whole)."""
    stream = buffer if hasattr(buffer, "seek") else io.BytesIO(buffer)
    stream.seek(start)
    count = 0
    try:
        for count, (op, arg, pos) in enumerate(pickletools.genops(stream), 1):  # noqa: B007 - pos in errors
            if op.name in _REFUSED_OPCODES:
                raise UnsafeFileError(f"refused pickle opcode {op.name} at byte {pos} of {source}: a PyTorch "
                                      "file never needs it")
            if op.name in _MEMO_OPCODES and (type(arg) is not int or not 0 <= arg <= count):
                raise UnsafeFileError(f"{source}: pickle memo index {_short(arg)} at byte {pos} is out of range")
            if op.name == "STOP":
                return stream.tell()
    except UnreadableFileError:
        raise
    except Exception as err:  # noqa: BLE001 - ValueError from a bad opcode or a length past the data
        raise UnreadableFileError(f"{source}: damaged pickle ({err})") from None
    raise UnreadableFileError(f"{source}: the pickle ends without STOP")


def safe_loads(data: bytes, *, source: str, max_storage_bytes: int = 0, storages: dict | None = None):
    """The object one pickle (`data`, already checked by `pickle_end`) describes, with stand-ins for tensors.
    Every failure is an UnreadableFileError (UnsafeFileError when refused on purpose) naming `source`."""
    unpickler = SafeUnpickler(data, source=source, max_storage_bytes=max_storage_bytes, storages=storages)
    try:
        return unpickler.load()
    except UnreadableFileError as err:
        text = str(err)
        raise type(err)(text if source in text else f"{source}: {text}") from None
    except Exception as err:  # noqa: BLE001 - anything a hostile pickle provokes: TypeError, AttributeError...
        raise UnreadableFileError(f"{source}: unreadable pickle ({type(err).__name__}: {_short(str(err))})") \
            from None
