"""Forward and backward hooks on Module (`nn/hooks.py`): called after each pass with the arrays, removed by their
handle, free when absent, and what Sequential asks before it fuses BatchNorm + ReLU."""

import numpy as np

import striate as st
from striate.nn.containers import _fused_pairs


def net(rng):
    return st.nn.Sequential(st.nn.Linear(6, 8, rng=rng), st.nn.BatchNorm(8), st.nn.ReLU(), st.nn.Linear(8, 3, rng=rng))


def test_hooks_see_each_pass_in_order_and_go_away(rng):
    model = net(rng)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    seen = []
    first = model[0].register_forward_hook(lambda m, a, b: seen.append(("f1", a.shape, b.shape)))
    second = model[0].register_forward_hook(lambda m, a, b: seen.append(("f2", m is model[0])))
    back = model[3].register_backward_hook(lambda m, dy, dx: seen.append(("b", dy.shape, dx.shape)))
    y = model.forward(x)
    model.backward(np.ones_like(y))
    assert seen == [("f1", (5, 6), (5, 8)), ("f2", True), ("b", (5, 3), (5, 8))]
    assert model[0].has_hooks() and not model.has_hooks()  # a module's own hooks, not its children's
    first.remove()
    first.remove()  # idempotent
    seen.clear()
    model.forward(x)
    assert seen == [("f2", True)]
    second.remove()
    back.remove()
    assert not any(m.has_hooks() or "forward" in vars(m) or "backward" in vars(m) for m in model.modules())


def test_no_hook_no_wrapper_and_the_same_result(rng):
    model = net(rng)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    plain = model.forward(x)
    assert type(model[0]).forward is model[0].forward.__func__  # the class's method itself: nothing in between
    with model[2].register_forward_hook(lambda m, a, b: None):
        assert np.array_equal(model.forward(x), plain)
    assert not model[2].has_hooks()


def test_sequential_fuses_batchnorm_relu_only_without_hooks(rng):
    model = net(rng)
    layers = list(model)
    assert _fused_pairs(layers) == {1}
    calls = []
    with layers[2].register_forward_hook(lambda m, a, b: calls.append(b.shape)):
        assert _fused_pairs(layers) == set()
        model.forward(rng.standard_normal((4, 6)).astype(np.float32))
    assert calls == [(4, 8)] and _fused_pairs(layers) == {1}
