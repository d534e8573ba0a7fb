"""The shared layer battery: every layer's tests call these. Each asserts something concrete."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import striate as st
from striate.nn.errors import LayerError


def gradients_ok(module, x, tol=1e-5, **kw):
    """Float64 numerical check of the input gradient and every parameter gradient."""
    report = st.gradcheck(module, x, tol=tol, **kw)
    assert report.ok, str(report)
    assert all(t.checked > 0 for t in report.tensors), str(report)
    names = {t.name for t in report.tensors}
    assert {n for n, p in module.named_parameters() if p.requires_grad} <= names
    return report


def float32_in_out(module, x):
    """float32 in → float32 out, and the input gradient is float32 too; the input is not modified."""
    x = x.astype(np.float32)
    before = x.copy()
    y = module(x)
    assert y.dtype == np.float32, f"{module.describe()} returned {y.dtype}"
    dx = module.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    for name, p in module.named_parameters():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, name
    np.testing.assert_array_equal(x, before)
    return y


def output_shape_matches(module, x):
    y = module(x)
    assert tuple(module.output_shape(x.shape)) == y.shape
    return y


def state_dict_round_trip(make):
    """A fresh module loading another's state_dict computes the same outputs."""
    a, b = make(np.random.default_rng(1)), make(np.random.default_rng(2))
    state = a.state_dict()
    for v in state.values():
        assert isinstance(v, np.ndarray)
    b.load_state_dict(state)
    for (na, va), (nb, vb) in zip(sorted(a.state_dict().items()), sorted(b.state_dict().items()), strict=True):
        assert na == nb
        np.testing.assert_array_equal(va, vb)
    with pytest.raises(KeyError):
        b.load_state_dict({**state, "nonexistent.weight": np.zeros(1)})
    floating = [k for k, v in state.items() if np.issubdtype(v.dtype, np.floating)]
    if floating:  # an integer array is never cast silently into a weight, and a refused load changes nothing
        key, before = floating[0], b.state_dict()
        with pytest.raises(ValueError, match=f"'{key}' is int8, the model stores {state[key].dtype}"):
            b.load_state_dict({**{k: v + 1 for k, v in state.items()}, key: state[key].astype(np.int8)})
        for k, v in b.state_dict().items():
            np.testing.assert_array_equal(v, before[k])


def batched_equals_per_sample(module, x, atol=1e-5):
    """In eval mode each sample's output does not depend on the rest of the batch."""
    module.eval()
    with st.no_grad():
        full = module(x)
        parts = np.concatenate([module(x[i:i + 1]) for i in range(x.shape[0])])
    module.train()
    np.testing.assert_allclose(full, parts, atol=atol, rtol=1e-5)


def bad_input_names_layer(module, x, *fragments):
    """A bad input raises LayerError whose message names the layer and each fragment."""
    with pytest.raises(LayerError) as info:
        module(x)
    message = str(info.value)
    assert type(module).__name__ in message, message
    for f in fragments:
        assert f in message, message
    return message


def wrong_dtype_rejected(module, x):
    bad_input_names_layer(module, x.astype(np.int32), "dtype")


def accumulates(module, x):
    """Two backward passes without zero_grad double every parameter gradient."""
    module.zero_grad()
    y = module(x)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(y.dtype)
    module.backward(g)
    first = {n: p.grad.copy() for n, p in module.named_parameters()}
    module(x)
    module.backward(g)
    for n, p in module.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * first[n], rtol=1e-5, atol=1e-6)
    module.zero_grad()
    assert all(not p.grad.any() for p in module.parameters())


def empty_batch_ok(module, x, *, train_raises=False):
    """An empty batch (N = 0) passes like PyTorch's: in eval and train mode, and inside no_grad, forward
    gives an empty output of the right shape and dtype; backward gives an empty dx of x's shape and dtype,
    adds nothing to parameter gradients and changes no parameter or buffer. `train_raises`: training mode
    refuses N = 0 with a LayerError instead (BatchNorm needs more than one value per channel)."""
    empty = x[:0]
    expected = tuple(module.output_shape(empty.shape))
    for training in (False, True):
        module.train(training)
        state = module.state_dict()
        if training and train_raises:
            with pytest.raises(LayerError, match="more than one value per channel"):
                module(empty)
            continue
        for p in module.parameters():
            p.grad.fill(0.5)
        y = module(empty)
        assert y.shape == expected and y.dtype == x.dtype, f"{module.describe()}: {y.shape} {y.dtype}"
        dx = module.backward(np.zeros(y.shape, y.dtype))
        assert dx.shape == empty.shape and dx.dtype == x.dtype, f"{module.describe()}: dx {dx.shape} {dx.dtype}"
        assert all((p.grad == 0.5).all() for p in module.parameters()), module.describe()
        with st.no_grad():
            assert module(empty).shape == expected
        for k, v in module.state_dict().items():
            np.testing.assert_array_equal(v, state[k], err_msg=k)
    module.train()
    module.zero_grad()


def wrong_dy_rejected(module, x):
    """backward refuses a dy unlike the last forward's output (shape, dtype, not an array) with a LayerError
    naming the layer and the expected shape; nothing accumulates, and a correct dy still works after."""
    y = module(x)
    module.zero_grad()
    other = np.float64 if y.dtype == np.float32 else np.float32
    bad = [(np.ones(y.shape[:-1] + (y.shape[-1] + 1,), y.dtype), f"expected dy {y.shape}"),
           (np.ones((y.shape[0] + 1,) + y.shape[1:], y.dtype), f"got {(y.shape[0] + 1,) + y.shape[1:]}"),
           (np.ones(y.shape, other), f"expected dy of dtype {y.dtype}"),
           (np.ones(y.shape, np.int64), "got int64"),
           (y.tolist(), "NumPy array")]
    for dy, fragment in bad:
        with pytest.raises(LayerError) as info:
            module.backward(dy)
        message = str(info.value)
        assert type(module).__name__ in message and fragment in message, message
        assert "the output of the last forward" in message or fragment == "NumPy array", message
    assert all(not p.grad.any() for p in module.parameters()), module.describe()
    dx = module.backward(np.ones_like(y))
    assert dx.shape == x.shape


def repr_ok(module, *fragments):
    text = repr(module)
    for f in fragments:
        assert f in text, text
    return text


def deepcopy_independent(module):
    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.data += 1
    return clone


# ----- PyTorch layout helpers -----------------------------------------------------------------
def nchw(x):
    """NHWC NumPy → NCHW torch tensor (float32, requires grad)."""
    torch = pytest.importorskip("torch")
    return torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)


def nhwc(t):
    """NCHW torch tensor → NHWC NumPy."""
    return t.detach().numpy().transpose(0, 2, 3, 1)


def conv_weight_to_torch(w):
    """(KH, KW, C_in, C_out) → (C_out, C_in, KH, KW)."""
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


class Doubled(st.nn.Module):
    """A faulty container for the gradient checkers: doubles its child's output but forgets the factor in
    backward."""

    def __init__(self, child):
        super().__init__()
        self.child = child

    def forward(self, x):
        return 2 * self.child.forward(x)

    def backward(self, dy):
        return self.child.backward(dy)
