"""In a notebook: `report.LiveCurves` redraws the curves in place (one display, then updates of it, never a new
output per epoch), `run.execute` adds it there unless told not to, and `report.show` gives the report (or the
comparison of runs) as self-contained HTML. IPython is replaced by a stub that records what is displayed, and
the notebook is forced through `console.in_notebook`; matplotlib stays on its non-interactive backend."""

import base64
import io
import re
import shutil
import sys
import types

import matplotlib
import numpy as np
import pytest
from PIL import Image as PILImage

import striate as st
from striate import console
from striate.data import DataLoader
from striate.diagnose.callbacks import Diagnostics
from striate.report import LiveCurves, show
from striate.train import History, Trainer

matplotlib.use("Agg")  # non-interactive, as on a server or in CI: the curves never go through pyplot


class Recorder:
    """A stand-in for IPython.display: `display(obj, display_id=True)` and `handle.update(obj)` are recorded.
    `calls` holds the PNG images' (the progress display's HTML, drawn in a notebook too, is kept apart)."""

    def __init__(self):
        self.calls: list[tuple[str, bytes]] = []
        self.html: list[str] = []
        test = self

        class Image:
            def __init__(self, data=None, format=None):
                assert format == "png"
                self.data = data

        class HTML:
            def __init__(self, data=None):
                self.data = data

        def record(kind, obj):
            if isinstance(obj, Image):
                test.calls.append((kind, obj.data))
            else:
                test.html.append(obj.data)

        class Handle:
            def update(self, obj):
                record("update", obj)

        def display(obj, display_id=False):
            assert display_id is True
            record("display", obj)
            return Handle()

        self.module = types.ModuleType("IPython.display")
        self.module.Image, self.module.HTML, self.module.display = Image, HTML, display

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]

    def sizes(self) -> list[tuple[int, int]]:
        return [PILImage.open(io.BytesIO(png)).size for _, png in self.calls]


@pytest.fixture
def shown(monkeypatch):
    recorder = Recorder()
    monkeypatch.setitem(sys.modules, "IPython.display", recorder.module)
    monkeypatch.setattr(console, "in_notebook", lambda: True, raising=False)
    return recorder


def fit(callbacks, epochs=4):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 4, 4, 1)).astype(np.float32)
    y = (x.reshape(96, -1).sum(1) > 0).astype(np.int64)
    net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(16, 8, rng=rng), st.nn.ReLU(), st.nn.Linear(8, 2, rng=rng))
    trainer = Trainer(net, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(net, lr=0.1), callbacks=callbacks)
    loader = DataLoader(x[:64], y[:64], 16, shuffle=True, rng=np.random.default_rng(1))
    trainer.fit(loader, (x[64:], y[64:]), epochs=epochs)
    return trainer


def test_one_display_updated_once_per_epoch_with_the_ratio_band(shown):
    live = LiveCurves()
    fit([History(), Diagnostics(ratio_interval=1), live])
    assert shown.kinds() == ["display", "update", "update", "update"] and live.shown == 4
    assert all(png.startswith(b"\x89PNG") for _, png in shown.calls)
    assert shown.sizes() == [(1320, 320)] * 4  # three panels: loss, accuracy, update ratios
    assert matplotlib.get_backend().lower() == "agg"


def test_without_ratios_or_history_the_curves_alone(shown):
    fit([LiveCurves()])  # no History in the trainer: the callback keeps its own
    assert shown.kinds() == ["display", "update", "update", "update"]
    assert shown.sizes() == [(880, 320)] * 4  # loss and accuracy


def test_min_interval_still_draws_the_last_epoch(shown):
    fit([History(), LiveCurves(min_interval=3600)])
    assert shown.kinds() == ["display", "update"]  # the first epoch, then the last one at the end


def test_outside_a_notebook_nothing_is_drawn(shown, monkeypatch):
    monkeypatch.setattr(console, "in_notebook", lambda: False, raising=False)
    fit([History(), LiveCurves()])
    assert shown.calls == []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny digits runs (the second a copy of the first, renamed), trained by `run.execute`."""
    root = tmp_path_factory.mktemp("runs")
    config = st.run.config.resolve({"epochs": 2, "limit": 200, "report": "off", "diagnostics": 5})
    directory = st.run.RunDir(root / "first")
    run = st.run.build(config, directory)
    directory.write_config(config)
    st.run.execute(run, live_curves=False)
    shutil.copytree(root / "first", root / "second")
    return run, directory, st.run.RunDir(root / "second")


def test_execute_shows_live_curves_in_a_notebook_unless_told_not_to(shown, runs, tmp_path):
    run, _, _ = runs
    assert run.trainer.callback(LiveCurves) is None and shown.calls == []  # live_curves=False
    config = st.run.config.resolve({"epochs": 2, "limit": 100, "report": "off", "diagnostics": 5})
    again = st.run.build(config, st.run.RunDir(tmp_path / "run"))
    st.run.execute(again)
    assert shown.kinds() == ["display", "update"] and shown.sizes()[0] == (1320, 320)


def test_show_embeds_the_report(runs):
    run, directory, _ = runs
    shown = show(run)  # the Run st.run.build returned (or its RunDir, `run.directory`)
    page = shown._repr_html_()
    assert "<h1>striate report: first</h1>" in page and "id='status'" in page and "id='test'" in page
    blobs = re.findall(r"src=[\"']data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(blobs) >= 3 and all(base64.b64decode(b).startswith(b"\x89PNG") for b in blobs)
    assert len(blobs) == len(re.findall(r"src=", page)) and "href" not in page  # no file beside the notebook
    assert page.startswith("<div class='striate'><style>") and "body{" not in page  # scoped style
    assert "striate report: first" in repr(shown) and not (directory.path / "report.html").exists()  # nothing written


def test_show_compares_several_runs(runs):
    _, first, second = runs
    page = show([first, second])._repr_html_()
    assert "runs compared" in page and "id='runs'" in page and "first" in page and "second" in page
    assert re.search(r'id="overlay"[^>]*><img alt="[^"]*" src="data:image/png;base64,', page)


def test_show_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(TypeError, match="RunDir"):
        show(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no metrics"):
        show(st.run.RunDir(tmp_path))


def test_a_failed_drawing_never_stops_the_training(shown, monkeypatch, capsys):
    import striate.report.live as live

    def broken(*args):
        raise ValueError("no room")

    monkeypatch.setattr(live, "curves_png", broken)
    trainer = fit([History(), LiveCurves()], epochs=2)
    assert trainer.epoch == 2 and shown.calls == []
    assert capsys.readouterr().err.count("live curves stopped (ValueError: no room)") == 1
