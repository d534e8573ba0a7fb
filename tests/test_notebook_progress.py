"""Progress in a notebook: one HTML display updated in place (bar, ETA, running metrics, a table with a row
per epoch), a few dozen output messages per fit whatever its number of steps, no epoch lines on stdout;
`console.in_notebook()` finds a kernel without ever importing IPython."""

import io
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import striate as st
from striate import console
from striate.train import Trainer
from striate.train.callbacks import Progress, progress_html

SRC = str(Path(__file__).resolve().parents[1] / "src")


class FakeDisplay:
    """A stand-in for IPython.display that records every display and update."""

    def __init__(self):
        self.calls = []  # ("display" | "update", html)

    def module(self):
        mod = types.ModuleType("IPython.display")
        mod.HTML = lambda text: text
        recorder = self

        class Handle:
            def update(self, obj):
                recorder.calls.append(("update", obj))

        def display(obj, display_id=None):
            assert display_id is True
            recorder.calls.append(("display", obj))
            return Handle()

        mod.display = display
        return mod


@pytest.fixture
def kernel(monkeypatch):
    """A notebook as Progress sees it: STRIATE_NOTEBOOK=1 and a fake IPython.display."""
    fake = FakeDisplay()
    package = types.ModuleType("IPython")
    package.display = fake.module()
    monkeypatch.setitem(sys.modules, "IPython", package)
    monkeypatch.setitem(sys.modules, "IPython.display", package.display)
    monkeypatch.setenv("STRIATE_NOTEBOOK", "1")
    return fake


def _fit(callbacks=(), epochs=3, steps=200, **kwargs):
    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(4, 3, rng=rng))
    trainer = Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1), callbacks=list(callbacks),
                      **kwargs)
    x = rng.standard_normal((steps * 2, 2, 2, 1)).astype(np.float32)
    y = rng.integers(0, 3, steps * 2)
    batches = [(x[i:i + 2], y[i:i + 2]) for i in range(0, steps * 2, 2)]
    trainer.fit(batches, (x[:20], y[:20]), epochs=epochs)
    return trainer


def test_a_fit_updates_one_display_a_few_dozen_times(kernel, monkeypatch, capsys):
    monkeypatch.setattr(progress_html, "FLOOR", 0.0)  # only the count throttles: the most updates there can be
    _fit([Progress()])
    kinds = [kind for kind, _ in kernel.calls]
    assert kinds[0] == "display" and kinds.count("display") == 1  # one output, then updates in place
    assert 3 + 3 <= len(kinds) <= 40  # bar redraws happened, 600 steps did not make 600 messages
    last = kernel.calls[-1][1]
    assert last.count("<tr>") == 1 + 3  # the header and a row per epoch
    assert all(f"<tr><td class=num>{e}</td>" in last for e in (1, 2, 3))
    assert "val_acc" in last and "%" in last and "lr" in last
    assert "value='200' max='200'" in last  # the bar at 100 %
    assert any("step " in html and " left" in html and "loss" in html for _, html in kernel.calls)  # ETA, running
    assert capsys.readouterr().out == ""  # no epoch lines on stdout: the table holds them


def test_the_time_floor_keeps_fast_steps_from_redrawing(kernel, monkeypatch):
    monkeypatch.setattr(progress_html, "FLOOR", 3600.0)
    _fit([Progress()])
    assert len(kernel.calls) == 1 + 3  # the display and each epoch's row


def test_a_trainer_without_progress_gets_the_display_in_a_notebook_only(kernel, monkeypatch):
    _fit(epochs=1, steps=5)
    assert kernel.calls and kernel.calls[0][0] == "display"
    kernel.calls.clear()
    _fit(epochs=1, steps=5, progress=False)
    monkeypatch.setenv("STRIATE_NOTEBOOK", "0")
    trainer = _fit(epochs=1, steps=5)
    assert kernel.calls == [] and not any(isinstance(cb, Progress) for cb in trainer.callbacks)


def test_an_explicit_stream_keeps_the_epoch_lines_in_a_notebook(kernel):
    out = io.StringIO()
    _fit([Progress(stream=out, bar=False)], epochs=2, steps=5)  # a search's log file
    assert kernel.calls == [] and len(out.getvalue().splitlines()) == 2


def test_the_stop_reason_is_shown_in_the_display(kernel):
    from striate.train.callbacks import EarlyStopping

    _fit([Progress(), EarlyStopping(1, min_delta=10.0)], epochs=5, steps=5)
    assert "early stopping after epoch" in kernel.calls[-1][1]


def test_in_notebook_never_imports_ipython(monkeypatch):
    monkeypatch.delenv("STRIATE_NOTEBOOK", raising=False)
    code = "import sys; from striate import console; print(console.in_notebook(), 'IPython' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})
    assert r.stdout.split() == ["False", "False"], r.stderr


def test_in_notebook_knows_a_kernel_shell_from_a_terminal_one(monkeypatch):
    monkeypatch.delenv("STRIATE_NOTEBOOK", raising=False)

    class ZMQInteractiveShell:
        pass

    class TerminalInteractiveShell:
        pass

    package = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", package)
    for shell, expected in ((ZMQInteractiveShell(), True), (TerminalInteractiveShell(), False), (None, False)):
        package.get_ipython = lambda shell=shell: shell
        assert console.in_notebook() is expected
    monkeypatch.setenv("STRIATE_NOTEBOOK", "1")
    assert console.in_notebook() is True


CELL = """
import sys, os
sys.path.insert(0, {src!r})
os.environ.pop("STRIATE_NOTEBOOK", None)
import numpy as np
import striate as st
from striate.train import Trainer
rng = np.random.default_rng(0)
net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(4, 3, rng=rng))
x = rng.standard_normal((1200, 2, 2, 1)).astype(np.float32)
y = rng.integers(0, 3, 1200)
batches = [(x[i:i + 2], y[i:i + 2]) for i in range(0, 1200, 2)]
print("before")
Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1)).fit(batches, (x[:50], y[:50]), epochs=4)
print("after")
"""


def test_a_real_kernel_shows_one_display_updated_in_place(jupyter_kernel):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    messages = []

    class Recording(nbclient.NotebookClient):
        def process_message(self, msg, cell, cell_index):
            messages.append(msg["msg_type"])
            return super().process_message(msg, cell, cell_index)

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL.format(src=SRC))])
    Recording(nb, timeout=60, kernel_name=jupyter_kernel).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(outputs) <= 40
    html = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1  # one display, updated in place
    assert messages.count("update_display_data") >= 4 and messages.count("display_data") == 1
    final = html[0].data["text/html"]
    assert final.count("<tr>") == 1 + 4 and "value='600' max='600'" in final
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "before" in text and "after" in text and "epoch 1/4" not in text  # the table, no epoch lines


def test_a_run_executed_in_a_notebook_gets_the_display(kernel, tmp_path, capsys):
    from striate.run import RunDir, build, execute
    from striate.run import config as cfg

    config = cfg.resolve({"epochs": 2, "limit": 200, "batch_size": 32, "report": "off", "diagnostics": 0,
                          "out": str(tmp_path / "r")})
    directory = RunDir(tmp_path / "r")
    directory.write_config(config)
    execute(build(config, directory))
    assert kernel.calls[0][0] == "display" and kernel.calls[-1][1].count("<tr>") == 1 + 2
    assert "epoch 1/2  loss" not in capsys.readouterr().out


def test_a_loader_without_a_length_still_gets_few_updates(kernel, monkeypatch):
    class Unsized:
        def __init__(self, batches):
            self.batches = batches

        def __iter__(self):
            return iter(self.batches)

    monkeypatch.setattr(progress_html, "FLOOR", 0.0)
    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(4, 3, rng=rng))
    x = rng.standard_normal((400, 2, 2, 1)).astype(np.float32)
    y = rng.integers(0, 3, 400)
    batches = Unsized([(x[i:i + 2], y[i:i + 2]) for i in range(0, 400, 2)])
    Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1)).fit(batches, epochs=4)
    later = [html for _, html in kernel.calls if any(f"epoch {e}/4  step" in html for e in (2, 3, 4))]
    assert 3 <= len(later) <= 24 + 1  # the first epoch's length spreads the budget over the other three
    assert kernel.calls[-1][1].count("<tr>") == 1 + 4
