"""Crafted files and arrays: each malformed input is a DataError naming the file and key, never a raw
exception, and no dtype conversion loses anything silently (labels 0.5, pixels 300 or int16 that would wrap).
Also: CIFAR pickles of every protocol load while hostile ones stay refused, and tar members that would
escape the extraction folder are refused by name."""

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from striate.data import DataError, DataLoader, PerChannelMean, Preprocessor, Scale, load_image_folder, load_mnist
from striate.data.datasets import as_uint8, check_images, check_labels, extract_archive, read_archive
from striate.data.datasets import cifar10 as cifar_mod
from striate.data.datasets.mnist import parse_idx, read_idx
from tests.test_data_datasets import cifar_batch, idx_bytes, py2_pickle


# ---------------------------------------------------------------- lossless conversions
def test_check_labels_converts_only_without_loss():
    assert check_labels(np.array([0.0, 3.0, 2.0])).tolist() == [0, 3, 2]
    assert check_labels(np.array([1, 2], np.uint8)).dtype == np.int64
    with pytest.raises(DataError, match=r"y: expected integer labels, got non-integral value 0\.5 at index 1"):
        check_labels(np.array([1.0, 0.5]), name="y")
    with pytest.raises(DataError, match="non-integral value nan"):
        check_labels(np.array([1.0, np.nan]))
    with pytest.raises(DataError, match=r"expected integer class labels, got dtype <U3 \(e\.g\. np\.str_\('cat'\)\)|"
                                        r"got dtype <U3 \(e\.g\. 'cat'\)"):
        check_labels(["cat", "dog"])
    with pytest.raises(DataError, match="got dtype bool"):
        check_labels(np.array([True, False]))
    with pytest.raises(DataError, match="does not fit int64"):
        check_labels(np.array([2**63], np.uint64))
    with pytest.raises(DataError, match="irregular"):
        check_labels([[1, 2], [3]])


def test_as_uint8_refuses_what_would_wrap_or_round():
    assert as_uint8(np.array([0, 255], np.int16)).dtype == np.uint8
    assert as_uint8(np.array([1.0, 254.0])).tolist() == [1, 254]
    with pytest.raises(DataError, match=r"img: pixels must be in \[0, 255\] to become uint8, got value 300 at index "
                                        r"\(0, 1\) \(dtype int16\)"):
        as_uint8(np.array([[3, 300]], np.int16), "img")
    with pytest.raises(DataError, match="value -1"):
        as_uint8(np.array([-1, 3]))
    with pytest.raises(DataError, match="non-integral value 0.5"):
        as_uint8(np.array([0.5]))


def test_float_images_beyond_float32_are_refused():
    check_images(np.full((1, 2, 2, 1), 1e30))
    with pytest.raises(DataError, match="beyond float32's range"):
        check_images(np.full((1, 2, 2, 1), 1e300))
    with pytest.raises(DataError, match="beyond float32's range"):
        DataLoader(np.full((2, 2, 2, 1), 1e300), np.array([0, 1]), batch_size=1, shuffle=False)


def test_preprocess_inputs_must_become_float32_exactly():
    with pytest.raises(DataError, match=r"PerChannelMean\.fit: int64 values beyond \+-2\*\*24"):
        PerChannelMean().fit(np.full((2, 2, 2, 1), 2**40, np.int64))
    with pytest.raises(DataError, match=r"Scale\.transform: values beyond float32's range"):
        Scale().transform(np.full((2, 2, 2, 1), 1e300))
    assert Scale(1.0).transform(np.full((2, 1, 1, 1), 2**24, np.int64)).max() == 2**24
    with pytest.raises(DataError, match="numeric"):
        Scale().transform(np.ones((2, 2), bool))


def test_malformed_states_are_data_errors(rng):
    state = PerChannelMean().fit(rng.random((4, 2, 2, 3))).state_dict()
    for bad, why in [({"type": "PerChannelMean"}, "expected dicts 'config' and 'arrays'"),
                     ({**state, "config": {"nope": 1}}, "bad 'config'"),
                     ({**state, "arrays": {"__class__": 1}}, "not a learned attribute"),
                     ("PerChannelMean", "expected a dict")]:
        with pytest.raises(DataError, match=why):
            Preprocessor.from_state_dict(bad)
    loader = DataLoader(np.zeros((4, 2, 2, 1), np.uint8), np.arange(4), batch_size=2, rng=np.random.default_rng(0))
    next(iter(loader))
    good = loader.state_dict()
    for bad, why in [({}, r"missing \['epoch'"), ({**good, "rng": {}}, "rng.bit_generator"),
                     ({**good, "perm": good["perm"] + 0.5}, "non-integral"),
                     ({**good, "perm": np.zeros(4, np.int64)}, "not a permutation")]:
        with pytest.raises(DataError, match=why):
            DataLoader(np.zeros((4, 2, 2, 1), np.uint8), np.arange(4), batch_size=2,
                       rng=np.random.default_rng(0)).load_state_dict(bad)
    # Float labels with integral values are accepted by the loader (and become int64).
    y = next(iter(DataLoader(np.zeros((2, 1, 1, 1), np.uint8), np.array([1.0, 0.0]), 2, shuffle=False)))[1]
    assert y.dtype == np.int64 and y.tolist() == [1, 0]


# ---------------------------------------------------------------- MNIST IDX
def test_idx_dimensions_that_overflow_or_are_negative(tmp_path):
    # 65536**4 * 1 byte overflows int64 to 0, which matched an empty payload: "cannot reshape array of size 0".
    overflow = bytes([0, 0, 0x08, 4]) + np.array([65536] * 4, ">i4").tobytes()
    with pytest.raises(DataError, match=r"x\.idx: header declares shape \(65536, 65536, 65536, 65536\) .*corrupt"):
        parse_idx(overflow, "x.idx")
    negative = bytes([0, 0, 0x08, 2]) + np.array([-1, -1], ">i4").tobytes() + b"\x00"
    with pytest.raises(DataError, match=r"negative dimension in shape \(-1, -1\)"):
        parse_idx(negative, "x.idx")
    # A small .gz that declares far more than it could decompress to is refused before decompressing.
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3]) + np.array([100000, 100, 100], ">i4").tobytes()))
    with pytest.raises(DataError, match=r"bomb-idx3-ubyte\.gz: header declares shape \(100000, 100, 100\)"):
        read_idx(path)
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08])))
    with pytest.raises(DataError, match=r"bomb-idx3-ubyte\.gz: not an IDX file"):
        read_idx(path)


def _mnist_folder(tmp_path, images: bytes, labels: bytes):
    folder = tmp_path / "mnist"
    folder.mkdir(exist_ok=True)
    (folder / "t10k-images-idx3-ubyte").write_bytes(images)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(labels)
    return folder


def typed_idx(arr: np.ndarray, code: int) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">i4").tobytes() + arr.tobytes()


def test_mnist_values_are_never_cast_with_loss(tmp_path):
    labels = idx_bytes(np.array([1, 2], np.uint8))
    pixels = np.zeros((2, 28, 28), np.int64)
    pixels[1, 3, 4] = 300  # int16 300 used to wrap to 44
    _mnist_folder(tmp_path, typed_idx(pixels.astype(">i2"), 0x0B), labels)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: pixels must be in \[0, 255\] .*value 300 at index "
                                        r"\(1, 3, 4\)"):
        load_mnist("test", root=tmp_path, download_ok=False)
    _mnist_folder(tmp_path, typed_idx(np.full((2, 28, 28), 0.5, ">f4"), 0x0D), labels)  # used to become 0
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: .*non-integral value 0\.5"):
        load_mnist("test", root=tmp_path, download_ok=False)
    _mnist_folder(tmp_path, typed_idx(np.full((2, 28, 28), 7.0, ">f4"), 0x0D),
                  typed_idx(np.array([0.5, 1.0], ">f8"), 0x0E))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: expected integer labels, .*0\.5 at index 0"):
        load_mnist("test", root=tmp_path, download_ok=False)
    _mnist_folder(tmp_path, typed_idx(np.full((2, 28, 28), 7.0, ">f4"), 0x0D),
                  typed_idx(np.array([3.0, 1.0], ">f8"), 0x0E))
    data = load_mnist("test", root=tmp_path, download_ok=False)  # integral floats convert exactly
    assert data.images.dtype == np.uint8 and data.images.max() == 7 and data.labels.tolist() == [3, 1]
    _mnist_folder(tmp_path, idx_bytes(np.zeros((2, 28, 28), np.uint8)), idx_bytes(np.array([1, 12], np.uint8)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: label 12 outside \[0, 10\)"):
        load_mnist("test", root=tmp_path, download_ok=False)
    _mnist_folder(tmp_path, idx_bytes(np.zeros((2, 28, 28), np.uint8)), idx_bytes(np.zeros((2, 1), np.uint8)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: expected MNIST labels \(N,\), got shape \(2, 1\)"):
        load_mnist("test", root=tmp_path, download_ok=False)


# ---------------------------------------------------------------- CIFAR batches
def cifar_tar(path, batches: dict, meta=None, raw: dict | None = None):
    """A cifar-10-python.tar.gz from batch dicts (pickled like Python 2), or raw bytes per member."""
    members = {name: py2_pickle(obj) for name, obj in batches.items()}
    if meta is not None:
        members["batches.meta"] = py2_pickle(meta)
    members.update(raw or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_cifar_labels_and_meta_errors_name_file_and_key(tmp_path, rng):
    path = tmp_path / "cifar-10-python.tar.gz"

    def with_labels(labels):
        batch = cifar_batch(rng, 2)
        batch[b"labels"] = labels
        return {"test_batch": batch}

    cifar_tar(path, with_labels([b"cat", b"dog"]))  # was: invalid literal for int() with base 10: 'cat'
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz:test_batch: 'labels': expected integer class "
                                        r"labels, got dtype <U3"):
        read_archive(path, "test")
    cifar_tar(path, with_labels(["3", "4"]))  # numeric strings were parsed; labels are integers
    with pytest.raises(DataError, match=r"test_batch: 'labels': expected integer class labels"):
        read_archive(path, "test")
    batch = cifar_batch(rng, 2)
    batch[b"labels"] = np.array([0.5, 1.0])  # was silently 0
    cifar_tar(path, {}, raw={"test_batch": pickle.dumps({"data": batch[b"data"], "labels": batch[b"labels"]})})
    with pytest.raises(DataError, match=r"test_batch: 'labels': expected integer labels, got non-integral value 0\.5"):
        read_archive(path, "test")
    cifar_tar(path, with_labels([1, -1]))
    with pytest.raises(DataError, match=r"test_batch: 'labels': label -1 is negative"):
        read_archive(path, "test")
    cifar_tar(path, with_labels([1, 2, 3]))
    with pytest.raises(DataError, match=r"test_batch: 'labels': 3 labels for 2 images"):
        read_archive(path, "test")
    cifar_tar(path, with_labels([0, 1]), meta={b"label_names": [b"only"]})  # was: label 1 outside [0, 1)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz:batches\.meta: 'label_names' lists 1 class but "
                                        r"test_batch has label 1"):
        read_archive(path, "test")
    cifar_tar(path, with_labels([0, 12]))
    with pytest.raises(DataError, match=r"test_batch: label 12 outside \[0, 10\) \(no batches\.meta"):
        read_archive(path, "test")
    cifar_tar(path, with_labels([0, 1]), meta={b"names": [b"a"]})  # was: silently the default class names
    with pytest.raises(DataError, match=r"batches\.meta: expected a dict with a non-empty 'label_names' list"):
        read_archive(path, "test")
    batch = with_labels([0, 1])["test_batch"]
    cifar_tar(path, {"test_batch": batch}, raw={"batches.meta": pickle.dumps({"label_names": [b"a", b"\xff\xfe"]})})
    with pytest.raises(DataError, match=r"batches\.meta: 'label_names'\[1\] b'\\xff\\xfe' is not UTF-8"):
        read_archive(path, "test")
    cifar_tar(path, with_labels([0, 1]), meta={b"label_names": [b"a", b"b"]})
    assert read_archive(path, "test").classes == ["a", "b"]


def test_cifar_data_is_converted_only_without_loss(tmp_path, rng):
    path = tmp_path / "cifar-10-python.tar.gz"
    data = rng.integers(0, 256, (2, 3072)).astype(np.int64)
    cifar_tar(path, {}, raw={"test_batch": pickle.dumps({"data": data, "labels": [0, 1]})})
    assert np.array_equal(read_archive(path, "test").images[:, 0, 0, 0], data[:, 0])
    data[1, 5] = 256
    cifar_tar(path, {}, raw={"test_batch": pickle.dumps({"data": data, "labels": [0, 1]})})
    with pytest.raises(DataError, match=r"test_batch: 'data': pixels must be in \[0, 255\] .*value 256 at index "
                                        r"\(1, 5\)"):
        read_archive(path, "test")


def test_cifar_member_larger_than_a_batch_is_refused(tmp_path, rng, monkeypatch):
    path = cifar_tar(tmp_path / "cifar-10-python.tar.gz", {"test_batch": cifar_batch(rng, 2)})
    monkeypatch.setattr(cifar_mod, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(DataError, match=r"test_batch: [\d,]+ bytes, more than a CIFAR batch can be"):
        read_archive(path, "test")


def test_cifar_pickles_of_every_protocol_load(tmp_path, rng):
    batch = cifar_batch(rng, 3)
    for protocol in (2, 3, 4, 5):  # protocol 2 from Python 3 spells bytes as _codecs.encode(str, 'latin1')
        blob = pickle.dumps(batch, protocol=protocol)
        back = cifar_mod.restricted_loads(blob)
        assert np.array_equal(back["data"], batch[b"data"]) and back["labels"] == batch[b"labels"]
        assert back["filenames"] == batch[b"filenames"] and back["batch_label"] == b"batch"
        path = cifar_tar(tmp_path / f"p{protocol}.tar.gz", {}, raw={"test_batch": blob})
        assert np.array_equal(read_archive(path, "test").labels, batch[b"labels"])
    empty = {"e": b"", "z": np.zeros(0, np.uint8), "n": np.arange(4, dtype=np.uint8).reshape(2, 2)}
    back = cifar_mod.restricted_loads(pickle.dumps(empty, protocol=2))
    assert back["e"] == b"" and back["z"].shape == (0,) and back["n"].tolist() == [[0, 1], [2, 3]]


class _Reduce:
    """Pickles as an arbitrary callable applied to arguments."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_hostile_pickles_stay_refused(tmp_path):
    import _codecs

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct

    sentinel = tmp_path / "pwned"
    hostile = [
        (_Reduce(os.system, f"touch {sentinel}"), r"refused to load global (posix|os)\.system"),
        (_Reduce(eval, f"open({str(sentinel)!r}, 'w')"), r"refused to load global (__builtin__|builtins)\.eval"),
        (_Reduce(getattr, "x", "upper"), r"refused to load global (__builtin__|builtins)\.getattr"),
        (_Reduce(_codecs.encode, "x", "zlib_codec"), r"refused _codecs\.encode\(\.\.\., 'zlib_codec'\)"),
        (_Reduce(_codecs.encode, b"x", "latin1"), r"refused _codecs\.encode"),
        (_Reduce(bytes, 10**12), r"refused bytes\(\.\.\.\) with arguments"),
        (_Reduce(_reconstruct, np.ndarray, (10**12,), b"b"), r"refused _reconstruct"),
        (_Reduce(np.ndarray, (10**12,)), "not callable"),
        (_Reduce(np.save, str(sentinel), np.zeros(1)), r"refused to load global numpy\.save"),
    ]
    for protocol in (2, 4):
        for obj, why in hostile:
            blob = pickle.dumps({"data": obj, "labels": [0]}, protocol=protocol)
            with pytest.raises((pickle.UnpicklingError, TypeError), match=why):
                cifar_mod.restricted_loads(blob)
            path = cifar_tar(tmp_path / "evil.tar.gz", {}, raw={"test_batch": blob})
            with pytest.raises(DataError, match=r"evil\.tar\.gz:test_batch: "):
                read_archive(path, "test")
    assert not sentinel.exists()


# ---------------------------------------------------------------- tar members that escape the target
def _tar_with(path, *members):
    """An image-folder archive (train/a/0.png) plus crafted members (TarInfo, payload)."""
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(png, format="PNG")
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("train/a/0.png")
        info.size = len(png.getvalue())
        tar.addfile(info, io.BytesIO(png.getvalue()))
        for info, payload in members:
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def _link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


@pytest.mark.parametrize("member, reason", [
    ((tarfile.TarInfo("../escaped.png"), b"x"), "unsafe member path '../escaped.png'"),
    ((tarfile.TarInfo("train/a/../../../escaped.png"), b"x"), "unsafe member path 'train/a/../../../escaped.png'"),
    ((tarfile.TarInfo("/tmp/escaped.png"), b"x"), "unsafe member path '/tmp/escaped.png'"),
    (_link("train/a/1.png", "../../../escaped.png", tarfile.SYMTYPE),
     "unsafe symbolic link 'train/a/1.png' -> '../../../escaped.png'"),
    (_link("train/a/1.png", "/etc/passwd", tarfile.SYMTYPE), "unsafe symbolic link 'train/a/1.png' -> '/etc/passwd'"),
    (_link("train/a/1.png", "../escaped.png", tarfile.LNKTYPE), "unsafe hard link 'train/a/1.png' -> '../escaped.png'"),
    (_link("train/a/p.png", "", tarfile.FIFOTYPE), r"unsupported member type \(device or FIFO\) 'train/a/p\.png'"),
])
def test_unsafe_tar_members_are_refused_by_name(tmp_path, member, reason):
    archive = _tar_with(tmp_path / "pets.tar.gz", member)
    cache = tmp_path / "deep" / "cache"
    with pytest.raises(DataError, match=rf"{reason} in archive .*pets\.tar\.gz: refusing to extract it") as err:
        load_image_folder(archive, "train", root=cache)
    assert "corrupt or truncated" not in str(err.value)
    assert not list(tmp_path.rglob("escaped.png")) and not (cache / "image_folder" / "escaped.png").exists()
    assert [p.name for p in (cache / "image_folder").iterdir()] == []  # the partial extraction is removed


def test_safe_links_inside_the_archive_are_kept_and_stale_extractions_removed(tmp_path):
    archive = _tar_with(tmp_path / "pets.tar.gz", _link("train/a/1.png", "0.png", tarfile.SYMTYPE),
                        _link("train/a/2.png", "train/a/0.png", tarfile.LNKTYPE))
    cache = tmp_path / "cache"
    (cache / "image_folder").mkdir(parents=True)
    from tests.test_data_download import dead_pid

    stale = cache / "image_folder" / f".pets-0123456789ab.abcd_123~{dead_pid()}@{_host()}.part"
    (stale / "train").mkdir(parents=True)  # what a killed extraction leaves
    data = load_image_folder(archive, "train", root=cache)
    assert len(data) == 3 and not stale.exists()
    assert extract_archive(archive, cache).is_dir()


def _host():
    from striate.data.datasets import partial

    return partial.tag().split("@")[1].removesuffix(".part")

