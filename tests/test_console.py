"""What a person sees while training: one full line per epoch on stdout (validation included), a bar on a
terminal and progress lines without one, epochs counted from 1 everywhere, quiet broken pipes, Ctrl-C."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from striate import console
from striate.cli import main
from striate.train.callbacks import progress as progress_module

SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = ["--limit", "300", "--report", "off", "--diagnostics", "0"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def test_piped_output_keeps_every_epoch_line_with_validation(tmp_path):
    r = subprocess.run([sys.executable, "-m", "striate", "train", "--epochs", "2", "--out", str(tmp_path / "r"),
                        *FAST], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split()[1] for e in epochs] == ["1/2", "2/2"]
    for e in epochs:  # every metric, validation included, the learning rate and the time: nothing cut
        assert all(k in e for k in ("loss", "acc", "val_loss", "val_acc", "lr ")) and e.endswith("s")
    assert lines[0].startswith("run ") and "test accuracy" in r.stdout and "finished: 2 epochs" in r.stdout
    assert "Traceback" not in r.stderr
    records = [json.loads(s) for s in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in records if x["type"] == "epoch"] == [1, 2]  # counted from 1, as on the console
    assert min(x["epoch"] for x in records if x["type"] == "iteration") == 1
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["epochs_completed"] == 2


def test_one_epoch_is_singular(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r"), *FAST]) == 0
    assert "finished: 1 epoch," in capsys.readouterr().out


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def tiny_run(tmp_path):
    """A trainer with the Progress callback under test, on a few batches."""
    import numpy as np

    import striate as st
    from striate.train import Trainer

    def make(progress):
        rng = np.random.default_rng(0)
        net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(4, 3, rng=rng))
        trainer = Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1), callbacks=[progress])
        x = rng.standard_normal((40, 2, 2, 1)).astype(np.float32)
        y = rng.integers(0, 3, 40)
        batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
        trainer.fit(batches, (x, y), epochs=2)
        return trainer
    return make


def test_without_a_terminal_long_epochs_get_progress_lines(tiny_run, monkeypatch):
    monkeypatch.setattr(progress_module, "QUIET_FOR", 0.0)
    monkeypatch.setattr(console, "EVERY", 0.0)
    out = io.StringIO()
    tiny_run(progress_module.Progress(stream=out, bar=False))
    text = out.getvalue()
    assert "epoch 1/2  step 1/5 (20%)" in text and "left in the epoch" in text
    assert "epoch 2/2  loss" in text and "val_acc" in text


def test_a_terminal_of_zero_columns_still_gets_epoch_lines(tiny_run, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(0, 0): os.terminal_size((0, 0)))
    out, bar = io.StringIO(), Terminal()
    tiny_run(progress_module.Progress(stream=out, bar_stream=bar))
    assert console.terminal_width(bar) is None and bar.getvalue() == ""
    assert len([line for line in out.getvalue().splitlines() if line.startswith("epoch ")]) == 2


def test_a_terminal_gets_a_bar_and_the_full_epoch_line(tiny_run, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(0, 0): os.terminal_size((80, 24)))
    out, bar = io.StringIO(), Terminal()
    tiny_run(progress_module.Progress(stream=out, bar_stream=bar))
    assert "epoch 1/2" in bar.getvalue() and "batch" in bar.getvalue()  # tqdm's bar, with the rate and ETA
    epochs = [line for line in out.getvalue().splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("val_loss" in e and "val_acc" in e and "lr" in e for e in epochs)


def test_a_closed_pipe_stops_the_printing_not_the_training(tmp_path):
    cmd = f"{sys.executable} -m striate train --epochs 4 --out {tmp_path / 'r'} {' '.join(FAST)} | head -n 1"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("run ") and "Broken pipe" not in r.stderr and "Traceback" not in r.stderr
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "finished"


STOPPER = """
import sys, time
from striate.cli import build_parser, train
from striate.train.callbacks import Callback

class SlowSave(Callback):
    order = 90   # before the checkpoint: the first Ctrl-C's save takes a while
    def on_batch_end(self, batch, logs):
        if logs["iteration"] == 3:
            print("ready", flush=True)
        time.sleep(0.05)
    def on_interrupt(self, logs):
        time.sleep(float(sys.argv[1]))

args = build_parser().parse_args(sys.argv[2:])
sys.exit(train.run(args, callbacks=[SlowSave()]))
"""


def _start(tmp_path, delay: float):
    script = tmp_path / "stopper.py"
    script.write_text(STOPPER)
    proc = subprocess.Popen([sys.executable, str(script), str(delay), "train", "--epochs", "50", "--out",
                             str(tmp_path / "r"), "--limit", "300", "--diagnostics", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip().startswith("run ")
    while proc.stdout.readline().strip() != "ready":
        pass
    return proc


def test_ctrl_c_finishes_the_step_saves_and_skips_the_report(tmp_path):
    proc = _start(tmp_path, 0.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "finishing this step and saving" in err and "drawing report.html" not in err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert not (tmp_path / "r" / "report.html").exists()


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    proc = _start(tmp_path, 30.0)  # the first interrupt's save would take 30 s
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - start < 5 and proc.returncode == 130
    assert "again: stopping at once" in err
