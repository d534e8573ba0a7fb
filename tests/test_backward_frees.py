"""A backward pass lets go of the activations it used (`Module._saved(dy)` empties the cache slot, as PyTorch
frees saved tensors): after a training step nothing is cached, the peak memory of a step stays that of its
forward, and a second backward without a forward is refused with a clear message."""

import copy
import pickle

import numpy as np
import pytest

import striate as st
from striate import nn
from striate.complexity import cache_bytes

from .test_layer_contract import CASES, IDS


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_empties_every_cache(rng, case):
    _, build, shape, _ = case
    module = build(rng, np.float32)
    y = module(rng.standard_normal(shape).astype(np.float32))
    module.backward(np.ones_like(y))
    assert cache_bytes(module) == 0, module.describe()
    with pytest.raises(RuntimeError, match="without a cached forward pass"):
        module.backward(np.ones_like(y))


def _bn_relu_net(rng):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 6, 3, rng=rng))


def test_fused_batchnorm_relu_lets_go_of_the_shared_cache(rng):
    """The ReLU's mask after a fused BatchNorm + ReLU forward refers to the BatchNorm's cache: the fused
    backward empties both, and the ReLU alone then refuses a second backward."""
    net = _bn_relu_net(rng)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    y = net(x)
    assert net[2].fused_with(net[1])
    net.backward(np.ones_like(y))
    assert cache_bytes(net) == 0
    with pytest.raises(RuntimeError, match="without a cached forward pass"):
        net[2].backward(np.ones((2, 5, 6, 4), np.float32))


def test_a_deep_copys_backward_leaves_the_original_alone(rng):
    """A copy made between forward and backward has its own caches: its backward frees only those."""
    net = _bn_relu_net(rng)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    y = net(x)
    twin = copy.deepcopy(net)
    twin.backward(np.ones_like(y))
    assert cache_bytes(twin) == 0 and cache_bytes(net) > 0
    dx = net.backward(np.ones_like(y))
    twin(x)
    np.testing.assert_array_equal(dx, twin.backward(np.ones_like(y)))


def test_training_steps_repeat_and_match_a_fresh_forward_each_time(rng):
    """forward / backward / step in a loop works as before, and the gradients equal those of a net that
    never ran a backward before (nothing stale survives between steps)."""
    net = _bn_relu_net(rng)
    fresh = copy.deepcopy(net)
    opt = st.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    for _ in range(3):
        opt.zero_grad()
        net.backward(np.ones_like(net(x)))
        opt.step()
    fresh.load_state_dict(net.state_dict())
    net.zero_grad()
    net.backward(np.ones_like(net(x)))
    fresh.backward(np.ones_like(fresh(x)))
    for (name, p), q in zip(net.named_parameters(), fresh.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


def test_a_model_pickles_between_forward_and_backward(rng):
    net = _bn_relu_net(rng)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    y = net(x)
    twin = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(twin.backward(np.ones_like(y)), net.backward(np.ones_like(y)))
    assert cache_bytes(net) == 0
