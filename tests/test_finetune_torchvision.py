"""`striate finetune --from torchvision:NAME` against a loopback server this test starts (127.0.0.1, port 0),
serving weight files the test writes: random weights in torchvision's key names and layouts, saved under a
published file name whose SHA-256 prefix the test computes and registers (`models.pretrained.PUBLISHED`, the
server's address through `$STRIATE_WEIGHTS_URL`). Download, verification, the cached file used offline, a
wrong hash refused, a broken download resumed (`Range`), and fine-tuning end to end on a few small JPEGs,
with the weights' input convention (resize the shorter side, centre crop, ImageNet mean and std) recorded in
the run and applied by eval and predict. AlexNet at width 1/8 on 67×67 crops keeps each run to seconds; the
ResNet-18 test runs once the zoo has resnet18."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from striate.cli import main
from striate.models import get, names, pretrained
from striate.models.transfer import torch_name_map
from tests.test_data_download import Loopback

SMALL = pretrained.Convention(resize=72, crop=67)  # alexnet's smallest input is 67×67


def torch_state(model, arch: str, rng) -> dict[str, np.ndarray]:
    """Random float32 arrays under the torch keys of `model`'s name map, in torch's layouts."""
    out, shapes = {}, {k: v.shape for k, v in model.state_dict().items()}
    for ours, theirs in torch_name_map(model, arch).items():
        shape = shapes[ours]
        if len(shape) == 4:  # conv (KH, KW, I, O) → (O, I, KH, KW)
            shape = (shape[3], shape[2], shape[0], shape[1])
        elif len(shape) == 2:  # linear (in, out) → (out, in)
            shape = shape[::-1]
        if theirs.endswith("num_batches_tracked"):
            out[theirs] = np.array(7, dtype=np.int64)
        elif theirs.endswith("running_var"):
            out[theirs] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            out[theirs] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return out


def save(arrays: dict, folder, stem: str, suffix: str = ".safetensors"):
    """The arrays written as `<stem>-<sha256 prefix><suffix>` in `folder` (torchvision's naming): the path."""
    from safetensors.numpy import save_file

    tmp = folder / f"{stem}.tmp"
    if suffix == ".safetensors":
        save_file(arrays, str(tmp))
    else:  # .pth: torch.save's zip format, read without torch once st.models.read_state_dict exists
        import torch

        torch.save({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, tmp)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = folder / f"{stem}-{prefix}{suffix}"
    tmp.rename(path)
    return path


def serve_file(server, path, hits=None):
    """Serve `path` at /<its name>, honouring `Range: bytes=N-` with 206; `hits` collects the Range headers."""
    data = path.read_bytes()

    def route(h):
        asked = h.headers.get("Range")
        if hits is not None:
            hits.append(asked)
        start = int(asked.split("=")[1].rstrip("-")) if asked else 0
        h.send_response(206 if asked else 200)
        if asked:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        h.wfile.write(data[start:])

    server.routes["/" + path.name] = route
    return route


@pytest.fixture
def server():
    s = Loopback()
    yield s
    s.close()


@pytest.fixture
def published(tmp_path, monkeypatch, server):
    """torchvision:alexnet at width 1/8 on 67×67 crops, served by the loopback server; the cache in tmp_path."""
    monkeypatch.setenv("STRIATE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv(pretrained.URL_ENV, server.url)
    options = (("variant", "torchvision"), ("width", 0.125))
    model = get("alexnet", 1000, 3, rng=np.random.default_rng(0), image_size=67, **dict(options))
    state = torch_state(model, "alexnet", np.random.default_rng(1))
    files = tmp_path / "served"
    files.mkdir()
    path = save(state, files, "alexnet-owt")
    entry = dataclasses.replace(pretrained.PUBLISHED["alexnet"], file=path.name, options=options, convention=SMALL)
    monkeypatch.setitem(pretrained.PUBLISHED, "alexnet", entry)
    serve_file(server, path)
    return entry, path, state


def photos(root, classes=("cat", "dog"), n=4, seed=0):
    """A few small JPEGs of assorted sizes and aspect ratios, `n` per class folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            h, w = int(rng.integers(70, 110)), int(rng.integers(70, 110))
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.jpg")
    return root


def test_download_verifies_the_prefix_and_works_offline_once_cached(published, server):
    entry, path, _ = published
    got = pretrained.fetch("torchvision:alexnet")
    assert got == pretrained.cached_path(entry) and got.read_bytes() == path.read_bytes()
    assert got.parent.name == "weights" and not list(got.parent.glob("*.part"))
    server.close()  # offline: the verified copy is used
    assert pretrained.fetch(entry) == got


def test_a_broken_download_resumes_where_it_stopped(tmp_path, published, server):
    entry, path, _ = published
    data, ranges, whole = path.read_bytes(), [], serve_file(server, path)
    half = len(data) // 2

    def drop_halfway(h):  # the first answer promises the whole file, then the connection drops
        ranges.append(h.headers.get("Range"))
        if len(ranges) > 1:
            return whole(h)
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[:half])
        h.wfile.flush()
        h.close_connection = True

    server.routes["/" + path.name] = drop_halfway
    got = pretrained.fetch(entry, backoff=0.01)
    assert got.read_bytes() == data
    assert ranges == [None, f"bytes={half}-"]  # the second request asked for the rest only
    assert not list(got.parent.glob("*.part"))


def test_a_wrong_hash_is_refused_with_one_line(tmp_path, published, server, capsys):
    entry, path, _ = published
    impostor = tmp_path / "served" / f"alexnet-owt-{'0' * 8}.safetensors"  # bytes that do not hash to 00000000
    impostor.write_bytes(path.read_bytes())
    serve_file(server, impostor)
    pretrained.PUBLISHED["alexnet"] = dataclasses.replace(entry, file=impostor.name)
    data = photos(tmp_path / "photos")
    capsys.readouterr()
    assert main(["finetune", "--from", "torchvision:alexnet", "--data", str(data), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 or "downloading" in err[0]
    assert err[-1].startswith("striate finetune: error: checksum mismatch") and "expected 00000000…" in err[-1]
    cache = pretrained.cached_path(entry).parent
    assert not list(cache.iterdir())  # nothing unverified is kept


def test_finetune_from_torchvision_end_to_end(tmp_path, published, server, capsys):
    entry, _, state = published
    data, run = photos(tmp_path / "photos"), tmp_path / "run"
    argv = ["finetune", "--from", "torchvision:alexnet", "--data", str(data), "--out", str(run), "--freeze", "2",
            "--epochs", "1", "--batch-size", "8", "--val-fraction", "0", "--diagnostics", "0", "--report", "off"]
    assert main(argv) == 0
    record = json.loads((run / "finetune.json").read_text())
    assert record["from"] == "torchvision:alexnet"
    assert record["weights"]["sha256"] == entry.sha256 and record["weights"]["arch"] == "alexnet"
    assert record["input"] == {"resize": 72, "crop": 67, "preprocess": "imagenet", "mean": [0.485, 0.456, 0.406],
                               "std": [0.229, 0.224, 0.225]}
    assert [r["layer"] for r in record["reinitialised"]] == ["20"]  # the head, for 2 classes
    from striate.run import RunDir

    d = RunDir(run)
    cfg = d.read_config("finetune")
    assert (cfg["preprocess"], cfg["image_size"], cfg["shorter_side"]) == ("imagenet", "67x67x3", 72)
    assert cfg["model_options"]["variant"] == "torchvision"
    t = d.load_model("last")
    assert tuple(t.input_shape) == (67, 67, 3) and t.classes == ["cat", "dog"]
    frozen = state["features.0.weight"].transpose(2, 3, 1, 0)  # the first conv: frozen, so as served
    np.testing.assert_array_equal(t.model.state_dict()["0.weight"], frozen)
    server.close()  # everything below is offline
    capsys.readouterr()
    assert main(["predict", str(run), str(data / "cat" / "0.jpg")]) == 0
    line = capsys.readouterr().out
    assert "cat" in line and "dog" in line
    assert main(["eval", str(run), "--split", "train"]) == 0
    # the run's own config.toml reproduces it from the cached file, here as a fixed feature extractor
    assert main(["finetune", "--config", str(run / "config.toml"), "--out", str(tmp_path / "again"), "--freeze",
                 "all"]) == 0
    assert RunDir(tmp_path / "again").read_config("finetune")["shorter_side"] == 72


def test_classes_imagenet_keeps_the_head_and_predict_names_imagenet_classes(tmp_path, published, capsys):
    data, run = photos(tmp_path / "photos", classes=("goldfish", "tench"), n=2), tmp_path / "run"
    argv = ["finetune", "--from", "torchvision:alexnet", "--data", str(data), "--out", str(run), "--classes",
            "imagenet", "--epochs", "1", "--val-fraction", "0", "--diagnostics", "0", "--report", "off"]
    assert main(argv) == 0
    record = json.loads((run / "finetune.json").read_text())
    assert record["reinitialised"] == []  # the 1000-class head fits: kept
    capsys.readouterr()
    assert main(["predict", str(run), str(data / "tench" / "0.jpg"), "--json", "--top-k", "2"]) == 0
    (result,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    classes = pretrained.imagenet_classes()
    assert all(c["class"] == classes[c["index"]] for c in result["top"])
    bad = photos(tmp_path / "pets", classes=("goldfsh",), n=1)
    assert main(["finetune", "--from", "torchvision:alexnet", "--data", str(bad), "--out", str(tmp_path / "r2"),
                 "--classes", "imagenet"]) == 2
    assert "did you mean 'goldfish'?" in capsys.readouterr().err


def test_a_local_file_with_model_names_the_architecture_once(tmp_path, published, capsys):
    entry, path, state = published
    data = photos(tmp_path / "photos", n=2)
    common = ["--data", str(data), "--epochs", "1", "--val-fraction", "0", "--diagnostics", "0", "--report", "off",
              "--image-size", "67x67x3", "--shorter-side", "72"]
    # a PyTorch state dict as .safetensors: recognised by its keys, read with alexnet's name map
    assert main(["finetune", "--from", str(path), "--model", "alexnet", "--out", str(tmp_path / "a"), *common]) == 0
    record = json.loads((tmp_path / "a" / "finetune.json").read_text())
    assert record["weights"]["arch"] == "alexnet" and len(record["loaded"]) == 14
    # the same weights as torch.save writes them: a .pth is PyTorch's, read without torch
    pth = save(state, tmp_path / "served", "local", ".pth")
    assert main(["finetune", "--from", str(pth), "--model", "alexnet", "--out", str(tmp_path / "p"), *common]) == 0
    assert len(json.loads((tmp_path / "p" / "finetune.json").read_text())["loaded"]) == 14
    # --torch-arch naming torchvision's layout still reads it, and says that --model is enough
    capsys.readouterr()
    assert main(["finetune", "--from", str(path), "--torch-arch", "alexnet", "--out", str(tmp_path / "b"),
                 *common]) == 0
    assert "--torch-arch alexnet is not needed" in capsys.readouterr().err
    # a crop larger than the resized image is refused before any work
    assert main(["finetune", "--from", str(path), "--model", "alexnet", "--out", str(tmp_path / "d"), *common,
                 "--shorter-side", "60"]) == 2
    assert "shorter_side = 60 crops image_size" in capsys.readouterr().err
    # a .pth of another architecture holds striate's keys (tests/test_torch_file.py) or says --torch-arch; a
    # file that is no weights file at all is refused as unreadable, before any run directory exists
    pth = tmp_path / "x.pth"
    pth.write_bytes(b"not read")
    assert main(["finetune", "--from", str(pth), "--model", "lenet5", "--out", str(tmp_path / "c"), *common]) == 1
    assert "not a PyTorch file" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_resize_shorter_side_then_centre_crop_is_torchvisions():
    from striate.data.datasets.image_file import resize_crop

    arr = np.arange(40 * 60 * 3, dtype=np.uint8).reshape(40, 60, 3)
    out = resize_crop(arr, "RGB", (20, 20), shorter_side=20)  # 40×60 → 20×30 → centre 20×20 (left offset 5)
    from PIL import Image

    ref = np.asarray(Image.fromarray(arr).resize((30, 20), Image.Resampling.BILINEAR))[:, 5:25]
    np.testing.assert_array_equal(out, ref)
    assert resize_crop(arr, "RGB", (40, 40), shorter_side=40).tolist() == arr[:, 10:50].tolist()


@pytest.mark.skipif("resnet18" not in names(), reason="the zoo's resnet18 comes with issue 26's resnet part")
def test_resnet18_end_to_end(tmp_path, monkeypatch, server, capsys):
    import striate.models as st_models

    monkeypatch.setenv("STRIATE_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv(pretrained.URL_ENV, server.url)
    model = get("resnet18", 1000, 3, rng=np.random.default_rng(0))
    state = torch_state(model, "resnet18", np.random.default_rng(1))
    files = tmp_path / "served"
    files.mkdir()
    suffix = ".pth" if hasattr(st_models, "read_state_dict") else ".safetensors"
    path = save(state, files, "resnet18", suffix)
    entry = dataclasses.replace(pretrained.PUBLISHED["resnet18"], file=path.name,
                                convention=pretrained.Convention(resize=40, crop=32))
    monkeypatch.setitem(pretrained.PUBLISHED, "resnet18", entry)
    serve_file(server, path)
    data, run = photos(tmp_path / "photos", n=3), tmp_path / "run"
    assert main(["finetune", "--from", "torchvision:resnet18", "--data", str(data), "--out", str(run), "--freeze",
                 "3", "--epochs", "1", "--val-fraction", "0", "--diagnostics", "0", "--report", "off"]) == 0
    record = json.loads((run / "finetune.json").read_text())
    assert len(record["reinitialised"]) == 1 and record["input"]["crop"] == 32
    capsys.readouterr()
    assert main(["predict", str(run), str(data / "dog")]) == 0
    assert "predicted 3 images" in capsys.readouterr().out


def test_every_published_entry_builds_and_maps_by_name():
    """The table's files carry their hash prefix, and each names a zoo model whose torchvision name map holds
    exactly the published state dict's parameter count (torchvision's `num_params`, no auxiliary heads)."""
    from striate.models import registry
    from striate.nn.init import shapes_only

    published_params = {"alexnet": 61100840, "resnet18": 11689512, "resnet34": 21797672, "resnet50": 25557032,
                        "vgg11": 132863336, "vgg16_bn": 138365992, "googlenet": 6624904}
    assert len(pretrained.imagenet_classes()) == 1000 and pretrained.imagenet_classes()[1] == "goldfish"
    for name, entry in pretrained.PUBLISHED.items():
        assert entry.url == pretrained.BASE_URL + entry.file and len(entry.sha256) == 8
        int(entry.sha256, 16)
        with shapes_only():
            model = registry.get(entry.model, 1000, 3, rng=np.random.default_rng(0), **entry.keywords)
        mapping = torch_name_map(model, entry.arch)
        parameters = dict(model.named_parameters())  # placeholders: shapes without memory
        params = sum(int(np.prod(parameters[k].data.shape)) for k in mapping if k in parameters)
        assert set(parameters) <= set(mapping), name
        if name in published_params:
            assert params == published_params[name], name
