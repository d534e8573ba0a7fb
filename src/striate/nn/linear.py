"""Linear (fully connected / affine) layer: y = x @ W + b."""

from __future__ import annotations

import numpy as np

from ..kernels.epilogue import bias_activation_rows
from ..kernels.gemm import matmul, matmul_tn
from . import init as initializers
from .module import Module, Parameter


class Linear(Module):
    """x: (N, in_features) → (N, out_features). weight (in, out), bias (out,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, init="he",
                 bias_init="zeros", rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if min(in_features, out_features) < 1:
            raise ValueError(f"Linear: bad sizes in={in_features} out={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = rng if rng is not None else np.random.default_rng()
        self.weight = Parameter(initializers.get(init)((in_features, out_features), rng, dtype))
        self.bias = Parameter(initializers.get(bias_init)((out_features,), rng, dtype)) if bias else None

    def _effective_weight(self):
        return self.weight.data

    def forward(self, x):
        self._check_input(x, 2, self.in_features, "N, D")
        w = self._effective_weight()
        y = matmul(x, w, None if self.bias is None else self.bias.data)
        self._save((x, w), y)
        return y

    def fused_forward(self, x, w, b, act):
        """act(x @ w + b) with the bias and activation in one pass over the output, for the inference graph
        (`nn.folding`): `w`, `b` the folded weights, `act` as `kernels.epilogue` takes it. Keeps no cache."""
        self._check_input(x, 2, self.in_features, "N, D")
        y = matmul(x, w)
        bias_activation_rows(y, b, act)
        return y

    def _weight_grad(self, dw):
        self.weight.accumulate(dw)

    def backward(self, dy):
        x, w = self._saved(dy)
        if type(self)._weight_grad is Linear._weight_grad:  # not DropConnect's masked gradient
            if self.weight.requires_grad:  # x.T @ dy added into the gradient part by part: no dw-sized temporary
                matmul_tn(x, dy, into=self.weight.grad)
        else:
            self._weight_grad(matmul_tn(x, dy))
        if self.bias is not None:
            self.bias.accumulate(dy.sum(axis=0))
        return matmul(dy, w.T) if self.requires_input_grad else None

    def output_shape(self, input_shape):
        n, _ = self._input_shape(input_shape, 2, self.in_features, "N, D")
        return (n, self.out_features)

    def macs(self, input_shape):
        n, _ = self.output_shape(input_shape)
        return n * self.in_features * self.out_features

    def extra_repr(self):
        return f"{self.in_features}→{self.out_features}" + ("" if self.bias is not None else ", bias=False")
