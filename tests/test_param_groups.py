"""The airbench-like optimization pieces: parameter groups (lr_mult, decay_mult) in every optimizer and from
rules, decoupled weight decay, the summed loss and the triangular schedule — against hand computations and
torch.optim with the corresponding param groups."""

import json

import numpy as np
import pytest

import striate as st
from striate import optim
from striate.optim import schedules as S
from striate.run.config import ConfigError
from striate.run.run_file import load_run_file


def params(rng, shapes=((4, 3), (5,), (2, 3))):
    return [st.nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]


def small_net():
    rng = np.random.default_rng(0)
    return st.nn.Sequential(st.nn.Conv2d(3, 4, 3, rng=rng), st.nn.BatchNorm(4), st.nn.ReLU(), st.nn.Flatten(),
                            st.nn.Linear(16, 3, rng=rng))


def run_both(torch, make, tmake, ps, steps=6, schedule=None):
    """`steps` steps of ours (groups [ps[:2], ps[2:]]) and torch's on the same random gradients."""
    rng = np.random.default_rng(5)
    tps = [torch.tensor(p.data.copy(), requires_grad=True) for p in ps]
    opt, topt = make([{"params": ps[:2], "lr_mult": 4.0, "decay_mult": 0.5}, {"params": ps[2:]}]), tmake(tps)
    sched = optim.Scheduler(opt, schedule) if schedule else None
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda t: schedule(t) / schedule.lr) if schedule else None
    for _ in range(steps):
        for p, tp in zip(ps, tps, strict=True):
            p.grad[...] = g = rng.standard_normal(p.shape).astype(np.float32)
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        if sched:
            sched.step()
            tsched.step()
    for p, tp in zip(ps, tps, strict=True):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    return opt


@pytest.mark.parametrize(("name", "tname", "kw"), [
    ("SGD", "SGD", dict(lr=0.05, momentum=0.85, nesterov=True, weight_decay=1e-2)),
    ("Adam", "Adam", dict(lr=1e-2, weight_decay=1e-2)),
    ("AdamW", "AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("RMSProp", "RMSprop", dict(lr=1e-2, momentum=0.5, weight_decay=1e-2)),
    ("AdaGrad", "Adagrad", dict(lr=0.1, weight_decay=1e-2)),
])
def test_two_groups_match_torch_param_groups(rng, torch, name, tname, kw):
    lr, wd = kw.pop("lr"), kw.pop("weight_decay")
    run_both(torch, lambda groups: getattr(optim, name)(groups, lr=lr, weight_decay=wd, **kw),
             lambda tps: getattr(torch.optim, tname)([
                 {"params": tps[:2], "lr": lr * 4, "weight_decay": wd * 0.5}, {"params": tps[2:]}],
                 lr=lr, weight_decay=wd, **kw), params(rng))


def test_a_group_step_is_the_hand_computation(rng):
    a, b = params(rng, [(3,), (3,)])
    before_a, before_b = a.data.copy(), b.data.copy()
    a.grad[...], b.grad[...] = 1, 1
    optim.SGD([{"params": [a], "lr_mult": 10, "decay_mult": 2}, {"params": [b]}], lr=0.01, weight_decay=0.1).step()
    np.testing.assert_allclose(a.data, before_a - np.float32(0.1) * (1 + np.float32(0.2) * before_a), rtol=1e-6)
    np.testing.assert_allclose(b.data, before_b - np.float32(0.01) * (1 + np.float32(0.1) * before_b), rtol=1e-6)


def test_decoupled_decay_is_airbench_and_independent_of_the_lr(rng, torch):
    """Per step the weights shrink by wd·lr(t)/initial_lr whatever the lr; against torch with airbench's
    groups (weight_decay = wd / group lr) under a LambdaLR of the triangular schedule."""
    for lr in (0.1, 10.0):
        (p,) = params(rng, [(4,)])
        before = p.data.copy()
        p.grad[...] = 0
        optim.SGD([p], lr=lr, weight_decay=0.01, decoupled_weight_decay=True).step()
        np.testing.assert_allclose(p.data, before * np.float32(0.99), rtol=1e-6)
    lr, wd = 0.05, 2e-3
    schedule = S.triangular(lr, 6, 0.3)
    opt = run_both(torch, lambda groups: optim.SGD(groups, lr=lr, momentum=0.85, nesterov=True, weight_decay=wd,
                                                   decoupled_weight_decay=True),
                   lambda tps: torch.optim.SGD([{"params": tps[:2], "lr": lr * 4, "weight_decay": wd * 0.5 / (lr * 4)},
                                                {"params": tps[2:], "lr": lr, "weight_decay": wd / lr}],
                                               lr=lr, momentum=0.85, nesterov=True), params(rng), schedule=schedule)
    assert opt.initial_lr == lr and opt.lr == schedule(6)
    with pytest.raises(ValueError, match="AdamW.*decoupled"):
        optim.AdamW(params(rng), decoupled_weight_decay=True)


def test_group_errors_state_round_trip_and_repr(rng):
    a, b, c = params(rng)
    with pytest.raises(ValueError, match="groups 0 and 1"):
        optim.SGD([{"params": [a, b]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match="lr_mult"):
        optim.SGD([{"params": [a], "lr_mult": -1}], lr=0.1)
    with pytest.raises(ValueError, match="'lr'"):
        optim.SGD([{"params": [a], "lr": 1}], lr=0.1)
    c.requires_grad = False  # frozen: skipped, as without groups
    opt = optim.Adam([{"params": [a], "lr_mult": 64}, {"params": [b, c], "decay_mult": 0}], lr=0.01,
                     weight_decay=0.1, decoupled_weight_decay=True)
    assert opt.params == [a, b]
    assert "groups=[1 × (lr_mult=64, decay_mult=1), 1 × (lr_mult=1, decay_mult=0)]" in repr(opt)
    a.grad[...], b.grad[...] = 1, 1
    opt.step()
    opt.lr = 0.003
    state = json.loads(json.dumps({k: v for k, v in opt.state_dict().items() if k != "state"}))
    fresh = optim.Adam([{"params": [a]}, {"params": [b]}], lr=1.0).load_state_dict(state)
    fresh.load_state_arrays(opt.state_arrays())
    assert fresh.groups == opt.groups and fresh.initial_lr == 0.01 and fresh.decoupled_weight_decay
    assert fresh.group_hyperparameters() == opt.group_hyperparameters()
    with pytest.raises(ValueError, match="sizes"):
        optim.Adam([a, b], lr=1.0).load_state_dict(state)


def test_rules_choose_groups_by_kind_or_name():
    net = small_net()
    groups = optim.param_groups(net, [{"match": "BatchNorm.bias", "lr_mult": 64},
                                      {"match": "*.bias", "decay_mult": 0}, {"match": "Module.gamma"}])
    names = {id(p): n for n, p in net.named_parameters()}
    assert [[names[id(p)] for p in g["params"]] for g in groups] == [
        ["1.beta"], ["0.bias", "4.bias"], ["1.gamma"], ["0.weight", "4.weight"]]
    assert [(g.get("lr_mult"), g.get("decay_mult")) for g in groups] == [(64, 1), (1, 0), (1, 1), (None, None)]
    assert [len(g["params"]) for g in optim.param_groups(net, [{"match": "4.*"}, {"match": "Conv2d"}])] == [2, 2, 2]
    with pytest.raises(ValueError, match="'Linear.gamma' matches no parameter"):
        optim.param_groups(net, [{"match": "Linear.gamma"}])
    with pytest.raises(ValueError, match="unknown keys"):
        optim.param_groups(net, [{"match": "*.bias", "lr": 2}])


def test_run_file_param_groups(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('optimizer = "nesterov"\ndecoupled_weight_decay = true\nloss_reduction = "sum"\n'
                    'schedule = "triangular"\n[[param_groups]]\nmatch = "BatchNorm.bias"\nlr_mult = 64\n')
    values = load_run_file(path)
    assert values["param_groups"] == [{"match": "BatchNorm.bias", "lr_mult": 64}]
    assert values["decoupled_weight_decay"] and values["loss_reduction"] == "sum"
    for bad, message in [("[[param_groups]]\nmatch = \"*.bias\"\nlr_mul = 2\n", "unknown keys.*lr_mul"),
                         ("[[param_groups]]\nmatch = \"*.bias\"\nlr_mult = -2\n", "lr_mult must be"),
                         ("[[param_groups]]\nlr_mult = 2\n", "give match"),
                         ("param_groups = [\"*.bias\"]\n", "not a list of tables")]:
        path.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_run_file(path)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_summed_loss_matches_torch(rng, torch, smoothing):
    s, y = rng.standard_normal((8, 10)).astype(np.float32), rng.integers(0, 10, 8)
    crit = st.nn.SoftmaxCrossEntropy(label_smoothing=smoothing, reduction="sum")
    ts = torch.tensor(s, requires_grad=True)
    ref = torch.nn.CrossEntropyLoss(reduction="sum", label_smoothing=smoothing)(ts, torch.tensor(y))
    ref.backward()
    assert crit(s, y) == pytest.approx(ref.item(), rel=1e-6) and crit.per_sample(crit(s, y), 8) * 8 == crit(s, y)
    np.testing.assert_allclose(crit.backward(), ts.grad.numpy(), rtol=1e-5, atol=1e-7)
    svm, mean = st.nn.MulticlassSVM(reduction="sum"), st.nn.MulticlassSVM()
    assert svm(s, y) == pytest.approx(8 * mean(s, y))
    np.testing.assert_allclose(svm.backward(), 8 * mean.backward(), rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        st.nn.SoftmaxCrossEntropy(reduction="none")


def test_the_trainer_logs_the_per_sample_mean_of_a_summed_loss(rng):
    x, y = rng.standard_normal((6, 16)).astype(np.float32), rng.integers(0, 3, 6)
    losses = []
    for reduction in ("mean", "sum"):
        net = st.nn.Sequential(st.nn.Linear(16, 3, rng=np.random.default_rng(1)))
        trainer = st.train.Trainer(net, st.nn.SoftmaxCrossEntropy(reduction=reduction), optim.SGD(net, lr=0.1))
        losses.append(trainer.train_step(x, y)[0])
        losses.append(trainer.evaluate((x, y))["loss"])
    assert losses[0] == pytest.approx(losses[2], rel=1e-6) and losses[1] != pytest.approx(losses[3], rel=1e-3)


def test_triangular_is_airbench_schedule():
    total = 97
    sched = S.triangular(2.0, total)
    expected = 2.0 * np.interp(np.arange(total + 1), [0, int(total * 0.23), total], [0.2, 1.0, 0.07])
    np.testing.assert_allclose([sched(t) for t in range(total + 1)], expected, rtol=1e-12)
    assert sched(0) == pytest.approx(0.4) and sched(22) == 2.0 and sched(total) == pytest.approx(0.14)
    assert S.from_config(json.loads(json.dumps(sched.to_config()))) == sched
    with pytest.raises(ValueError, match="pct_start"):
        S.triangular(0.1, 10, pct_start=1.0)


def test_data_parallel_adds_the_ranks_summed_gradients():
    """Two ranks with the same part: a mean loss's gradients are averaged, a summed loss's added, so K ranks
    equal one process either way."""
    from striate.distributed.gradients import GradientAverager

    class TwoIdenticalRanks:
        is_root = True

        def allreduce(self, buffer):
            buffer *= 2

    for summed, factor in ((False, 1), (True, 2)):
        p = st.nn.Parameter(np.arange(3, dtype=np.float32))
        p.grad[...] = [1, 2, 3]
        n, loss, *_ = GradientAverager(TwoIdenticalRanks(), [p]).average(4, 8.0, 3, False, summed=summed)
        assert (n, loss) == (8, 16.0)
        np.testing.assert_array_equal(p.grad, factor * np.array([1, 2, 3], np.float32))
