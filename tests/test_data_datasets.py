"""Datasets: digits, CIFAR-10 and MNIST parsing on tiny archives in the official formats, the download helper
against a loopback HTTP server, the restricted unpickler, image folders and their cache, the shared CIFAR-10."""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from striate.data import DataError, Dataset, load, load_cifar10, load_digits, load_image_folder, load_mnist
from striate.data.datasets import cifar10 as cifar_mod
from striate.data.datasets import download, extract_archive, find_shared_cifar10, read_archive
from striate.data.datasets import image_folder as folder_mod
from striate.data.datasets.mnist import parse_idx, read_idx

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"  # ../shared beside the repo


# ---------------------------------------------------------------- helpers: official formats, loopback server
def py2_pickle(obj) -> bytes:
    """Pickle like Python 2's cPickle (protocol 2) did for the official CIFAR batches: byte strings as
    BINSTRING (read back as str with encoding='latin1'), arrays via numpy.core.multiarray._reconstruct."""
    out = bytearray(b"\x80\x02")

    def emit(o):
        if isinstance(o, (bytes, str)):
            raw = o.encode("latin1") if isinstance(o, str) else o
            out.extend((b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + len(raw).to_bytes(4, "little")) + raw)
        elif o is None:
            out.extend(b"N")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            out.extend(b"J" + o.to_bytes(4, "little", signed=True))
        elif isinstance(o, tuple):
            out.extend(b"(")
            for v in o:
                emit(v)
            out.extend(b"t")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                emit(v)
            out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8 and o.flags.c_contiguous
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            emit((0,))
            emit(b"b")
            out.extend(b"\x87R(")  # _reconstruct(ndarray, (0,), 'b'), then open its state tuple
            emit(1)
            emit(o.shape)
            out.extend(b"cnumpy\ndtype\n")
            emit(("u1", False, True))
            out.extend(b"R")
            emit((3, "|", None, None, None, -1, -1, 0))
            out.extend(b"b")  # dtype.__setstate__
            emit(False)
            emit(o.tobytes())
            out.extend(b"tb")  # close the state tuple; ndarray.__setstate__
        else:
            raise TypeError(type(o))

    emit(obj)
    return bytes(out + b".")


def cifar_batch(rng, n, label_offset=0):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in (np.arange(n) + label_offset) % 10]
    return {b"batch_label": b"batch", b"labels": labels, b"data": data,
            b"filenames": [f"f{i}.png".encode() for i in range(n)]}


def write_cifar_archive(path, rng, n=4, evil=None):
    """A tiny cifar-10-python.tar.gz; returns {split: (images NHWC, labels)} as they should load."""
    batches = {f"data_batch_{i}": cifar_batch(rng, n, i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, n, 7)
    meta = {b"label_names": [c.encode() for c in cifar_mod.CLASSES], b"num_cases_per_batch": n}
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in [*batches.items(), ("batches.meta", meta)]:
            payload = evil if (evil is not None and name == "data_batch_2") else py2_pickle(obj)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

    def expect(names):
        data = np.concatenate([batches[k][b"data"] for k in names])
        labels = np.concatenate([batches[k][b"labels"] for k in names])
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels

    return {"train": expect([f"data_batch_{i}" for i in range(1, 6)]), "test": expect(["test_batch"])}


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, dtype=">i4").tobytes()
    return header + arr.tobytes()


class Server:
    """http.server on 127.0.0.1 in a thread: serves a queue of bodies per path (the last one repeats)."""

    def __init__(self):
        self.routes: dict[str, list[tuple[bytes, int | None]]] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                queue = server.routes.get(self.path)
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if not queue:
                    self.send_error(404)
                    return
                body, length = queue.pop(0) if len(queue) > 1 else queue[0]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    for var in ("STRIATE_DATA", "STRIATE_CIFAR10_URL", "STRIATE_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- digits, Dataset, import hygiene
def test_digits_loads_the_real_uci_data():
    full = load_digits("all")
    assert len(full) == 1797 and full.images.shape == (1797, 8, 8, 1) and full.images.dtype == np.uint8
    assert full.labels.dtype == np.int64 and full.classes == [str(d) for d in range(10)]
    assert np.bincount(full.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    # First row of the UCI file: 0,0,5,13,9,1,0,0 (scale 0..16 -> 0..255) and label 0.
    assert full.images[0, 0, :, 0].tolist() == [0, 0, 80, 207, 143, 16, 0, 0] and full.labels[0] == 0
    assert full.images.max() == 255 and full.images.min() == 0


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, test = load_digits("train"), load("digits", "test")
    assert (len(train), len(test)) == (1438, 359)
    full = load_digits("all")
    both = np.concatenate([train.images, test.images]).reshape(1797, -1)
    assert len(np.unique(both, axis=0)) == len(np.unique(full.images.reshape(1797, -1), axis=0))
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37  # about 20% of each class
    again = load_digits("train")
    assert np.array_equal(again.images, train.images) and np.array_equal(again.labels, train.labels)


def test_dataset_rejects_bad_data():
    img = np.zeros((3, 4, 4, 1), np.uint8)
    with pytest.raises(DataError, match="uint8"):
        Dataset(img.astype(np.float32), np.zeros(3, np.int64), ["a"])
    with pytest.raises(DataError, match=r"\(N, H, W, C\)"):
        Dataset(img[..., 0], np.zeros(3, np.int64), ["a"])
    with pytest.raises(DataError, match="label 2 outside"):
        Dataset(img, np.array([0, 1, 2]), ["a", "b"])
    with pytest.raises(DataError, match="2 labels for 3"):
        Dataset(img, np.array([0, 1]), ["a", "b"])
    with pytest.raises(DataError, match="unknown dataset"):
        load("no-such-dataset")


def test_import_does_not_load_pillow():
    code = "import sys, striate, striate.data; assert 'PIL' not in sys.modules, 'PIL imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- CIFAR-10 official archive
def test_cifar10_archive_parses(tmp_path, rng):
    path = tmp_path / "cifar-10-python.tar.gz"
    expected = write_cifar_archive(path, rng, n=4)
    for split in ("train", "test"):
        data = read_archive(path, split)
        images, labels = expected[split]
        assert data.images.shape == (len(labels), 32, 32, 3) and data.images.dtype == np.uint8
        assert np.array_equal(data.images, images) and np.array_equal(data.labels, labels)
        assert data.classes == cifar_mod.CLASSES
    # The first pixel's red, green, blue come from offsets 0, 1024, 2048 of the CHW row.
    raw = expected["test"]
    assert np.array_equal(read_archive(path, "test").images[:, 0, 0], raw[0][:, 0, 0])
    assert len(load(path, "train")) == 20  # by path


def test_restricted_unpickler_refuses_malicious_pickle_without_running_it(tmp_path, rng):
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(path, rng, evil=pickle.dumps(Evil(), protocol=2))
    with pytest.raises(DataError, match=r"refused to load global (posix|os|nt)\.system") as err:
        read_archive(path, "train")
    assert "data_batch_2" in str(err.value)
    assert not sentinel.exists()
    # Through the loader too: the hostile archive is reported, not deleted and fetched again.
    with pytest.raises(DataError, match="refused"):
        load_cifar10("train", root=tmp_path, md5=None, base_url="http://127.0.0.1:9/")
    assert not sentinel.exists()
    with pytest.raises(pickle.UnpicklingError):
        cifar_mod.restricted_loads(pickle.dumps(eval, protocol=2))
    # A batch re-pickled by Python 3 / numpy 2 (numpy._core path) loads too, protocol 2 included (which spells
    # bytes as _codecs.encode(str, 'latin1'), allowed for exactly that; see test_data_formats.py).
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for protocol in (2, 3, 4, 5):
        back = cifar_mod.restricted_loads(pickle.dumps({"data": arr, "labels": [1, 2]}, protocol=protocol))
        assert np.array_equal(back["data"], arr) and back["labels"] == [1, 2]


def test_cifar10_corrupt_archive_is_a_clear_error(tmp_path, rng):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(path, rng)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=f"corrupt or truncated archive {path}"):
        read_archive(path, "train")
    path.write_bytes(b"not an archive at all")
    with pytest.raises(DataError, match=str(path)):
        load_cifar10("test", root=tmp_path, download_ok=False)


def test_cifar10_download_retries_truncated_then_succeeds(tmp_path, rng, server):
    src = tmp_path / "src.tar.gz"
    expected = write_cifar_archive(src, rng)
    blob = src.read_bytes()
    md5 = hashlib.md5(blob).hexdigest()
    # First a short body with an honest length (fails md5), then one that lies about its length, then the file.
    server.routes["/cifar-10-python.tar.gz"] = [(blob[:1000], None), (blob[:500], len(blob)), (blob, None)]
    root = tmp_path / "cache"
    data = load_cifar10("test", root=root, base_url=server.url, md5=md5)
    assert np.array_equal(data.images, expected["test"][0])
    assert server.hits["/cifar-10-python.tar.gz"] == 3
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]  # no temporary files left
    # Cached and verified: no new request.
    load_cifar10("train", root=root, base_url=server.url, md5=md5)
    assert server.hits["/cifar-10-python.tar.gz"] == 3


def test_cifar10_corrupt_cache_is_removed_and_redownloaded(tmp_path, rng, server, monkeypatch):
    src = tmp_path / "src.tar.gz"
    write_cifar_archive(src, rng)
    blob = src.read_bytes()
    root = tmp_path / "cache"
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(blob[:700])  # a truncated copy sits in the cache
    server.routes["/cifar-10-python.tar.gz"] = [(blob, None)]
    monkeypatch.setenv("STRIATE_CIFAR10_URL", server.url)  # the env var overrides the base URL
    assert len(load_cifar10("train", root=root, md5=None)) == 20
    assert server.hits["/cifar-10-python.tar.gz"] == 1
    # A source that only ever serves a broken file: a clear error naming the file.
    (root / "cifar-10-python.tar.gz").unlink()
    server.routes["/cifar-10-python.tar.gz"] = [(blob[:700], None)]
    with pytest.raises(DataError, match=r"corrupt or truncated archive .*cifar-10-python\.tar\.gz.*re-downloaded"):
        load_cifar10("train", root=root, md5=None)


def test_download_offline_message(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    dest = tmp_path / "file.bin"
    message = rf"could not download http://127\.0\.0\.1:{port}/x.*place the file at .*file\.bin"
    with pytest.raises(DataError, match=message):
        download(f"http://127.0.0.1:{port}/x", dest, retries=2, backoff=0.01)
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_download_checksum_mismatch_after_retries(tmp_path, server):
    server.routes["/f"] = [(b"wrong bytes", None)]
    with pytest.raises(DataError, match="checksum mismatch"):
        download(server.url + "f", tmp_path / "f", sha256="0" * 64, retries=2, backoff=0.01)
    assert server.hits["/f"] == 2 and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- MNIST IDX
def test_mnist_idx_parsing_gzip_and_raw(tmp_path, rng):
    folder = tmp_path / "mnist"
    folder.mkdir()
    splits = {}
    for split, (img_name, lab_name), n in [("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), 7),
                                           ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), 3)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (folder / f"{img_name}.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / lab_name).write_bytes(idx_bytes(labels))  # raw, not gzipped
        splits[split] = images, labels
    for split, (images, labels) in splits.items():
        data = load_mnist(split, root=tmp_path, download_ok=False)
        assert data.images.shape == (len(labels), 28, 28, 1) and data.images.dtype == np.uint8
        assert np.array_equal(data.images[..., 0], images) and np.array_equal(data.labels, labels)
    wide = np.arange(6, dtype=">i4").reshape(2, 3)
    assert np.array_equal(parse_idx(idx_bytes(wide)), wide) and parse_idx(idx_bytes(wide)).dtype.isnative
    with pytest.raises(DataError, match="truncated"):
        parse_idx(idx_bytes(splits["test"][0])[:-5], "x")
    with pytest.raises(DataError, match="not an IDX"):
        parse_idx(b"\x12\x34\x56\x78")
    (folder / "bad.gz").write_bytes(gzip.compress(b"abc")[:-6])
    with pytest.raises(DataError, match="bad.gz"):
        read_idx(folder / "bad.gz")


def test_mnist_download_from_loopback(tmp_path, rng, server):
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    files = {"t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
             "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels))}
    md5 = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    for name, blob in files.items():
        server.routes["/mnist/" + name] = [(blob[: len(blob) // 2], None), (blob, None)]  # truncated first
    data = load_mnist("test", root=tmp_path, base_url=server.url + "mnist", md5=md5)
    assert np.array_equal(data.images[..., 0], images) and np.array_equal(data.labels, labels)
    assert [server.hits["/mnist/" + k] for k in files] == [2, 2], server.hits


# ---------------------------------------------------------------- image folders
def write_folder(root, rng, n_per_class=3, classes=("dog", "cat", "bird"), size=(5, 6), fmt="png"):
    from PIL import Image

    written = {}
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i:03d}.{fmt}")
            written[f"{cls}/{i:03d}"] = arr
    return written


def test_image_folder_loads_and_caches(tmp_path, rng, monkeypatch):
    written = write_folder(tmp_path / "pets" / "train", rng)
    write_folder(tmp_path / "pets" / "test", rng, n_per_class=1)
    cache = tmp_path / "cache"
    data = load_image_folder(tmp_path / "pets", "train", root=cache, workers=2)
    assert data.classes == ["bird", "cat", "dog"]  # sorted like ImageFolder
    assert data.images.shape == (9, 5, 6, 3) and data.images.dtype == np.uint8
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.array_equal(data.images[3], written["cat/000"])  # PNG is lossless
    assert len(load_image_folder(tmp_path / "pets", "test", root=cache)) == 3

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(folder_mod, "decode_images", no_decode)
    again = load_image_folder(tmp_path / "pets", "train", root=cache)  # from the cache: no decode at all
    assert np.array_equal(again.images, data.images) and np.array_equal(again.labels, data.labels)
    assert again.classes == data.classes
    monkeypatch.undo()
    # A changed folder changes the key: decoded again, with the new image.
    from PIL import Image

    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "pets" / "train" / "cat" / "999.png")
    assert len(load_image_folder(tmp_path / "pets", "train", root=cache)) == 10


def test_image_folder_from_tar_gz_extracts_once(tmp_path, rng, monkeypatch):
    src = tmp_path / "src" / "tiny"
    written = write_folder(src / "train", rng, n_per_class=2, classes=("a", "b"))
    write_folder(src / "test", rng, n_per_class=1, classes=("a", "b"))
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="tiny")  # under a top-level folder, which the loader finds
    cache = tmp_path / "cache"
    data = load(archive, "train", root=cache)
    assert data.images.shape == (4, 5, 6, 3) and np.array_equal(data.images[2], written["b/000"])
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("extracted twice"))
    assert len(load(archive, "test", root=cache)) == 2
    assert extract_archive(archive, cache).is_dir()


def test_image_folder_errors_name_the_culprit(tmp_path, rng):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty image folder .*empty"):
        load_image_folder(tmp_path / "empty", root=tmp_path / "c")
    write_folder(tmp_path / "bad", rng, n_per_class=2, classes=("x",))
    (tmp_path / "bad" / "x" / "001.png").write_bytes(b"garbage, not a png")
    with pytest.raises(DataError, match=r"unreadable image .*x/001\.png"):
        load_image_folder(tmp_path / "bad", root=tmp_path / "c", strict=True)
    assert [rel for rel, why in load_image_folder(tmp_path / "bad", root=tmp_path / "c").skipped] == ["x/001.png"]
    write_folder(tmp_path / "sizes", rng, n_per_class=1, classes=("x", "y"))
    from PIL import Image

    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(tmp_path / "sizes" / "y" / "big.png")
    with pytest.raises(DataError, match=r"are 5x6, the others are not: y/big\.png \(7x7\)"):
        load_image_folder(tmp_path / "sizes", root=tmp_path / "c")
    (tmp_path / "noimg" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_image_folder(tmp_path / "noimg", root=tmp_path / "c")
    with pytest.raises(DataError, match="no 'train' folder"):
        load_image_folder(tmp_path / "bad", "train", root=tmp_path / "c")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 broken gzip")
    with pytest.raises(DataError, match=r"corrupt or truncated archive .*broken\.tar\.gz"):
        load(tmp_path / "broken.tar.gz", "train", root=tmp_path / "c")


def test_load_cifar10_prefers_official_then_shared(tmp_path, monkeypatch):
    import striate.data.datasets as ds

    calls = []
    monkeypatch.setattr(ds, "load_cifar10", lambda split, root, **kw: calls.append(("official", split)))
    monkeypatch.setattr(ds, "load_image_folder", lambda path, split, **kw: calls.append(("shared", Path(path).name)))
    monkeypatch.setattr(ds, "_REPO", tmp_path / "nowhere" / "repo")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "cache"
    root.mkdir()
    ds.load("cifar10", "test", root=root)  # nothing cached, no shared copy: download the official archive
    (root / "cifar10-jpg.tar.gz").write_bytes(b"")
    ds.load("cifar10", "test", root=root)
    (root / "cifar-10-python.tar.gz").write_bytes(b"")
    ds.load("cifar10", "train", root=root)
    assert calls == [("official", "test"), ("shared", "cifar10-jpg.tar.gz"), ("official", "train")]


# ---------------------------------------------------------------- the shared CIFAR-10 JPEG archive
@pytest.mark.skipif(not SHARED.exists(), reason="shared CIFAR-10 archive not present")
def test_shared_cifar10_archive_layout_quick():
    """Quick: list the archive (no extraction) and decode a handful of JPEGs straight from it."""
    from PIL import Image

    counts: dict[tuple[str, str], int] = {}
    samples = []
    with tarfile.open(SHARED, "r:gz") as tar:
        for member in tar:
            parts = member.name.strip("/").split("/")
            if member.isfile() and parts[-1].endswith(".jpg"):
                split, cls = parts[-3], parts[-2]
                counts[split, cls] = counts.get((split, cls), 0) + 1
                if len(samples) < 5:
                    samples.append(np.asarray(Image.open(tar.extractfile(member)).convert("RGB")))
    assert {c for _, c in counts} == set(cifar_mod.CLASSES)
    assert all(counts["train", c] == 5000 and counts["test", c] == 1000 for c in cifar_mod.CLASSES)
    assert all(s.shape == (32, 32, 3) and s.dtype == np.uint8 for s in samples)
    assert find_shared_cifar10() is not None


def _shared_cache_ready() -> bool:
    if not SHARED.exists():
        return False
    base = Path(os.environ.get("STRIATE_DATA") or Path.home() / ".cache" / "striate") / "image_folder"
    return any(base.glob("cifar10-jpg-test-*.labels.npz")) and any(base.glob("cifar10-jpg-*/.extracted"))


@pytest.mark.skipif(not _shared_cache_ready(),
                    reason="decode cache absent: build it once with python -c \"import striate.data as d; "
                    "d.load('cifar10', 'test'); d.load('cifar10', 'train')\" (about 20 s)")
def test_shared_cifar10_full_decode_from_cache():
    test = load("cifar10", "test")
    assert test.images.shape == (10000, 32, 32, 3) and test.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == [1000] * 10 and test.classes == cifar_mod.CLASSES
    mean = test.images.reshape(-1, 3).mean(axis=0)
    assert np.all((mean > 100) & (mean < 140))  # CIFAR-10 channel means are about 125, 123, 114


def test_a_missing_split_is_its_own_error_type_and_the_run_reads_the_folder_without_it(tmp_path, rng):
    from striate.data.datasets import MissingSplit
    from striate.run import config as cfg
    from striate.run.data import load_data

    write_folder(tmp_path / "flat", rng, n_per_class=4, classes=("a", "b"))
    with pytest.raises(MissingSplit, match="no 'train' folder") as caught:
        load_image_folder(tmp_path / "flat", "train", root=tmp_path / "c")
    assert caught.value.split == "train" and isinstance(caught.value, DataError)
    config = {**cfg.defaults("train"), "data": str(tmp_path / "flat"), "val_fraction": 0.25}
    data = load_data(config)  # a flat <class>/ folder: all of it is the training split, no test split
    assert len(data.train_x) + len(data.val_x) == 8 and data.test is None
    write_folder(tmp_path / "trained" / "train", rng, n_per_class=2, classes=("a", "b"))
    data = load_data({**config, "data": str(tmp_path / "trained")})  # a train/ split and no test/
    assert len(data.train_x) + len(data.val_x) == 4 and data.test is None
    (tmp_path / "broken" / "test").mkdir(parents=True)  # a test/ folder that is there but empty is an error
    write_folder(tmp_path / "broken" / "train", rng, n_per_class=2, classes=("a", "b"))
    with pytest.raises(DataError, match="empty image folder"):
        load_data({**config, "data": str(tmp_path / "broken")})
