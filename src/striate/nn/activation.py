"""Activation layers: Sigmoid, Tanh, ReLU, LeakyReLU, PReLU, ELU, GELU (elementwise, any shape) and Maxout (N, D)."""

from __future__ import annotations

import numpy as np

from ..kernels import activation as K
from ..kernels import gelu as G
from . import init as initializers
from .module import Module, Parameter, grad_enabled


class _Elementwise(Module):
    """Base for shape-preserving activations: any float array (N, ...) → same shape and dtype."""

    def _check(self, x) -> None:
        if not isinstance(x, np.ndarray):
            raise self._error(f"expected a NumPy array, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise self._error(f"expected a float32 or float64 array, got dtype {x.dtype}")


class ReLU(_Elementwise):
    """max(x, 0); gradient 0 at x = 0 (as PyTorch). Caches a boolean mask."""

    def forward(self, x):
        self._check(x)
        y, mask = K.relu_forward(x, mask=grad_enabled())
        self._save(mask, y)
        return y

    def backward(self, dy):
        mask = self._saved(dy)
        if not isinstance(mask, np.ndarray):  # after a fused BatchNorm + ReLU forward (nn.norm)
            mask = mask.mask().reshape(dy.shape)
        return K.relu_backward(dy, mask)

    def fused_with(self, bn) -> bool:
        """Whether the last forward ran fused with BatchNorm `bn` (`BatchNorm.forward_fused_relu`)."""
        return getattr(self._cache, "bn_cache", None) is not None and self._cache.bn_cache is bn._cache


class LeakyReLU(_Elementwise):
    """x if x > 0 else negative_slope·x (Maas et al. 2013; PyTorch default slope 0.01)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        self._check(x)
        y, cache = K.leaky_relu_forward(x, self.negative_slope)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return K.leaky_relu_backward(dy, self._saved(dy))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class ELU(_Elementwise):
    """x if x > 0 else α·(exp(x) − 1) (Clevert et al. 2016)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x):
        self._check(x)
        y, cache = K.elu_forward(x, self.alpha)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return K.elu_backward(dy, self._saved(dy))

    def extra_repr(self):
        return f"alpha={self.alpha}"


class GELU(_Elementwise):
    """x·Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016); PyTorch's `nn.GELU(approximate=...)`:
    "none" (default) the exact erf form, "tanh" the approximation x/2·(1 + tanh(√(2/π)(x + 0.044715x³)))."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in G.APPROXIMATIONS:
            raise ValueError(f"GELU: approximate must be one of {', '.join(map(repr, G.APPROXIMATIONS))}, "
                             f"got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        self._check(x)
        y, cache = G.gelu_forward(x, self.approximate)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return G.gelu_backward(dy, self._saved(dy))

    def extra_repr(self):
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class Sigmoid(_Elementwise):
    """1 / (1 + exp(−x)), stable in both tails."""

    def forward(self, x):
        self._check(x)
        y, cache = K.sigmoid_forward(x)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return K.sigmoid_backward(dy, self._saved(dy))


class Tanh(_Elementwise):
    def forward(self, x):
        self._check(x)
        y, cache = K.tanh_forward(x)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return K.tanh_backward(dy, self._saved(dy))


class PReLU(_Elementwise):
    """x if x > 0 else α·x with a learned α (He et al. 2015).

    num_parameters = 1 shares one α; num_parameters = C learns one per channel, where the channel is
    the LAST axis (NHWC images, (N, D) features) — PyTorch's axis 1 after an NCHW transpose.
    The Parameter is named `alpha` (not `weight`) so weight penalties that select parameters named
    `weight` leave it alone (He et al. train α without weight decay).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype=np.float32):
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be ≥ 1, got {num_parameters}")
        if not abs(float(init)) <= float(np.finfo(dtype).max):  # NaN fails too
            raise ValueError(f"PReLU: init must be a finite number in {np.dtype(dtype).name}, got {init!r}")
        # stored as `channels`: an attribute `num_parameters` would shadow Module.num_parameters()
        self.channels = int(num_parameters)
        self.alpha = Parameter(initializers.filled((self.channels,), init, dtype))

    def forward(self, x):
        self._check(x)
        if self.channels > 1:
            self._check_input(x, max(x.ndim, 2), self.channels, "N, ..., C" if x.ndim > 2 else "N, C")
        else:
            self._check_input(x, x.ndim)  # dtype must match α's
        y, cache = K.prelu_forward(x, self.alpha.data)
        self._save(cache, y)
        return y

    def backward(self, dy):
        dx, dalpha = K.prelu_backward(dy, self._saved(dy))
        self.alpha.accumulate(dalpha)
        return dx

    def output_shape(self, input_shape):
        if self.channels > 1:
            return self._input_shape(input_shape, None, self.channels, "N, ..., C", min_ndim=2)
        return super().output_shape(input_shape)

    def extra_repr(self):
        return f"num_parameters={self.channels}"


class Maxout(Module):
    """Maxout units (Goodfellow et al. 2013): x (N, in) → (N, out).

    A linear map to out·pieces values followed by the max over each unit's `pieces` values.
    weight: (in_features, out_features·pieces), bias: (out_features·pieces,); column f·pieces + j is
    piece j of unit f, so `weight.reshape(in, out, pieces)[:, f, j]` reads it. Backward sends each
    unit's gradient only to the piece that won the max. Default init: `xavier` (randn / sqrt(in)):
    maxout does not halve the variance the way ReLU does, so He's factor 2 is not used.
    """

    def __init__(self, in_features: int, out_features: int, pieces: int = 2, bias: bool = True, *,
                 init="xavier", bias_init="zeros", rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if min(in_features, out_features, pieces) < 1:
            raise ValueError(f"Maxout: bad sizes in={in_features} out={out_features} pieces={pieces}")
        self.in_features, self.out_features, self.pieces = int(in_features), int(out_features), int(pieces)
        rng = rng if rng is not None else np.random.default_rng()
        width = self.out_features * self.pieces
        self.weight = Parameter(initializers.get(init)((self.in_features, width), rng, dtype))
        self.bias = Parameter(initializers.get(bias_init)((width,), rng, dtype)) if bias else None

    def forward(self, x):
        self._check_input(x, 2, self.in_features, "N, D")
        y, cache = K.maxout_forward(x, self.weight.data, None if self.bias is None else self.bias.data, self.pieces)
        self._save(cache, y)
        return y

    def backward(self, dy):
        dx, dw, db = K.maxout_backward(dy, self._saved(dy))
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def output_shape(self, input_shape):
        n, _ = self._input_shape(input_shape, 2, self.in_features, "N, D")
        return (n, self.out_features)

    def macs(self, input_shape):
        n, _ = self.output_shape(input_shape)
        return n * self.in_features * self.out_features * self.pieces

    def extra_repr(self):
        s = f"{self.in_features}→{self.out_features}, pieces={self.pieces}"
        return s + ("" if self.bias is not None else ", bias=False")
