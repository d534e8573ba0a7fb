"""Learning-rate schedules: values against torch.optim.lr_scheduler, configs, the registry, Scheduler."""

import json
import math

import numpy as np
import pytest

import striate as st
from striate import optim
from striate.optim import schedules as S

LR = 0.2


def torch_lrs(torch, make, steps):
    """lr seen at t = 0 … steps−1 by a torch scheduler built with `make(optimizer)`."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=LR)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def ours(schedule, steps):
    return [schedule(t) for t in range(steps)]


@pytest.mark.parametrize(
    ("schedule", "make", "steps"),
    [
        (S.step(LR, 7, 0.5), lambda L, o: L.StepLR(o, step_size=7, gamma=0.5), 40),
        (S.multistep(LR, [5, 12, 30], 0.3), lambda L, o: L.MultiStepLR(o, milestones=[5, 12, 30], gamma=0.3), 40),
        (S.exp(LR, 0.95), lambda L, o: L.ExponentialLR(o, gamma=0.95), 60),
        (S.cosine(LR, 40, min_lr=0.01), lambda L, o: L.CosineAnnealingLR(o, T_max=40, eta_min=0.01), 41),
        (S.cosine(LR, 25), lambda L, o: L.CosineAnnealingLR(o, T_max=25), 26),
        (S.cosine_restarts(LR, 10, mult=2, min_lr=1e-3),
         lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-3), 160),
        (S.cosine_restarts(LR, 7), lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=7), 50),
        (S.poly(LR, 30, power=2.0), lambda L, o: L.PolynomialLR(o, total_iters=30, power=2.0), 45),
        (S.poly(LR, 30), lambda L, o: L.PolynomialLR(o, total_iters=30, power=1.0), 45),
        (S.warmup(S.constant(LR), 8, start=0.1), lambda L, o: L.LinearLR(o, start_factor=0.1, total_iters=8), 20),
        (S.warmup(S.exp(LR, 0.97), 10, start=0.25),
         lambda L, o: L.ChainedScheduler([L.LinearLR(o, start_factor=0.25, total_iters=10), L.ExponentialLR(o, 0.97)]),
         30),
        (S.warmup(S.step(LR, 6, 0.5), 5, start=0.2),
         lambda L, o: L.ChainedScheduler([L.LinearLR(o, start_factor=0.2, total_iters=5), L.StepLR(o, 6, 0.5)]), 25),
    ],
    ids=lambda v: repr(v) if isinstance(v, S.Schedule) else "",
)
def test_matches_torch(schedule, make, steps, torch):
    expected = torch_lrs(torch, lambda o: make(torch.optim.lr_scheduler, o), steps)
    np.testing.assert_allclose(ours(schedule, steps), expected, rtol=1e-6, atol=1e-10)


def test_known_values():
    assert S.constant(0.3)(0) == S.constant(0.3)(10_000) == 0.3
    inv = S.inv(0.1, k=0.5)
    assert [inv(t) for t in (0, 2, 6)] == pytest.approx([0.1, 0.05, 0.025])  # 1/t decay
    caffe = S.inv(0.01, k=1e-4, power=0.75)  # Caffe's lenet_solver: base_lr · (1 + γ·iter)^(−power)
    assert caffe(10_000) == pytest.approx(0.01 * 2 ** -0.75)
    assert S.step(1.0, 10, 0.1)(9) == 1.0 and S.step(1.0, 10, 0.1)(10) == pytest.approx(0.1)
    assert S.multistep(1.0, [3, 5], 0.5)(4) == 0.5 and S.multistep(1.0, [3, 5], 0.5)(5) == 0.25
    assert S.exp(2.0, 0.5)(3) == 0.25
    assert S.poly(1.0, 10, 2)(5) == pytest.approx(0.25) and S.poly(1.0, 10, 2)(50) == 0.0
    cos = S.cosine(1.0, 100, min_lr=0.1)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)
    assert cos(500) == pytest.approx(0.1)  # stays at the floor after max_steps
    sgdr = S.cosine_restarts(1.0, 10, mult=2)
    assert sgdr(10) == 1.0 and sgdr(30) == 1.0 and sgdr(70) == 1.0  # restarts at 10, 10+20, 10+20+40
    assert sgdr(20) == pytest.approx(0.5) and sgdr(9) == pytest.approx((1 + math.cos(math.pi * 0.9)) / 2)
    w = S.warmup(S.cosine(1.0, 100), 10)
    assert w(0) == 0.0
    assert w(5) == pytest.approx(0.5 * S.cosine(1.0, 100)(5))
    assert w(10) == S.cosine(1.0, 100)(10) and w(60) == S.cosine(1.0, 100)(60)
    assert all(w(t) <= w(t + 1) for t in range(9))


ALL = [
    S.constant(0.1), S.step(0.1, 30, 0.1), S.multistep(0.1, [10, 20], 0.5), S.exp(0.1, 0.99), S.inv(0.1, 1e-3, 0.75),
    S.poly(0.1, 100, 0.9), S.cosine(0.1, 100, 1e-4), S.cosine_restarts(0.1, 10, 2, 1e-4),
    S.warmup(S.cosine_restarts(0.1, 10, 2), 5, start=0.1), S.warmup(S.warmup(S.exp(0.1, 0.9), 3), 6),
]


@pytest.mark.parametrize("schedule", ALL, ids=repr)
def test_config_round_trip(schedule):
    config = json.loads(json.dumps(schedule.to_config()))
    rebuilt = S.from_config(config)
    assert type(rebuilt) is type(schedule) and rebuilt == schedule
    assert repr(rebuilt) == repr(schedule) and repr(schedule).startswith(schedule.name + "(")
    assert S.Schedule.from_config(config) == schedule
    ts = [0, 1, 2, 5, 9, 10, 11, 29, 30, 99, 100, 250]
    assert [rebuilt(t) for t in ts] == [schedule(t) for t in ts]
    assert all(isinstance(schedule(t), float) for t in ts)


def test_registry_and_errors():
    assert S.get("cosine", lr=0.1, max_steps=10) == S.cosine(0.1, 10)
    assert S.get("warmup", schedule={"name": "constant", "lr": 0.1}, warmup_steps=4)(2) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="'cosinus'"):
        S.get("cosinus", lr=0.1)
    with pytest.raises(TypeError, match="'step'"):
        S.get("step", lr=0.1, step_size=3, decay=0.1)
    with pytest.raises(ValueError, match="-5"):
        S.step(0.1, -5)
    with pytest.raises(ValueError, match=r"\[20, 10\]|\(20, 10\)"):
        S.multistep(0.1, [20, 10])
    with pytest.raises(ValueError, match="1.5"):
        S.cosine_restarts(0.1, 10, mult=1.5)
    with pytest.raises(ValueError, match="step must be"):
        S.exp(0.1, 0.9)(-1)
    with pytest.raises(TypeError, match="warm-up"):
        S.warmup(0.1, 10)


def test_scale_lr_for_batch():
    assert optim.scale_lr_for_batch(0.1, 256, 1024) == pytest.approx(0.4)
    assert optim.scale_lr_for_batch(0.1, 256, 64) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="batch"):
        optim.scale_lr_for_batch(0.1, 256, 0)


def test_scheduler_drives_the_optimizer(rng):
    p = st.nn.Parameter(np.zeros(3, dtype=np.float32))
    opt = optim.SGD([p], lr=999.0)
    schedule = S.warmup(S.step(0.5, 2, 0.1), 2)
    sched = optim.Scheduler(opt, schedule)
    assert opt.lr == schedule(0) == 0.0
    seen = []
    for _ in range(5):
        p.grad[...] = 1
        before = p.data.copy()
        opt.step()
        seen.append(float(before[0] - p.data[0]))  # the step actually taken = lr used
        sched.step()
    np.testing.assert_allclose(seen, [schedule(t) for t in range(5)], rtol=1e-6)
    assert sched.t == 5 and opt.lr == schedule(5)

    state = json.loads(json.dumps(sched.state_dict()))
    opt2 = optim.SGD([st.nn.Parameter(np.zeros(3, dtype=np.float32))], lr=1.0)
    sched2 = optim.Scheduler(opt2, S.constant(7.0)).load_state_dict(state)
    assert sched2.schedule == schedule and sched2.t == 5 and opt2.lr == schedule(5)
    assert sched2.step() == sched.step() == schedule(6)


def test_the_run_builds_every_schedule_the_option_offers_and_no_other():
    from striate.run import config as cfg
    from striate.run.schedule import POLICIES, make_schedule

    assert tuple(POLICIES) == cfg.BY_NAME["schedule"].choices
    config = {**cfg.defaults("train"), "epochs": 4}
    decays = {name: make_schedule({**config, "schedule": name}, 10)(10) for name in POLICIES}
    assert decays["constant"] == config["lr"] and decays["poly"] < decays["cosine"] < config["lr"]
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):  # not poly for a name nobody defined
        make_schedule({**config, "schedule": "linear"}, 10)
