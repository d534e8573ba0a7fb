"""Reading PyTorch files without torch (`st.models.read_state_dict`): files written by torch.save in both formats
round-trip (every dtype, views sharing a storage, offsets, scalars, empty tensors, big-endian archives,
Parameters, OrderedDicts, wrappers), also in a process where `import torch` fails, and load into striate
models; hand-crafted hostile files (os.system through every opcode that calls or builds, lookalike names,
storages and tensors reaching outside the file, zip traversal, zip bombs) are refused, nothing run, nothing
written."""

import io
import re
import struct
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import striate as st
from striate.models import UnreadableFileError, UnsafeFileError, read_state_dict

FORMATS = pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
PROTOCOLS = pytest.mark.parametrize("zipped, protocol", [(True, 2), (False, 2), (True, 4), (False, 5)],
                                    ids=["zip", "legacy", "zip-protocol-4", "legacy-protocol-5"])


def expected(torch, value):
    value = value.detach()
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    if value.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        value = value.long()
    return value.numpy()


def assert_same(torch, got: dict, state: dict):
    assert list(got) == list(state)
    for key, value in state.items():
        want = expected(torch, value)
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def varied_state(torch):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 5, 6, generator=gen)
    return OrderedDict([
        ("f32", torch.randn(3, 4, generator=gen)),
        ("f16", torch.randn(7, generator=gen).half()),
        ("bf16", torch.randn(2, 3, generator=gen).bfloat16()),
        ("f64", torch.randn(5, generator=gen, dtype=torch.float64)),
        ("i64", torch.arange(6).reshape(2, 3)),
        ("i32", torch.arange(4, dtype=torch.int32)),
        ("u8", torch.arange(250, 256, dtype=torch.uint8)),
        ("mask", torch.tensor([True, False, True])),
        ("base", base),
        ("transposed", base.transpose(0, 2)),             # same storage, other strides
        ("strided", base[1:, ::2, 3]),                    # offset and steps
        ("offset", base.view(-1)[17:29]),                 # storage offset, contiguous
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 3)),
        ("param", torch.nn.Parameter(torch.randn(2, 2, generator=gen))),
        ("num_batches_tracked", torch.tensor(7)),
    ])


@PROTOCOLS
def test_round_trip_both_formats(torch, tmp_path, zipped, protocol):
    state = varied_state(torch)
    path = tmp_path / "weights.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zipped, pickle_protocol=protocol)
    assert_same(torch, read_state_dict(path), state)


@FORMATS
def test_module_state_dict_and_wrappers(torch, tmp_path, zipped):
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    state = net.state_dict()
    param = torch.nn.Parameter(torch.ones(2))
    param.note = "a Python attribute: saved through _rebuild_parameter_with_state"
    cases = [
        (state, dict(state)),
        ({"epoch": 3, "state_dict": state, "optimizer": {"lr": 0.1, "momentum": torch.zeros(3)}}, dict(state)),
        ({"model": {"state_dict": state}, "args": [1, "x", None]}, dict(state)),
        ({"net": {"backbone": {"w": torch.ones(2)}, "head": [torch.zeros(1), torch.ones(1)]}, "step": 5},
         {"backbone.w": torch.ones(2), "head.0": torch.zeros(1), "head.1": torch.ones(1)}),
        (OrderedDict((f"module.{k}", v) for k, v in state.items()), dict(state)),  # nn.DataParallel
        ({"p": param}, {"p": param}),
    ]
    for i, (saved, want) in enumerate(cases):
        path = tmp_path / f"case{i}.pt"
        torch.save(saved, path, _use_new_zipfile_serialization=zipped)
        assert_same(torch, read_state_dict(path), want)


def rewrite_zip(src: Path, dst: Path, change) -> None:
    """Copy a zip archive member by member, stored, `change(name, data) -> data`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change(info.filename, zin.read(info)))


def test_big_endian_archive_is_byteswapped(torch, tmp_path):
    """An archive as a big-endian machine writes it: byteorder 'big' and every storage swapped."""
    state = OrderedDict(f32=torch.randn(3, 2), f64=torch.randn(4, dtype=torch.float64), f16=torch.randn(3).half(),
                        bf16=torch.randn(3).bfloat16(), i64=torch.arange(3), i32=torch.arange(3, dtype=torch.int32))
    torch.save(state, tmp_path / "little.pth")
    sizes = {str(i): v.element_size() for i, v in enumerate(state.values())}  # storage keys in save order

    def to_big(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        key = name.rsplit("/", 1)[-1]
        if "/data/" in name and key in sizes:
            return np.frombuffer(data, np.dtype(f"<u{sizes[key]}")).byteswap().tobytes()
        return data

    rewrite_zip(tmp_path / "little.pth", tmp_path / "big.pth", to_big)
    assert_same(torch, read_state_dict(tmp_path / "big.pth"), state)
    rewrite_zip(tmp_path / "little.pth", tmp_path / "odd.pth",
                lambda name, data: b"middle" if name.endswith("/byteorder") else data)
    with pytest.raises(UnreadableFileError, match="byte order"):
        read_state_dict(tmp_path / "odd.pth")


def test_read_where_torch_cannot_be_imported(torch, tmp_path):
    state = varied_state(torch)
    torch.save(state, tmp_path / "a.pth")
    torch.save(state, tmp_path / "b.pth", _use_new_zipfile_serialization=False)
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, striate as st\n"
            "for name in ('a', 'b'):\n"
            f"    d = st.models.read_state_dict({str(tmp_path)!r} + '/' + name + '.pth')\n"
            f"    np.savez({str(tmp_path)!r} + '/' + name + '.npz', **d)\n"
            "assert sys.modules['torch'] is None\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    for name in ("a", "b"):
        with np.load(tmp_path / f"{name}.npz") as saved:
            assert_same(torch, {k: saved[k] for k in saved.files}, state)


def test_load_pretrained_and_torch_weights_from_pth(torch, rng, tmp_path):
    nn = torch.nn
    tnet = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 5)).eval()
    with torch.no_grad():
        tnet[1].running_mean.uniform_(-0.5, 0.5)
        tnet[1].running_var.uniform_(0.5, 2.0)
    snet = st.nn.Sequential(st.nn.Conv2d(1, 4, 3, padding=1, rng=rng), st.nn.BatchNorm(4), st.nn.ReLU(),
                            st.nn.MaxPool2d(2), st.nn.Flatten(), st.nn.Linear(64, 5, rng=rng)).eval()
    torch.save(tnet.state_dict(), tmp_path / "t.pth", _use_new_zipfile_serialization=False)
    st.models.load_torch_weights(snet, tmp_path / "t.pth", input_shape=(8, 8, 1))
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    with torch.no_grad():
        ref = tnet(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    with st.no_grad():
        np.testing.assert_allclose(snet(x), ref, rtol=1e-5, atol=1e-5)
    # striate's own keys in a .pth: load_pretrained equals loading the same dict
    own = {k: torch.tensor(np.array(v)) for k, v in snet.state_dict().items()}
    torch.save(own, tmp_path / "own.pt")
    twin, other = (st.nn.Sequential(st.nn.Conv2d(1, 4, 3, padding=1, rng=np.random.default_rng(s)),
                                    st.nn.BatchNorm(4), st.nn.ReLU(), st.nn.MaxPool2d(2), st.nn.Flatten(),
                                    st.nn.Linear(64, 5, rng=np.random.default_rng(s))).eval() for s in (1, 2))
    st.models.load_pretrained(twin, tmp_path / "own.pt")
    st.models.load_pretrained(other, {k: v.numpy() for k, v in own.items()})
    for (k, v), (_, w) in zip(twin.state_dict().items(), other.state_dict().items(), strict=True):
        np.testing.assert_array_equal(v, w, err_msg=k)
    with st.no_grad():
        np.testing.assert_array_equal(twin(x), snet(x))


# ----- hostile files ------------------------------------------------------------------------------------
def op_global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_str(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s.encode())) + s.encode()


def op_int(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8 or 1, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def op_tuple(items) -> bytes:
    return b"(" + b"".join(items) + b"t"


def tensor_ops(kind="FloatStorage", key="0", numel=4, offset=0, size=(4,), stride=(1,), legacy=False) -> bytes:
    """The opcodes torch writes for one tensor, with any field chosen."""
    pid = op_tuple([op_str("storage"), op_global("torch", kind), op_str(key), op_str("cpu"), op_int(numel)]
                   + ([b"N"] if legacy else []))
    return (op_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + b"Q" + op_int(offset)
            + op_tuple(op_int(n) for n in size) + op_tuple(op_int(s) for s in stride) + b"\x89"
            + op_global("collections", "OrderedDict") + b")R" + b"tR")


def state_pickle(entries: dict, proto: int = 2) -> bytes:
    """A pickled dict {key: raw value opcodes}."""
    return bytes([0x80, proto]) + b"}(" + b"".join(op_str(k) + v for k, v in entries.items()) + b"u."


def write_zip(path: Path, pkl: bytes, storages=None, extra=None, top="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{top}/data.pkl", pkl)
        z.writestr(f"{top}/byteorder", "little")
        for key, raw in (storages or {}).items():
            z.writestr(f"{top}/data/{key}", raw)
        for name, raw in (extra or {}).items():
            z.writestr(name, raw)
        z.writestr(f"{top}/version", "3\n")


def write_legacy(path: Path, pkl: bytes, storages=None, counts=None):
    storages = storages or {}
    out = io.BytesIO()
    for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        out.write(b"\x80\x02" + (op_int(head) if isinstance(head, int) else b"}") + b".")
    out.write(pkl)
    out.write(b"\x80\x02]" + (b"(" + b"".join(op_str(k) for k in storages) + b"e" if storages else b"") + b".")
    for key, raw in storages.items():
        out.write(struct.pack("<q", (counts or {}).get(key, len(raw) // 4)) + raw)
    path.write_bytes(out.getvalue())


def write_both(tmp_path: Path, pkl_zip: bytes, pkl_legacy: bytes | None = None, storages=None):
    write_zip(tmp_path / "z.pth", pkl_zip, storages)
    write_legacy(tmp_path / "l.pth", pkl_zip if pkl_legacy is None else pkl_legacy, storages)
    return [tmp_path / "z.pth", tmp_path / "l.pth"]


@pytest.fixture
def sentinel(tmp_path):
    """A file the payloads would create; the test checks it never appears and nothing else is written."""
    target = tmp_path / "pwned"
    before = sorted(p.name for p in tmp_path.iterdir())
    yield target
    assert not target.exists(), "the payload ran"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".pth") == \
        sorted(n for n in before if not n.endswith(".pth"))


def refused(path, error=UnsafeFileError, match=None, what="") -> str:
    """The message of the `error` that reading `path` raises; it names the file (and matches `match`)."""
    try:
        read_state_dict(path)
    except error as err:
        message = str(err)
    else:
        pytest.fail(f"{what or path}: read, not refused")
    assert str(path) in message and (match is None or re.search(match, message)), f"{what}: {message}"
    return message


def test_a_real_malicious_torch_save_is_refused(torch, tmp_path, sentinel):
    class Evil:
        def __reduce__(self):
            import os
            return os.mkdir, (str(sentinel),)

    for zipped in (True, False):
        path = tmp_path / f"evil{zipped}.pth"
        torch.save({"w": torch.ones(2), "x": Evil()}, path, _use_new_zipfile_serialization=zipped)
        assert "mkdir" in refused(path, match="refused to load")


def test_a_pickled_module_is_refused_with_a_hint(torch, tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")
    assert "state_dict()" in refused(tmp_path / "model.pth", match="torch.nn.modules.linear.Linear")


def payloads(cmd: str) -> dict[str, bytes]:
    arg = op_str(cmd)
    return {
        "GLOBAL+REDUCE": b"\x80\x02" + op_global("os", "system") + arg + b"\x85R.",
        "STACK_GLOBAL": b"\x80\x04" + op_str("os") + op_str("system") + b"\x93" + arg + b"\x85R.",
        "INST": b"\x80\x02(" + arg + b"i" + b"os\nsystem\n.",
        "OBJ": b"\x80\x02(" + op_global("os", "system") + arg + b"o.",
        "NEWOBJ": b"\x80\x02" + op_global("subprocess", "Popen") + op_tuple([op_str("sh"), op_str("-c"), arg])
                  + b"\x85\x81.",
        "posix": b"\x80\x02" + op_global("posix", "system") + arg + b"\x85R.",
        "in a tensor's place": state_pickle({"w": op_global("os", "system") + arg + b"\x85R"}),
        "builtins.getattr": b"\x80\x02" + op_global("builtins", "getattr") + op_tuple(
            [op_global("torch._utils", "_rebuild_tensor_v2"), op_str("__globals__")]) + b"R.",
        "__builtins__": b"\x80\x02" + op_global("torch._utils", "__builtins__") + b".",
        "trailing space": b"\x80\x02" + op_global("torch._utils", "_rebuild_tensor_v2 ") + b".",
        "leading space": b"\x80\x02" + op_global(" torch._utils", "_rebuild_tensor_v2") + b".",
        "nested path": b"\x80\x04" + op_str("torch") + op_str("_utils._rebuild_tensor_v2") + b"\x93.",
        "module path": b"\x80\x02" + op_global("torch._utils._rebuild_tensor_v2", "__globals__") + b".",
        "real torch.load": b"\x80\x02" + op_global("torch", "load") + b".",
        "numpy": b"\x80\x02" + op_global("numpy", "load") + b".",
    }


SHOWN = {"GLOBAL+REDUCE": "'os.system'", "STACK_GLOBAL": "'os.system'", "INST": "'os.system'",
         "nested path": "module 'torch', name '_utils._rebuild_tensor_v2'",
         "trailing space": "module 'torch._utils', name '_rebuild_tensor_v2 '",
         "leading space": "module ' torch._utils'", "builtins.getattr": "'builtins.getattr'"}


@pytest.mark.parametrize("name", list(payloads("x")))
def test_globals_outside_the_allow_list_are_refused_by_name(tmp_path, sentinel, name):
    pkl = payloads(f"touch {sentinel}")[name]
    for path in write_both(tmp_path, pkl):
        message = refused(path, match="refused to load")
        assert "only tensors and dicts are allowed" in message
        assert SHOWN.get(name, "") in message  # lookalikes are quoted so that they do not read as allowed names


def test_build_and_calls_on_allowed_stand_ins_are_refused(tmp_path, sentinel):
    build_fn = op_global("torch._utils", "_rebuild_tensor_v2") + b"}" + op_str("__call__") \
        + op_global("torch", "FloatStorage") + b"sb."
    build_type = op_global("torch", "FloatStorage") + b"N}" + op_str("kind") + op_str("float64") + b"s\x86b."
    build_dict = b"}N}" + op_str("x") + b"K\x01s\x86b."                  # BUILD with slot state on a dict
    build_od = op_global("collections", "OrderedDict") + b")RN}" + op_str("__class__") + b"N" + b"s\x86b."
    build_storage = b"(" + op_str("storage") + op_global("torch", "FloatStorage") + op_str("0") + op_str("cpu") \
        + b"K\x01tQ}" + op_str("numel") + op_int(10**9) + b"sb."
    call_type = op_global("torch", "FloatStorage") + op_tuple([op_str("x")]) + b"R."
    newobj_fn = op_global("torch._utils", "_rebuild_parameter") + b")\x81."
    for name, body in {"BUILD fn": build_fn, "BUILD type": build_type, "BUILD storage": build_storage}.items():
        for path in write_both(tmp_path, b"\x80\x02" + body, storages={"0": b"\0" * 4}):
            refused(path, match="refused BUILD", what=name)
    for body in (build_dict, build_od, call_type, newobj_fn):
        for path in write_both(tmp_path, b"\x80\x02" + body):
            refused(path, UnreadableFileError)


def test_tensors_and_storages_outside_the_file_are_refused(tmp_path, sentinel):
    raw = np.arange(4, dtype="<f4").tobytes()
    cases = {
        "past the storage": dict(numel=4, size=(5,)),
        "offset past the end": dict(offset=4, size=(1,)),
        "negative offset": dict(offset=-1, size=(2,)),
        "negative stride": dict(size=(2,), stride=(-1,), offset=1),
        "overflowing stride": dict(size=(2, 2), stride=(1, 2**63)),
        "huge size": dict(size=(2**40, 2**40), stride=(0, 0)),
        "more elements than the storage": dict(size=(1000,), stride=(0,)),
        "empty but absurd": dict(size=(0, 2**62, 2**62), stride=(1, 1, 1)),
        "storage larger than the file": dict(numel=10**12, size=(1,)),
        "storage larger than its record": dict(numel=64, size=(1,)),
    }
    for name, fields in cases.items():
        zip_pkl = state_pickle({"w": tensor_ops(**fields)})
        legacy_pkl = state_pickle({"w": tensor_ops(legacy=True, **fields)})
        write_zip(tmp_path / "z.pth", zip_pkl, {"0": raw})
        refused(tmp_path / "z.pth", what=name)
        counts = {"0": fields.get("numel", 4)}
        write_legacy(tmp_path / "l.pth", legacy_pkl, {"0": raw}, counts)
        refused(tmp_path / "l.pth", what=name)
    # the same tensor, in bounds, reads: the crafted files are otherwise well formed
    write_zip(tmp_path / "z.pth", state_pickle({"w": tensor_ops(size=(2, 2), stride=(1, 2))}), {"0": raw})
    np.testing.assert_array_equal(read_state_dict(tmp_path / "z.pth")["w"], [[0, 2], [1, 3]])
    write_legacy(tmp_path / "l.pth", state_pickle({"w": tensor_ops(legacy=True, offset=1, size=(3,))}), {"0": raw})
    np.testing.assert_array_equal(read_state_dict(tmp_path / "l.pth")["w"], [1, 2, 3])
    # a legacy storage whose element count disagrees with the pickle, or that runs past the end of the file
    write_legacy(tmp_path / "l.pth", state_pickle({"w": tensor_ops(legacy=True)}), {"0": raw}, {"0": 3})
    refused(tmp_path / "l.pth", match="stored with 3")
    write_legacy(tmp_path / "l.pth", state_pickle({"w": tensor_ops(legacy=True, numel=8, size=(8,))}), {"0": raw},
                 {"0": 8})
    refused(tmp_path / "l.pth", match="file ends first")


def claim_size(data: bytearray, name: bytes, size: int) -> bytearray:
    """Rewrite the uncompressed size that a zip's local and central headers give for member `name`."""
    for sig, name_len_at, head, size_at in ((b"PK\x03\x04", 26, 30, 22), (b"PK\x01\x02", 28, 46, 24)):
        pos = data.find(sig)
        while pos != -1:
            n = struct.unpack_from("<H", data, pos + name_len_at)[0]
            if data[pos + head:pos + head + n] == name:
                struct.pack_into("<I", data, pos + size_at, size)
            pos = data.find(sig, pos + 4)
    return data


def test_zip_traversal_and_bombs_are_refused(tmp_path, sentinel):
    pkl = state_pickle({"w": tensor_ops()})
    raw = np.zeros(4, "<f4").tobytes()
    for bad in ("archive/../../escape", "../x", "/etc/passwd", "archive/data/../../../y", "C:/x"):
        write_zip(tmp_path / "t.pth", pkl, {"0": raw}, extra={bad: b"x"})
        refused(tmp_path / "t.pth", match="outside the archive")
    assert not (tmp_path.parent / "escape").exists() and not (tmp_path.parent / "y").exists()
    # a deflated record that claims (and holds) 64 MB of zeros in a file of a few dozen KB
    with zipfile.ZipFile(tmp_path / "bomb.pth", "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", b"\0" * (64 << 20), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    assert (tmp_path / "bomb.pth").stat().st_size < 200_000
    refused(tmp_path / "bomb.pth", match="zip bomb")
    # ... and one that claims 16 bytes but inflates to 64 MB: reading stops at what it claims, the CRC fails
    data = claim_size(bytearray((tmp_path / "bomb.pth").read_bytes()), b"archive/data/0", 16)
    (tmp_path / "bomb2.pth").write_bytes(bytes(data))
    refused(tmp_path / "bomb2.pth", UnreadableFileError)


def test_damaged_and_odd_files_are_refused_clearly(torch, tmp_path):
    pkl = state_pickle({"w": tensor_ops()})
    raw = np.zeros(4, "<f4").tobytes()
    loop = b"\x80\x02}q\x00" + op_str("a") + b"h\x00s" + op_str("w") + tensor_ops() + b"s."  # d["a"] = d
    cases = {
        "cycle": (loop, "appears twice"),
        "memo bomb": (b"\x80\x02Nr\xff\xff\xff\xff.", "memo index"),
        "extension registry": (b"\x80\x02\x82\x01.", "EXT1"),
        "text persistent id": (b"\x80\x02P0\n.", "PERSID"),
        "module persistent id": (b"\x80\x02(" + op_str("module") + b"NNNtQ.", "only storages"),
        "long string": (b"\x80\x02X\xff\xff\xff\x7f" + b"a" * 10 + b".", "damaged pickle"),
        "no tensors": (b"\x80\x02}" + op_str("a") + b"K\x01s.", "no tensors"),
        "single tensor": (b"\x80\x02" + tensor_ops() + b".", "single tensor"),
        "truncated": (pkl[:-8], "damaged pickle"),
    }
    for name, (body, match) in cases.items():
        write_zip(tmp_path / "d.pth", body, {"0": raw})
        refused(tmp_path / "d.pth", UnreadableFileError, match=match, what=name)
    write_zip(tmp_path / "s.pth", pkl, {"0": raw}, extra={"archive/constants.pkl": b"", "archive/code/x.py": b""})
    refused(tmp_path / "s.pth", UnreadableFileError, match="TorchScript")
    write_zip(tmp_path / "m.pth", pkl, {}, top="archive")
    refused(tmp_path / "m.pth", UnreadableFileError, match="no 'data/0'")
    for zipped in (True, False):  # files cut short
        buf = io.BytesIO()
        torch.save({"w": torch.ones(64)}, buf, _use_new_zipfile_serialization=zipped)
        for cut in (len(buf.getvalue()) // 2, len(buf.getvalue()) - 4):
            (tmp_path / "cut.pth").write_bytes(buf.getvalue()[:cut])
            refused(tmp_path / "cut.pth", UnreadableFileError, what=f"zip={zipped}, cut at {cut}")
    (tmp_path / "junk.pth").write_bytes(b"hello, world" * 4)
    refused(tmp_path / "junk.pth", UnreadableFileError, match="not a PyTorch file")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"{not json}")
    refused(tmp_path / "bad.safetensors", UnreadableFileError, match="safetensors")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "nowhere.pth")


def test_safetensors_files_read_too(tmp_path):
    from safetensors.numpy import save_file

    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "h": np.ones(2, np.float16),
              "n": np.array(3, np.int64)}
    save_file(arrays, str(tmp_path / "w.safetensors"))
    got = read_state_dict(tmp_path / "w.safetensors")
    assert got["h"].dtype == np.float32 and got["n"].dtype == np.int64
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v)


def test_finetune_from_a_pth_file_and_a_hostile_one(torch, tmp_path, capsys):
    from striate.cli import main
    from striate.run import RunDir

    source = st.models.get("digits_net", 10, 1, rng=np.random.default_rng(0))
    torch.save({"state_dict": {k: torch.tensor(np.array(v)) for k, v in source.state_dict().items()}},
               tmp_path / "digits.pth", _use_new_zipfile_serialization=False)
    fast = ["--report", "off", "--diagnostics", "0", "--limit", "200", "--epochs", "1"]
    assert main(["finetune", "--from", str(tmp_path / "digits.pth"), "--model", "digits_net", "--data", "digits",
                 "--freeze", "1", "--out", str(tmp_path / "ft"), *fast]) == 0
    tuned = RunDir(tmp_path / "ft").load_model().model.state_dict()
    first = next(iter(source.state_dict()))
    np.testing.assert_array_equal(tuned[first], source.state_dict()[first])  # frozen: the file's weights
    sentinel = tmp_path / "pwned"
    write_zip(tmp_path / "evil.pth", payloads(f"touch {sentinel}")["GLOBAL+REDUCE"])
    capsys.readouterr()
    assert main(["finetune", "--from", str(tmp_path / "evil.pth"), "--model", "digits_net", "--data", "digits",
                 "--out", str(tmp_path / "ft2"), *fast]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("striate finetune: error: refused to load 'os.system'") and len(err.splitlines()) == 1
    assert not (tmp_path / "ft2").exists() and not sentinel.exists()
