"""Notebook displays: what people leave as a cell's last expression (the summary, the doctor's report, a
gradient check, an evaluation, a search's trials, a run directory) renders as well-formed HTML with its key
numbers, a short readable repr, and IPython's pretty printer gives the same text. The HTML is made of the
pieces report.html uses (`striate.markup`), its style sheet scoped to the display."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest

import striate as st
from striate import markup
from striate.diagnose.doctor_report import DoctorReport
from striate.diagnose.verdict import Verdict
from striate.run import RunDir

VOID = {"br", "img", "meta", "hr", "input", "link", "col", "wbr"}


class _Balance(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(obj) -> str:
    """The object's `_repr_html_`, checked: tags balance, one scoped <div class='striate'> holds it all."""
    out = obj._repr_html_()
    p = _Balance()
    p.feed(out)
    p.close()
    assert not p.errors and not p.stack, (p.errors, p.stack)
    assert out.startswith("<div class='striate'><style>") and out.endswith("</div>")
    return out


def check_text(obj, max_lines: int = 25) -> str:
    """repr: short, no dataclass dump; IPython's pretty printer: the same text."""
    from IPython.lib.pretty import pretty

    text = repr(obj)
    assert text.count("\n") < max_lines, text
    for dump in ("LayerCost(", "Verdict(", "TensorCheck(", "Row(", "Diagnosis("):
        assert dump not in text, text
    assert pretty(obj) == text
    return text


def _net(rng, width=4):
    return st.nn.Sequential(st.nn.Conv2d(1, width, 3, padding=1, rng=rng), st.nn.ReLU(), st.nn.Flatten(),
                            st.nn.Linear(8 * 8 * width, 3, rng=rng))


def test_scoped_style_styles_only_the_display():
    css = markup.scoped_css()
    rules = [r for r in css.splitlines() if r]
    assert all(sel.strip().startswith(".striate") for r in rules for sel in r.split("{")[0].split(","))
    assert "max-width:1340px" not in css  # the page's body rule does not reach the notebook
    assert ".striate table.v td" in css and ".striate .dx.FAIL" in css


def test_summary(rng):
    table = st.summary(_net(rng), (8, 8, 1))
    out = check_html(table)
    assert f"{table.total_params:,}" in out and f"{table.total_macs:,}" in out
    assert "Conv2d(1→4, 3×3, pad=1)" in out and "(1, 8, 8, 4)" in out
    text = check_text(table)
    assert text == str(table)  # a small table is shown whole, as the CLI prints it
    assert f"{table.total_params:,}" in text


def test_summary_of_a_deep_net_is_cut_in_the_text(rng):
    layers = [st.nn.Linear(4, 4, rng=rng) for _ in range(30)]
    table = st.summary(st.nn.Sequential(*layers), (4,))
    text = check_text(table)
    assert "more layers" in text and f"{table.total_params:,}" in text
    assert check_html(table).count("Linear(4→4)") == 30  # the HTML has every row


def _report():
    verdicts = [Verdict("inputs", "PASS", "mean 0.01, std 0.98", "zero mean, unit std"),
                Verdict("learning rate", "FAIL", "loss 2.30 → 2.30 over 100 steps", "falls",
                        "the learning rate is too low — raise it", cause="lr_too_low",
                        symptom="the loss barely changes"),
                Verdict("gradient <check> & co", "WARN", "3e-4", "< 1e-5", "look at layer 2")]
    return DoctorReport(verdicts=verdicts, seconds={"total": 1.5})


def test_doctor_report():
    report = _report()
    out = check_html(report)
    assert "id='diagnosis'" in out and "lr too low" in out
    for v in report.verdicts:
        assert f"<td class='s {v.status}'>{v.status}</td><td>{markup.html.escape(v.check)}</td>" in out
    assert "gradient &lt;check&gt; &amp; co" in out  # escaped
    text = check_text(report)
    assert "diagnosis: lr_too_low (FAIL)" in text and "overall: FAIL" in text
    assert all(v.check in text for v in report.verdicts)
    assert text.index("FAIL  learning rate") < text.index("PASS  inputs")  # the worst first


def test_report_html_draws_the_same_diagnosis_and_verdicts(tmp_path):
    """report.html and the notebook display are built from the same pieces (one copy of each)."""
    from striate.report import header, write_report

    assert header.verdict_table is markup.verdict_table and header.diagnosis is markup.diagnosis
    report = _report()
    run = RunDir(tmp_path)
    report.write(run.diagnostics_file, run.metrics_file)
    page = write_report(run).read_text()
    verdicts = [v.to_dict() for v in report.verdicts]
    for piece in (markup.diagnosis(report.diagnosis.to_dict()), markup.verdict_table(verdicts),
                  markup.verdict_counts(verdicts)):
        assert piece in page and piece in report._repr_html_()
    assert f"<style>{markup.CSS}</style>" in page


def test_gradcheck(rng):
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    report = st.gradcheck(_net(rng, width=2), x)
    out = check_html(report)
    assert "gradient check ok" in out and "PASS" in out
    assert all(t.name in out and f"{t.max_rel_error:.2e}" in out for t in report.tensors)
    text = check_text(report)
    assert text.startswith("gradcheck: ok")


def test_evaluation(rng):
    from striate.run.evaluation import evaluate
    from striate.train import Trainer

    model = _net(rng)
    x = rng.standard_normal((30, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    result = Trainer(model, st.nn.SoftmaxCrossEntropy(), st.optim.SGD(model.parameters(), lr=0.1)).evaluate((x, y))
    assert isinstance(result, dict) and set(result) == {"loss", "count", "accuracy"}
    json.dumps(result)  # still a plain JSON object
    assert f"{100 * result['accuracy']:.2f} %" in check_html(result)
    assert check_text(result).startswith(f"accuracy {100 * result['accuracy']:.2f} %")

    full = evaluate(model, x, y, ["cat", "dog", "emu"])
    out = check_html(full)
    cm = np.asarray(full["confusion_matrix"])
    assert "true \\ predicted" in out and all(c in out for c in ("cat", "dog", "emu"))
    assert "<td>cat</td>" + "".join(f"<td class=num>{v}</td>" for v in cm[0]) in out
    text = check_text(full)
    assert "true\\pred" in text and "scores" not in text  # the (N, C) scores are never printed


def test_search_results():
    from striate.search.report import Results, Row

    rows = [Row(1, i, {"lr": 10.0 ** -i, "reg": 1e-4}, v, 2, 3.0 + i, "complete" if v is not None else "pruned",
                None) for i, v in enumerate([0.61, 0.83, None, 0.72] + [0.1 + 0.01 * k for k in range(12)])]
    results = Results(rows, ["lr", "reg"])
    assert results.best.number == 1 and results[0] is results.best
    out = check_html(results)
    assert "83.00 %" in out and "stage 1, trial 1" in out and "<tr class='best'>" in out
    text = check_text(results)
    assert "val accuracy 83.00%" in text and "more trials" in text and "lr = 0.1" in text


def test_run_dir(tmp_path):
    run = RunDir(tmp_path / "run")
    assert "not a run directory" in check_text(run) and "not a run directory" in check_html(run)
    run.write_config({"model": "digits_net", "data": "digits", "optimizer": "adam", "lr": 0.001, "epochs": 3,
                      "batch_size": 64, "seed": 0})
    run.metrics_file.write_text("".join(json.dumps({"type": "epoch", "epoch": e, "iteration": 10 * e,
                                                    "accuracy": 0.5 + 0.1 * e, "val_accuracy": a}) + "\n"
                                        for e, a in ((1, 0.8), (2, 0.9), (3, 0.85))))
    text = check_text(run)  # still training: the history's numbers
    assert "running" in text and "best val accuracy 90.00 % (epoch 2)" in text and "3 of 3 epochs" in text
    run.write_json(run.SUMMARY, {"status": "finished", "best_val_accuracy": 0.9, "best_epoch": 2,
                                 "epochs_completed": 3, "test": {"accuracy": 0.875, "count": 400},
                                 "parameters": 1234, "macs": 5678, "seconds": 12.5})
    text = check_text(run)
    assert text.splitlines()[0] == f"RunDir({str(run.path)!r}): finished"
    assert "digits_net on digits" in text and "test accuracy 87.50 %" in text
    out = check_html(run)
    for number in ("87.50 %", "90.00 %", "epoch 2", "finished", str(run.path), "1,234"):
        assert number in out, number


@pytest.mark.parametrize("cycle", [True])
def test_pretty_printer_handles_a_cycle(cycle):
    class P:
        def __init__(self):
            self.out = ""

        def text(self, s):
            self.out += s

    p = P()
    _report()._repr_pretty_(p, cycle)
    assert p.out == "DoctorReport(...)"
