"""The doctor's checks as a registry: one name per check (API, CLI, JSON, report), a check of your own in one
class, and what `register` refuses."""

import json

import numpy as np
import pytest

import striate as st
from striate.cli import main
from striate.data import load
from striate.diagnose import FAIL, Check, Context, Finding, Verdict, doctor, register
from striate.diagnose.check import REGISTRY, check_of, resolve


@pytest.fixture(scope="module")
def digits():
    d = load("digits", "train")
    x = d.images.astype(np.float32) / 255
    return x - x.mean(), d.labels


def test_names_are_resolved_in_registry_order():
    assert resolve(["learning_rate", "initial-loss", "model"]) == ["model", "initial loss", "learning rate"]
    assert resolve(["lr", "training"]) == ["learning rate", "activations", "gradients", "update/weight ratio",
                                           "learning curves"]  # the earlier short keys
    with pytest.raises(ValueError, match=r"unknown checks \['gradient'\]"):
        resolve(["gradient"])
    assert all(check_of(name) is check and isinstance(check, Check) for name, check in REGISTRY.items())
    assert check_of("activations (after 300 steps)") is REGISTRY["activations"]


def test_a_check_of_your_own(digits):
    class HugeFirstLayer:
        name = "huge first layer"
        needs = frozenset({"model"})
        causes = frozenset({"weights_too_large"})

        def run(self, ctx: Context) -> list[Verdict]:
            w = next(ctx.model.parameters()).data
            found = [Finding(FAIL, "weights_too_large", f"|w| up to {abs(w).max():.3g}", "the first layer")] \
                if abs(w).max() > 10 else []
            if not found:
                return [Verdict(self.name, "PASS", f"{abs(w).max():.3g}", "≤ 10")]
            return [Verdict(self.name, FAIL, found[0].symptom, "≤ 10", found[0].advice, cause=found[0].cause)]

    register(HugeFirstLayer)
    try:
        rng = np.random.default_rng(0)
        net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(64, 10, rng=rng))
        net[1].weight.data *= 100
        report = doctor(net, data=digits, checks=("huge_first_layer", "model"))
        assert [v.check for v in report.verdicts] == ["model", "huge first layer"]
        assert report.diagnosis == "weights_too_large" and "Xavier" in report.diagnosis.advice  # CAUSES' advice
    finally:
        REGISTRY.pop("huge first layer")


def test_a_check_of_your_own_may_return_findings(digits):
    """`run(context) -> list[Finding]`: the doctor makes them the check's verdict, advice from CAUSES."""
    class LargeWeights:
        name = "large weights"
        needs = frozenset({"model"})
        causes = frozenset({"weights_too_large"})

        def run(self, ctx: Context) -> list[Finding]:
            top = max(float(abs(p.data).max()) for p in ctx.model.parameters())
            return [Finding(FAIL, "weights_too_large", "the weights are large", f"|w| up to {top:.3g}")] \
                if top > 10 else []

    register(LargeWeights)
    try:
        rng = np.random.default_rng(0)
        net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(64, 10, rng=rng))
        net[1].weight.data *= 100
        report = doctor(net, data=digits, checks=("large_weights",))
        (verdict,) = report.verdicts
        assert (verdict.check, verdict.status, verdict.cause) == ("large weights", FAIL, "weights_too_large")
        assert "|w| up to" in verdict.advice and "Xavier" in verdict.advice
        net[1].weight.data /= 1000
        assert doctor(net, data=digits, checks=("large_weights",)).verdicts == []  # nothing found, nothing said
    finally:
        REGISTRY.pop("large weights")


def test_register_refuses_unknown_causes_and_needs():
    class Bad:
        name, needs, causes = "bad", frozenset({"model"}), frozenset({"no_such_cause"})

        def run(self, ctx):
            return []

    with pytest.raises(ValueError, match="unknown causes"):
        register(Bad)
    Bad.causes, Bad.needs = frozenset(), frozenset({"gpu"})
    with pytest.raises(ValueError, match="needs"):
        register(Bad)
    assert "bad" not in REGISTRY


def test_cli_checks_option(capsys):
    assert main(["doctor", "--checks", "initial_loss,model", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [v["check"] for v in doc["verdicts"]] == ["model", "initial loss"]
    with pytest.raises(SystemExit) as e:
        main(["doctor", "--checks", "model,bogus"])
    assert e.value.code == 2 and "unknown checks ['bogus']" in capsys.readouterr().err


def test_a_check_runs_on_a_cheap_context_and_reads_the_thresholds_table(digits):
    import dataclasses

    from striate.diagnose import THRESHOLDS, WARN
    from striate.diagnose.thresholds import InitialLoss

    rng = np.random.default_rng(0)
    net = st.nn.Sequential(st.nn.Flatten(), st.nn.Linear(64, 10, init="xavier", rng=rng))
    net[1].weight.data *= 0.01
    x, y = digits
    (v,) = REGISTRY["initial loss"].run(Context(net, None, x[:200], y[:200]))
    assert v.check == "initial loss" and v.status == "PASS"
    strict = dataclasses.replace(THRESHOLDS, initial_loss=InitialLoss(warn=1e-6))
    (v,) = REGISTRY["initial loss"].run(Context(net, None, x[:200], y[:200], thresholds=strict))
    assert v.status == WARN
    assert doctor(net, data=digits, checks=("initial loss",), thresholds=strict).get("initial loss").status == WARN
