"""report.html: built from a run directory, self-contained (embedded PNGs that decode and are not blank),
rendered by a real browser (headless Chromium, when installed), runs overlaid; and the CLI hooks."""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from striate.cli import main
from striate.data import load
from striate.diagnose import doctor
from striate.models import get as get_model
from striate.report import write_comparison, write_report
from striate.run import RunDir

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A doctor run on the digits written to a directory (diagnostics.json, metrics.jsonl, report.html)."""
    d = load("digits", "train")
    x = d.images.astype(np.float32) / 255
    model = get_model("digits_net", 10, 1, rng=np.random.default_rng(0), image_size=(8, 8))
    report = doctor(model, data=(x - x.mean(), d.labels), optimizer="momentum", lr=0.05, iterations=120)
    out = RunDir(tmp_path_factory.mktemp("doctor"))
    report.write(out.diagnostics_file, out.metrics_file)
    write_report(out, title="striate doctor")
    return out.path


def embedded_images(page: str) -> list[Image.Image]:
    blobs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in blobs]


def not_blank(img: Image.Image) -> bool:
    a = np.asarray(img, dtype=np.float32)
    return a.std() > 5 and (a < 200).mean() > 0.005


def test_report_embeds_every_plot(run_dir):
    page = (run_dir / "report.html").read_text()
    images = embedded_images(page)
    ids = re.findall(r'<figure id="([a-z_]+)"', page)
    for name in ("loss", "accuracy", "lr", "update_ratio", "lr_finder", "activations_start", "activations_latest",
                 "gradients_start", "gradients_latest", "filters", "confusion", "verdicts"):
        assert name in ids, name
    assert len(images) == len(ids) and all(min(i.size) > 50 and not_blank(i) for i in images)
    assert sorted(p.stem for p in (run_dir / "plots").glob("*.png")) == sorted(ids)
    assert "src=\"http" not in page and "<script" not in page  # self-contained, no external resources
    assert page.count("class='s PASS'") == 15


def test_report_from_a_training_run_and_overlay(run_dir, tmp_path):
    # a second "run": the same history with a scaled loss, as the trainer's History would write it
    other = tmp_path / "run_b"
    other.mkdir()
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in lines:
        r["loss"] *= 1.5
    (other / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"type": "iter')  # torn
    path = write_report(RunDir(other))
    page = path.read_text()
    assert "learning curves" in page and len(embedded_images(page)) >= 3  # curves verdict computed from history
    cmp = write_comparison([RunDir(run_dir), RunDir(other)], tmp_path / "cmp.html")
    imgs = embedded_images(cmp.read_text())
    assert len(imgs) == 1 and not_blank(imgs[0]) and "run_b" in cmp.read_text()
    with pytest.raises(FileNotFoundError):
        write_comparison([RunDir(run_dir), RunDir(tmp_path / "missing")], tmp_path / "x.html")


def test_report_command(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html"), "--log"]) == 0
    assert "loss_log" in (tmp_path / "r.html").read_text()
    assert main(["report", str(run_dir), str(run_dir), "--out", str(tmp_path / "c.html")]) == 0
    assert (tmp_path / "c.html").stat().st_size > 10_000
    assert main(["report", str(tmp_path / "nope")]) == 2  # the one error path: a missing directory is usage
    assert capsys.readouterr().err.startswith("striate report: error: ")


def test_doctor_command(tmp_path, capsys):
    args = ["--optimizer", "momentum", "--iterations", "60", "--limit", "600"]
    assert main(["doctor", *args, "--lr", "0.05", "--json", "--out", str(tmp_path / "doc")]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out.splitlines()[0])
    verdicts = doc["verdicts"]
    assert len(verdicts) == 16 and {v["status"] for v in verdicts} <= {"PASS", "WARN"}  # with validation labels
    assert doc["diagnosis"]["cause"] in ("healthy", *[v["cause"] for v in verdicts])
    assert (tmp_path / "doc" / "report.html").is_file()
    assert main(["doctor", *args, "--lr", "5"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("diagnosis: lr_too_high (FAIL)") and "FAIL" in out


def test_init_experiment_command(tmp_path, capsys):
    assert main(["doctor", "--init-experiment", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tanh, 0.01·randn" in out and "collapse towards 0" in out and "saturated" in out
    page = (tmp_path / "report.html").read_text()
    assert len(re.findall(r'<figure id="init_', page)) == 5
    assert all(not_blank(i) for i in embedded_images(page))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
           (run_dir / "report.html").as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("chromium did not finish within 60 s")
    if not shot.exists():
        pytest.skip("chromium ran but wrote no screenshot (no usable headless mode here)")
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2000)
    a = np.asarray(img, dtype=np.float32)
    assert a.std() > 20  # not a blank page
    green = (a[..., 1] > 100) & (a[..., 0] < 80) & (a[..., 2] < 80)  # the PASS cells of the verdict table
    assert green.sum() > 500
    plots = a[900:, :, :]  # below the table: the plots were drawn, not broken-image icons
    assert (plots < 200).mean() > 0.02


def test_report_writer_during_training_and_from_checkpoints(tmp_path, capsys):
    """A `striate train` run directory plus the training callbacks: the page shows the curves, the update
    ratios, the histograms, and the filters and confusion matrix taken from the best checkpoint."""
    from striate.diagnose import Diagnostics
    from striate.report import ReportWriter
    from striate.run import build, execute

    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--limit", "300", "--out", str(run)]) == 0
    capsys.readouterr()
    page = write_report(RunDir(run)).read_text()
    ids = re.findall(r'<figure id="([a-z_]+)"', page)
    assert {"loss", "accuracy", "filters", "confusion"} <= set(ids) and "unavailable" not in page
    assert all(not_blank(i) for i in embedded_images(page))

    # the same pieces, trained again with the diagnostics and the report writer attached through the seam
    config = RunDir(run).read_config()
    config.pop("resume")
    second = RunDir(tmp_path / "run2")
    writer = ReportWriter(second, min_interval=0)  # draws at every epoch end; the final page comes after
    built = build(dict(config, epochs=2, report="on", diagnostics=0), second, stream=io.StringIO(),
                  callbacks=[Diagnostics(second.diagnostics_file, stats_interval=3), writer])
    second.write_config(built.config)
    execute(built)
    assert writer.written == 2
    page = second.report_file.read_text()
    ids = set(re.findall(r'<figure id="([a-z_]+)"', page))
    assert {"update_ratio", "activations_start", "activations_latest", "gradients_latest", "scale_latest",
            "verdicts", "filters", "confusion"} <= ids
