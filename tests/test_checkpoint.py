"""Checkpoint store: exact round trip, pointers and garbage collection, checksums, and crash safety under
repeated kill -9 while a subprocess writes checkpoints in a loop."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from striate.train.checkpoint import CheckpointError, CheckpointStore, flatten_state, unflatten_state, write_atomic


def _state(rng):
    return {
        "progress": {"epoch": 3, "batch": 0, "iteration": 120},
        "optimizer": {"type": "Adam", "hyperparameters": {"lr": 1e-3, "betas": [0.9, 0.999]},
                      "state": {0: {"m": rng.standard_normal((3, 4)).astype(np.float32),
                                    "v": rng.random((3, 4)).astype(np.float32)}, 1: {}}},
        "rngs": {"loader": np.random.default_rng(7).bit_generator.state},
        "scalar": np.float32(0.25),
        "nothing": None,
        "tuple": (1, "two", 3.0),
        "nan": float("nan"),
        "perm": np.arange(10, dtype=np.int64),
        "count": np.array(5, dtype=np.int64),
    }


def test_round_trip_is_exact(tmp_path, rng):
    store = CheckpointStore(tmp_path / "ck")
    weights = {"0.weight": rng.standard_normal((3, 3, 1, 4)).astype(np.float32),
               "1.running_var": rng.random(4).astype(np.float32), "1.num_batches_tracked": np.array(9, np.int64)}
    state = _state(rng)
    gen = store.save(weights, state, tags=("last", "best"))
    ck = store.load("last")
    assert ck.generation == gen and sorted(ck.tags) == ["best", "last"]
    for k, v in weights.items():
        assert ck.weights[k].dtype == v.dtype and ck.weights[k].shape == v.shape
        np.testing.assert_array_equal(ck.weights[k], v)
    s = ck.state
    np.testing.assert_array_equal(s["optimizer"]["state"]["0"]["m"], state["optimizer"]["state"][0]["m"])
    assert s["optimizer"]["state"]["0"]["m"].dtype == np.float32
    assert s["optimizer"]["state"]["1"] == {}
    assert s["rngs"]["loader"] == state["rngs"]["loader"]  # 128-bit PCG64 integers survive JSON
    g = np.random.default_rng()
    g.bit_generator.state = s["rngs"]["loader"]
    assert g.random() == np.random.default_rng(7).random()
    assert s["scalar"] == 0.25 and s["nothing"] is None and s["tuple"] == [1, "two", 3.0]
    assert np.isnan(s["nan"])
    np.testing.assert_array_equal(s["perm"], np.arange(10))
    assert s["count"].shape == () and int(s["count"]) == 5


def test_flatten_rejects_objects():
    with pytest.raises(TypeError, match="at 'a/b'"):
        flatten_state({"a": {"b": object()}})
    skeleton, arrays = flatten_state({"x": [np.zeros(2), {"y": np.ones(1)}]})
    assert set(arrays) == {"x/0", "x/1/y"}
    back = unflatten_state(json.loads(json.dumps(skeleton)), arrays)
    np.testing.assert_array_equal(back["x"][1]["y"], np.ones(1))


def test_pointers_and_garbage_collection(tmp_path):
    store = CheckpointStore(tmp_path)
    w = {"w": np.zeros(2, np.float32)}
    g1 = store.save(w, {"e": 1}, tags=("last", "best"))
    g2 = store.save(w, {"e": 2}, tags=("last",))
    g3 = store.save(w, {"e": 3}, tags=("last",))
    assert store.tags() == {"best": g1, "last": g3}
    gens = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("gen-"))
    assert gens == [g1, g3] and g2 not in gens  # unreferenced generations are deleted
    assert store.load("best").state == {"e": 1}
    store.tag("best", g3)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("gen-")) == [g3]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp files left behind
    with pytest.raises(CheckpointError, match="no 'other' checkpoint"):
        store.load("other")


def test_corruption_is_detected(tmp_path):
    store = CheckpointStore(tmp_path)
    gen = store.save({"w": np.arange(1000, dtype=np.float32)}, {"e": 1})
    path = tmp_path / gen / CheckpointStore.WEIGHTS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        store.load("last")
    (tmp_path / gen / CheckpointStore.STATE).unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        store.load("last")


def test_write_atomic_replaces(tmp_path):
    p = tmp_path / "f.json"
    write_atomic(p, "old")
    write_atomic(p, b"new")
    assert p.read_text() == "new" and [q.name for q in tmp_path.iterdir()] == ["f.json"]


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from striate.train.checkpoint import CheckpointStore
    store = CheckpointStore(sys.argv[1])
    i = store.load("last").state["i"] + 1 if store.has("last") else 0
    print("ready", flush=True)
    while True:  # every generation: weights filled with i, state says i, both must always agree
        w = {"a": np.full((512, 1024), i, np.float32), "b": np.full(7, i, np.int64)}
        store.save(w, {"i": i, "m": {"x": np.full(4096, -i, np.float64)}},
                   tags=("last", "best") if i % 3 == 0 else ("last",))
        i += 1
""")


def test_kill9_while_writing_never_leaves_an_unloadable_checkpoint(tmp_path):
    """A subprocess saves 2 MB checkpoints in a loop; it is SIGKILLed at random moments, ten times, and
    restarted on the same directory. Every pointer must always load, verify, and hold a consistent pair."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    ck = tmp_path / "ck"
    rng = np.random.default_rng(1)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    seen, mid_write = [], 0
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, str(script), str(ck)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.02, 0.25)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        store = CheckpointStore(ck)
        live = set(store.tags().values())
        leftovers = [p for p in ck.iterdir() if p.name.startswith(".") or (p.is_dir() and p.name not in live)]
        mid_write += bool(leftovers)  # the kill landed inside a save
        for tag in ("last", "best"):
            if not store.has(tag):
                continue
            c = store.load(tag)  # verifies checksums
            i = c.state["i"]
            assert np.all(c.weights["a"] == i) and np.all(c.weights["b"] == i)
            assert np.all(c.state["m"]["x"] == -i)
            if tag == "best":
                assert i % 3 == 0
        if store.has("last"):
            seen.append(store.load("last").state["i"])
    assert seen and seen == sorted(seen)  # progress is never lost across kills
    assert seen[-1] >= 5, f"the writer made too little progress to test anything: {seen}"
    assert mid_write >= 1, "no kill landed inside a save; the test exercised nothing"


# ----- the format marker -------------------------------------------------------------------------
MARKERS = ["striate-checkpoint/2", "striate-checkpoint/0", "striate-checkpoint/1 ", "striate-checkpoint",
           "garbage", "", 1, None, ["striate-checkpoint/1"], {"version": 1}]


def _mark(state_json, marker) -> None:
    """Rewrite a state.json's format marker (`None`: remove it); the checksums do not cover state.json."""
    doc = json.loads(state_json.read_text())
    doc.pop("format")
    if marker is not None:
        doc["format"] = marker
    state_json.write_text(json.dumps(doc))


def test_a_checkpoint_is_saved_with_the_format_load_reads(tmp_path):
    from striate.train.checkpoint import FORMAT

    store = CheckpointStore(tmp_path)
    gen = store.save({"w": np.zeros(2, np.float32)}, {"e": 1})
    assert json.loads((tmp_path / gen / CheckpointStore.STATE).read_text())["format"] == FORMAT


@pytest.mark.parametrize("marker", MARKERS, ids=repr)
def test_an_unknown_format_is_refused(tmp_path, marker):
    store = CheckpointStore(tmp_path)
    gen = store.save({"w": np.zeros(2, np.float32)}, {"e": 1})
    _mark(tmp_path / gen / CheckpointStore.STATE, marker)
    with pytest.raises(CheckpointError) as e:
        store.load("last")
    message = str(e.value)
    assert str(tmp_path / gen / CheckpointStore.STATE) in message and "'striate-checkpoint/1'" in message
    assert ("no format marker" if marker is None else repr(str(marker))) in message


FAST = ["--limit", "300", "--report", "off", "--diagnostics", "0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from striate.cli import main

    out = tmp_path_factory.mktemp("format") / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", *FAST]) == 0
    return out


@pytest.mark.parametrize("marker", ["striate-checkpoint/2", "garbage", None], ids=repr)
@pytest.mark.parametrize("command", [["eval"], ["train", "--epochs", "2", "--resume"]], ids=lambda c: c[0])
def test_an_unknown_format_is_one_line_and_status_1(trained_run, tmp_path, capsys, marker, command):
    import shutil

    from striate.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for state_json in (run / "checkpoints").glob("gen-*/state.json"):
        _mark(state_json, marker)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    assert main([*command, str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"striate {command[0]}: error: checkpoint ")
    assert "state.json" in err and "'striate-checkpoint/1'" in err
    assert ("no format marker" if marker is None else repr(marker)) in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before
