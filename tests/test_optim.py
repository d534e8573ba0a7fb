"""Optimizers against torch.optim step for step; state round trips; clipping; max-norm; EMA."""

import json

import numpy as np
import pytest

import striate as st
from striate import optim

SHAPES = [(5, 4), (7,), (3, 3, 2, 4)]
STEPS = 120

CASES = [
    ("SGD", "SGD", dict(lr=0.05)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
    ("SGD", "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=1e-3)),
    ("AdaGrad", "Adagrad", dict(lr=0.1)),
    ("AdaGrad", "Adagrad", dict(lr=0.1, weight_decay=1e-2, lr_decay=1e-2)),
    ("RMSProp", "RMSprop", dict(lr=0.01)),
    ("RMSProp", "RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9, weight_decay=1e-2)),
    ("RMSProp", "RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adam", "Adam", dict(lr=1e-2)),
    ("Adam", "Adam", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2)),
    ("Adam", "Adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-3)),
    ("AdamW", "AdamW", dict(lr=1e-2)),
    ("AdamW", "AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, _, kw in CASES]


def make_params(rng, shapes=SHAPES):
    return [st.nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]


def torch_twins(torch, params):
    return [torch.tensor(p.data.copy(), requires_grad=True) for p in params]


def assert_same(params, tparams, rtol=1e-5, atol=1e-6):
    for p, tp in zip(params, tparams, strict=True):
        assert p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize(("name", "tname", "kw"), CASES, ids=IDS)
def test_random_gradients_match_torch(name, tname, kw, torch):
    rng = np.random.default_rng(1)
    params = make_params(rng)
    tparams = torch_twins(torch, params)
    opt = getattr(optim, name)(params, **kw)
    topt = getattr(torch.optim, tname)(tparams, **kw)
    for t in range(STEPS):
        for p, tp in zip(params, tparams, strict=True):
            g = rng.standard_normal(p.shape).astype(np.float32) * np.float32(1 + t % 3)
            p.grad[...] = g
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        if t % 10 == 0:
            assert_same(params, tparams)
    assert opt.step_count == STEPS
    assert_same(params, tparams)
    for i, s in opt.state.items():
        for arr in s.values():
            assert arr.dtype == np.float32 and arr.shape == params[i].shape


@pytest.mark.parametrize(("name", "tname", "kw"), CASES, ids=IDS)
def test_quadratic_objective_matches_torch(name, tname, kw, torch):
    """f(p) = ½ Σ a·(p − c)² + ξₜ·p (a stochastic quadratic): gradients come from each side's own trajectory.

    The noise ξₜ (identical on both sides) keeps RMSProp/Adam away from the noiseless optimum, where
    g/√v is ill-conditioned and torch's fused multiply-adds (1-ulp differences) get amplified chaotically."""
    rng = np.random.default_rng(2)
    params = make_params(rng)
    tparams = torch_twins(torch, params)
    curv = [rng.uniform(0.5, 2.0, p.shape).astype(np.float32) for p in params]
    centre = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    opt = getattr(optim, name)(params, **kw)
    topt = getattr(torch.optim, tname)(tparams, **kw)

    def loss(ps):
        return sum(float(np.sum(a * (p.data - c) ** 2)) / 2 for p, a, c in zip(ps, curv, centre, strict=True))

    start = loss(params)
    for _ in range(STEPS):
        opt.zero_grad()
        topt.zero_grad()
        for p, tp, a, c in zip(params, tparams, curv, centre, strict=True):
            xi = rng.standard_normal(p.shape).astype(np.float32) * np.float32(0.1)
            p.accumulate(a * (p.data - c) + xi)
            ((torch.tensor(a) * (tp - torch.tensor(c)) ** 2).sum() / 2 + (tp * torch.tensor(xi)).sum()).backward()
        opt.step()
        topt.step()
    assert_same(params, tparams, rtol=1e-5, atol=1e-5)
    assert loss(params) < start


@pytest.mark.parametrize(("name", "tname", "kw"), CASES[1::2], ids=IDS[1::2])
def test_state_dict_round_trip_continues_identically(name, tname, kw):
    rng = np.random.default_rng(3)
    params = make_params(rng)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(40)]
    opt = getattr(optim, name)(params, **kw)

    def run(o, ps, gs):
        for step_grads in gs:
            for p, g in zip(ps, step_grads, strict=True):
                p.grad[...] = g
            o.step()

    run(opt, params, grads[:20])
    saved_params = [p.data.copy() for p in params]
    sd = opt.state_dict()
    # the checkpoint way: JSON for the rest, flat arrays (safetensors-ready) for the state
    meta = json.loads(json.dumps({k: v for k, v in sd.items() if k != "state"}))
    arrays = opt.state_arrays()
    assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays.values())
    run(opt, params, grads[20:])

    clones = [st.nn.Parameter(a.copy()) for a in saved_params]
    fresh = getattr(optim, name)(clones, lr=123.0)  # hyperparameters come from the checkpoint
    fresh.load_state_dict(meta).load_state_arrays(arrays)
    assert fresh.lr == kw["lr"] and fresh.step_count == 20
    run(fresh, clones, grads[20:])
    for p, c in zip(params, clones, strict=True):
        np.testing.assert_array_equal(p.data, c.data)

    # nested state_dict straight back in gives the same
    again = getattr(optim, name)([st.nn.Parameter(a.copy()) for a in saved_params], **kw)
    again.load_state_dict(sd)
    run(again, again.params, grads[20:])
    for p, c in zip(params, again.params, strict=True):
        np.testing.assert_array_equal(p.data, c.data)


def test_load_state_dict_rejects_mismatches(rng):
    params = make_params(rng)
    opt = optim.Adam(params)
    for p in params:
        p.grad[...] = 1
    opt.step()
    with pytest.raises(ValueError, match="'Adam'"):
        optim.SGD(params, lr=0.1).load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="shape"):
        optim.Adam(params[::-1]).load_state_dict(opt.state_dict())
    with pytest.raises(KeyError, match="indices"):
        optim.Adam(params[:1]).load_state_dict(opt.state_dict())
    with pytest.raises(KeyError, match="bad key"):
        optim.Adam(params).load_state_arrays({"exp_avg": np.zeros(3)})


def test_lr_attribute_takes_effect(rng):
    params = make_params(rng, [(4, 3)])
    opt = optim.SGD(params, lr=0.1)
    before = params[0].data.copy()
    params[0].grad[...] = 1
    opt.lr = 0.5
    opt.step()
    np.testing.assert_allclose(params[0].data, before - np.float32(0.5), rtol=1e-6)
    assert opt.hyperparameters["lr"] == 0.5
    opt.lr = 0.0
    opt.step()
    np.testing.assert_allclose(params[0].data, before - np.float32(0.5), rtol=1e-6)


@pytest.mark.parametrize("name", ["SGD", "AdaGrad", "RMSProp", "Adam", "AdamW"])
def test_float32_preserved_and_in_place(name, rng):
    params = make_params(rng)
    kw = dict(lr=0.01, weight_decay=0.1) | (dict(momentum=0.9) if name in ("SGD", "RMSProp") else {})
    opt = getattr(optim, name)(params, **kw)
    ids = [id(p.data) for p in params]
    for _ in range(3):
        for p in params:
            p.grad[...] = rng.standard_normal(p.shape).astype(np.float32)
        opt.step()
    assert [id(p.data) for p in params] == ids
    assert all(p.data.dtype == np.float32 and p.grad.dtype == np.float32 for p in params)
    assert all(a.dtype == np.float32 for a in opt.state_arrays().values())
    assert json.loads(json.dumps(opt.hyperparameters)) == opt.hyperparameters


def test_module_params_and_frozen_skipped(rng):
    net = st.nn.Sequential(st.nn.Linear(4, 3, rng=rng), st.nn.Linear(3, 2, rng=rng))
    net._modules["0"].bias.requires_grad = False
    opt = optim.SGD(net, lr=0.1)
    assert len(opt.params) == 3
    frozen = net._modules["0"].bias
    frozen.grad[...] = 1
    before = frozen.data.copy()
    for p in opt.params:
        p.grad[...] = 1
    opt.step()
    np.testing.assert_array_equal(frozen.data, before)
    opt.zero_grad()
    assert all(not p.grad.any() for p in opt.params)


def test_bad_arguments_are_quoted(rng):
    params = make_params(rng)
    with pytest.raises(ValueError, match="-0.1"):
        optim.SGD(params, lr=-0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(params, betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="no trainable"):
        optim.Adam([])
    with pytest.raises(TypeError, match="Parameters"):
        optim.SGD([np.zeros(3)], lr=0.1)


def test_clip_grad_norm_matches_torch(rng, torch):
    for max_norm, norm_type in [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, float("inf"))]:
        params = make_params(rng)
        tparams = torch_twins(torch, params)
        for p, tp in zip(params, tparams, strict=True):
            p.grad[...] = rng.standard_normal(p.shape).astype(np.float32)
            tp.grad = torch.tensor(p.grad.copy())
        total = optim.clip_grad_norm(params, max_norm, norm_type=norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
        assert total == pytest.approx(float(ttotal), rel=1e-5)
        for p, tp in zip(params, tparams, strict=True):
            assert p.grad.dtype == np.float32
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-5, atol=1e-7)
        after = np.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in params))
        if norm_type == 2.0:
            assert after <= max_norm * (1 + 1e-5)


def test_max_norm_constraint(rng):
    lin = st.nn.Linear(6, 5, rng=rng)
    conv = st.nn.Conv2d(3, 4, 3, rng=rng)
    lin.weight.data[...] = rng.standard_normal((6, 5)).astype(np.float32) * 3
    lin.weight.data[:, 0] = 0.01  # already within the ball: left alone
    lin.bias.data[...] = 10
    conv.weight.data[...] = rng.standard_normal(conv.weight.shape).astype(np.float32) * 3
    w_before, cw_before = lin.weight.data.copy(), conv.weight.data.copy()
    c = 1.5
    constraint = optim.MaxNorm(c)
    assert constraint.apply(lin) == 1 and constraint.apply(conv) == 1
    col_norms = np.linalg.norm(lin.weight.data, axis=0)
    assert np.all(col_norms <= c * (1 + 1e-5))
    np.testing.assert_allclose(col_norms[1:], c, rtol=1e-5)  # the big ones sit on the sphere
    np.testing.assert_array_equal(lin.weight.data[:, 0], w_before[:, 0])
    np.testing.assert_array_equal(lin.bias.data, 10)  # biases untouched
    # direction preserved
    np.testing.assert_allclose(lin.weight.data[:, 1:] / col_norms[1:], w_before[:, 1:] / np.linalg.norm(
        w_before[:, 1:], axis=0), rtol=1e-5)
    cw = conv.weight.data
    assert cw.dtype == np.float32
    per_out = np.linalg.norm(cw.reshape(-1, cw.shape[-1]), axis=0)
    np.testing.assert_allclose(per_out, np.minimum(c, np.linalg.norm(cw_before.reshape(-1, 4), axis=0)), rtol=1e-5)


def test_ema_matches_formula_and_torch(rng, torch):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    lin = st.nn.Linear(4, 3, rng=rng)
    tlin = torch.nn.Linear(4, 3)
    decay = 0.9
    ema = optim.EMA(lin, decay=decay)
    tema = AveragedModel(tlin, multi_avg_fn=get_ema_multi_avg_fn(decay))
    mean = optim.EMA(lin, decay=None)
    history = []
    expected = None
    for t in range(30):
        lin.weight.data[...] = rng.standard_normal((4, 3)).astype(np.float32)
        lin.bias.data[...] = rng.standard_normal(3).astype(np.float32)
        history.append(lin.weight.data.copy())
        with torch.no_grad():
            tlin.weight.copy_(torch.tensor(lin.weight.data.T))
            tlin.bias.copy_(torch.tensor(lin.bias.data))
        ema.update()
        mean.update()
        tema.update_parameters(tlin)
        w = history[-1].astype(np.float64)
        expected = w if t == 0 else decay * expected + (1 - decay) * w
    assert ema.shadow[0].dtype == np.float32
    np.testing.assert_allclose(ema.shadow[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ema.shadow[0], tema.module.weight.detach().numpy().T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ema.shadow[1], tema.module.bias.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean.shadow[0], np.mean(history, axis=0), rtol=1e-5, atol=1e-6)

    # swap in for evaluation and back; the parameter arrays are the same objects
    training = lin.weight.data.copy()
    ident = id(lin.weight.data)
    with ema.swapped():
        np.testing.assert_allclose(lin.weight.data, expected, rtol=1e-5, atol=1e-6)
        with pytest.raises(RuntimeError, match="swap"):
            ema.update()
    np.testing.assert_array_equal(lin.weight.data, training)
    assert id(lin.weight.data) == ident

    # state round trip
    sd = ema.state_dict()
    other = optim.EMA(st.nn.Linear(4, 3, rng=rng), decay=0.5).load_state_dict(
        json.loads(json.dumps({k: v for k, v in sd.items() if k != "shadow"})) | {"shadow": ema.state_arrays()})
    assert other.decay == decay and other.num_updates == 30
    for a, b in zip(other.shadow, ema.shadow, strict=True):
        np.testing.assert_array_equal(a, b)
    ema.copy_to()
    np.testing.assert_allclose(lin.weight.data, expected, rtol=1e-5, atol=1e-6)
