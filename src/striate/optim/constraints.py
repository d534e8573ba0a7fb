"""Gradient clipping and the max-norm weight constraint (the L1/L2 penalties live in st.nn.losses)."""

from __future__ import annotations

import math

import numpy as np

from ..nn.module import Module, Parameter
from .groups import _collect


def clip_grad_norm(params, max_norm: float, norm_type: float = 2.0, eps: float = 1e-6) -> float:
    """Rescale the gradients of `params` (a Module or Parameters) in place so that their joint
    `norm_type`-norm is at most `max_norm`; return the norm measured before clipping.

    As torch.nn.utils.clip_grad_norm_: coef = max_norm / (total + eps), applied when < 1.
    `norm_type` may be any p ≥ 1 or `inf`.
    """
    if not (max_norm >= 0):
        raise ValueError(f"clip_grad_norm: max_norm must be non-negative, got {max_norm!r}")
    norm_type = float(norm_type)
    if not (norm_type >= 1):
        raise ValueError(f"clip_grad_norm: norm_type must be >= 1 or inf, got {norm_type!r}")
    grads = [p.grad for p in _collect(params)]
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        per = np.array([np.linalg.norm(g.ravel(), ord=norm_type) for g in grads], dtype=np.float64)
        total = float(np.linalg.norm(per, ord=norm_type))
    coef = max_norm / (total + eps)
    if coef < 1:
        for g in grads:
            g *= g.dtype.type(coef)
    return total


def max_norm(w: np.ndarray, c: float, eps: float = 1e-7) -> np.ndarray:
    """Rescale, in place, each unit's incoming weight vector of `w` to ‖·‖₂ ≤ c and return `w`.

    The unit is the LAST axis (striate layout): Linear (in, out) → each column; Conv2d (KH, KW, Cin, Cout)
    → each output channel over the first three axes. Vectors already within the ball are untouched.
    """
    axes = tuple(range(w.ndim - 1))
    norms = np.sqrt(np.sum(w * w, axis=axes, keepdims=True))
    scale = np.where(norms > c, w.dtype.type(c) / (norms + w.dtype.type(eps)), w.dtype.type(1))
    w *= scale.astype(w.dtype, copy=False)
    return w


class MaxNorm:
    """Max-norm constraint (Srivastava et al. 2014, with dropout): after each update call
    `constraint.apply(model)`; every weight with 2 or more axes gets `max_norm(w, c)`; biases and other
    vectors are left alone. Returns the number of parameters it constrained."""

    def __init__(self, c: float, eps: float = 1e-7):
        if not (c > 0):
            raise ValueError(f"MaxNorm: c must be positive, got {c!r}")
        self.c, self.eps = float(c), float(eps)

    def apply(self, model) -> int:
        if isinstance(model, Module):
            params = list(model.parameters())
        elif isinstance(model, Parameter):
            params = [model]
        else:
            params = list(model)
        count = 0
        for p in params:
            if p.data.ndim >= 2:
                max_norm(p.data, self.c, self.eps)
                count += 1
        return count

    __call__ = apply

    def to_config(self) -> dict:
        return {"name": "max_norm", "c": self.c, "eps": self.eps}

    def __repr__(self) -> str:
        return f"MaxNorm(c={self.c})"
