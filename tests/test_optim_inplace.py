"""The optimizers' in-place updates (intermediate products in reusable scratch arrays, `Optimizer._scratch`) are
bit-identical to the plain NumPy expressions they replaced, and allocate nothing parameter-sized per step."""

import math
import tracemalloc

import numpy as np
import pytest

import striate as st
from striate import optim

from .test_optim import CASES, IDS


def _decayed(p, g, wd):
    if wd == 0:
        return g
    out = p.data * p.dtype.type(wd)
    out += g
    return out


def _sgd(o, p, g, state):
    dt = p.dtype.type
    g = _decayed(p, g, o.weight_decay)
    if o.momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.copy()
        else:
            buf *= dt(o.momentum)
            if o.dampening == 0:
                buf += g
            else:
                buf += dt(1 - o.dampening) * g
        g = g + dt(o.momentum) * buf if o.nesterov else buf
    p.data -= dt(o.lr) * g


def _adagrad(o, p, g, state):
    dt = p.dtype.type
    g = _decayed(p, g, o.weight_decay)
    s = state.setdefault("sum", np.zeros_like(p.data))
    s += g * g
    denom = np.sqrt(s)
    denom += dt(o.eps)
    np.divide(g, denom, out=denom)
    denom *= dt(o.lr / (1 + (o.step_count - 1) * o.lr_decay))
    p.data -= denom


def _rmsprop(o, p, g, state):
    dt = p.dtype.type
    g = _decayed(p, g, o.weight_decay)
    v = state.setdefault("square_avg", np.zeros_like(p.data))
    v *= dt(o.alpha)
    v += dt(1 - o.alpha) * g * g
    if o.centered:
        m = state.setdefault("grad_avg", np.zeros_like(p.data))
        m += dt(1 - o.alpha) * (g - m)
        denom = v - m * m
        np.sqrt(denom, out=denom)
    else:
        denom = np.sqrt(v)
    denom += dt(o.eps)
    np.divide(g, denom, out=denom)
    if o.momentum > 0:
        buf = state.setdefault("momentum_buffer", np.zeros_like(p.data))
        buf *= dt(o.momentum)
        buf += denom
        p.data -= dt(o.lr) * buf
    else:
        denom *= dt(o.lr)
        p.data -= denom


def _adam(o, p, g, state):
    dt = p.dtype.type
    beta1, beta2 = o.betas
    if o._decoupled:
        if o.weight_decay != 0:
            p.data *= dt(1 - o.lr * o.weight_decay)
    else:
        g = _decayed(p, g, o.weight_decay)
    m = state.setdefault("exp_avg", np.zeros_like(p.data))
    v = state.setdefault("exp_avg_sq", np.zeros_like(p.data))
    m += dt(1 - beta1) * (g - m)
    v *= dt(beta2)
    v += dt(1 - beta2) * g * g
    if o.amsgrad:
        vmax = state.setdefault("max_exp_avg_sq", np.zeros_like(p.data))
        np.maximum(vmax, v, out=vmax)
        v = vmax
    t = o.step_count
    denom = np.sqrt(v)
    denom /= dt(math.sqrt(1 - beta2**t))
    denom += dt(o.eps)
    np.divide(m, denom, out=denom)
    denom *= dt(o.lr / (1 - beta1**t))
    p.data -= denom


PLAIN = {"SGD": _sgd, "AdaGrad": _adagrad, "RMSProp": _rmsprop, "Adam": _adam, "AdamW": _adam}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "tname", "kw"), CASES, ids=IDS)
def test_bit_identical_to_the_plain_expressions(name, tname, kw, dtype):
    rng = np.random.default_rng(5)
    shapes = [(5, 4), (7,), (3, 3, 2, 4), (0, 3)]
    ours = [st.nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    plain = [st.nn.Parameter(p.data.copy()) for p in ours]
    opt, ref = getattr(optim, name)(ours, **kw), getattr(optim, name)(plain, **kw)
    datas = [p.data for p in ours]
    for step in range(25):
        ref.step_count += 1
        for i, (p, q) in enumerate(zip(ours, plain, strict=True)):
            p.grad[...] = q.grad[...] = rng.standard_normal(p.shape).astype(dtype) * dtype(1 + step % 3)
            PLAIN[name](ref, q, q.grad, ref.state[i])
        grads = [p.grad.copy() for p in ours]
        opt.step()
        for p, q, g in zip(ours, plain, grads, strict=True):
            np.testing.assert_array_equal(p.data, q.data)
            np.testing.assert_array_equal(p.grad, g)  # the gradient is read, never written
    assert all(p.data is d for p, d in zip(ours, datas, strict=True))
    for i, s in ref.state.items():
        assert sorted(s) == sorted(opt.state[i])
        for k, v in s.items():
            np.testing.assert_array_equal(opt.state[i][k], v)


@pytest.mark.parametrize(("name", "tname", "kw"), CASES, ids=IDS)
def test_a_step_allocates_one_scratch_per_slot(name, tname, kw):
    """After the first step (state made), a step's peak of new memory is at most one array of the largest
    parameter's size per scratch slot (the products; with weight decay also the decayed gradient), however
    many parameters there are, and nothing stays allocated after the step."""
    rng = np.random.default_rng(6)
    params = [st.nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(512, 512), (300,), (400, 500)]]
    opt = getattr(optim, name)(params, **kw)
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape).astype(np.float32)
    opt.step()
    tracemalloc.start()
    try:
        opt.step()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    slots = 2 if kw.get("weight_decay") and name != "AdamW" else 1
    assert peak < slots * params[0].data.nbytes + (64 << 10), peak
    assert current < 64 << 10, current
