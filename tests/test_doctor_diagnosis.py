"""The diagnosis: verdicts combined into one root cause — its evidence, its consequences (rewritten so they
no longer point elsewhere), independent problems — and the vocabulary it speaks."""

import copy
import json
import pickle

from striate.diagnose import CAUSES, FAIL, PASS, WARN, Verdict
from striate.diagnose.causes import CONFLICTS, EXPLAINS, HEALTHY, PRIORITY
from striate.diagnose.diagnosis import Diagnosis, diagnose


def v(check, status, cause="", symptom="", **details):
    return Verdict(check, status, f"{check} value", "n/a", f"{check}: advice for {cause}" if cause else "",
                   cause=cause, details=details, symptom=symptom or f"{check} saw something")


def test_vocabulary_is_closed_and_documented():
    import striate.diagnose.causes as causes

    assert HEALTHY in CAUSES and HEALTHY not in PRIORITY and set(PRIORITY) | {HEALTHY} == set(CAUSES)
    assert all(k in CAUSES and all(c in CAUSES for c in e) for k, e in EXPLAINS.items())
    assert all(len(p) == 2 and all(c in CAUSES for c in p) for p in CONFLICTS)
    for code in CAUSES:  # the module docstring's table lists every code
        assert f"| `{code}` |" in causes.__doc__, code
    issue = {"lr_too_high", "lr_too_low", "weights_too_large", "weights_too_small", "dead_units", "wrong_backward",
             "bad_initial_loss", "inputs_not_preprocessed", "labels_shuffled", "single_class", "class_imbalance",
             "overfitting", "underfitting", "regularization_ineffective", "healthy"}
    assert issue <= set(CAUSES)


def test_no_problem_is_healthy():
    d = diagnose([v("a", PASS), v("b", PASS)])
    assert d == "healthy" and d.status == PASS and isinstance(d, str) and d.code == "healthy"
    assert diagnose([]) == HEALTHY


def test_root_cause_first_consequences_rewritten():
    verdicts = [v("activations", FAIL, "dead_units"), v("learning rate", FAIL, "lr_too_low", "the loss barely moves"),
                v("learning curves", FAIL, "lr_too_low", "validation at chance"),
                v("update ratio", WARN, "lr_too_high"), v("initial loss", PASS)]
    d = diagnose(verdicts)
    assert d == "dead_units" and d.status == FAIL and d.advice == "activations: advice for dead_units"
    assert [e["check"] for e in d.evidence] == ["activations"] and not d.also
    assert [c["check"] for c in d.consequences] == ["learning rate", "learning curves", "update ratio"]
    lr = verdicts[1]
    assert lr.cause == "dead_units" and lr.advice.startswith("the loss barely moves: a consequence of the diagnosis")
    assert all(x.cause in ("dead_units", "") for x in verdicts) and "lr_too" not in " ".join(x.advice for x in verdicts)


def test_conflicting_readings_are_never_both_named():
    verdicts = [v("update ratio", WARN, "lr_too_high"), v("learning rate", FAIL, "lr_too_low"),
                v("activations", WARN, "weights_too_large"), v("gradients", FAIL, "weights_too_small")]
    d = diagnose(verdicts)
    named = d.codes()
    assert d == "weights_too_small" and "weights_too_large" not in named
    assert not any(frozenset((a, b)) in CONFLICTS for a in named for b in named)
    assert all(x.cause in named for x in verdicts)
    assert "not a cause of its own" in verdicts[2].advice


def test_fail_before_warn_and_independent_problems_listed_once():
    verdicts = [v("labels", WARN, "class_imbalance"), v("learning rate", FAIL, "lr_too_high"),
                v("regularisation", FAIL, "regularization_ineffective"), v("curves", FAIL, "lr_too_high")]
    d = diagnose(verdicts)
    assert d == "lr_too_high" and len(d.evidence) == 2
    assert [a.code for a in d.also] == ["regularization_ineffective", "class_imbalance"]
    assert d.also[1].status == WARN and "also: class_imbalance (WARN)" in d.describe()


def test_a_warn_read_before_training_explains_training_fails():
    # inputs a bit large (WARN) are the root of the explosion they cause (FAIL)
    d = diagnose([v("inputs", WARN, "inputs_not_preprocessed"), v("learning rate", FAIL, "lr_too_high")])
    assert d == "inputs_not_preprocessed" and d.status == FAIL and d.consequences[0]["check"] == "learning rate"
    # a suspicious gradient check (WARN) is not promoted over a real FAIL
    d = diagnose([v("gradient check", WARN, "wrong_backward"), v("learning rate", FAIL, "lr_too_high")])
    assert d == "lr_too_high"


def test_evidence_can_rule_a_cause_out():
    """A tiny subset that even Adam cannot fit: the learning rate is not the root."""
    verdicts = [v("overfit", FAIL, "underfitting", rules_out=["lr_too_high", "lr_too_low"]),
                v("learning rate", FAIL, "lr_too_low")]
    d = diagnose(verdicts)
    assert d == "underfitting" and verdicts[1].cause == "underfitting" and not d.also


def test_diagnosis_round_trips_and_behaves_as_a_string():
    d = diagnose([v("activations", FAIL, "dead_units"), v("learning rate", FAIL, "lr_too_low"),
                  v("regularisation", FAIL, "regularization_ineffective")])
    back = Diagnosis.from_dict(json.loads(json.dumps(d.to_dict())))
    assert back == d == "dead_units" and back.status == FAIL and back.also[0] == "regularization_ineffective"
    assert back.consequences == d.consequences and back.evidence == d.evidence
    for clone in (copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert clone == "dead_units" and clone.status == FAIL and clone.also == d.also
    assert json.dumps({"diagnosis": d}) == '{"diagnosis": "dead_units"}' and {d: 1}["dead_units"] == 1
    assert repr(d) == "Diagnosis('dead_units', FAIL)" and d.describe().startswith("diagnosis: dead_units (FAIL)")


def test_a_report_built_from_verdicts_diagnoses_itself():
    from striate.diagnose.doctor_report import DoctorReport

    verdicts = [v("inputs", FAIL, "nonfinite_inputs"), v("initial loss", FAIL, "weights_too_large")]
    report = DoctorReport(verdicts=verdicts)
    assert report.diagnosis == "nonfinite_inputs" and report.verdicts[1].cause == "nonfinite_inputs"
    assert str(report).startswith("diagnosis: nonfinite_inputs (FAIL)") and report.to_dict()["diagnosis"]["cause"] \
        == "nonfinite_inputs"
    assert len(report.advice()) == 3 and DoctorReport().diagnosis == "healthy"
