"""GELU kernels (Hendrycks & Gimpel 2016), PyTorch's two forms, any shape, dtype following the input.

approximate="none" (PyTorch's default): GELU(x) = x·Φ(x), Φ the standard normal CDF, Φ(x) = erfc(−x/√2)/2;
    GELU'(x) = Φ(x) + x·φ(x), φ(x) = exp(−x²/2)/√(2π). Computed in float64 and rounded to the dtype. With numba
    (`jit.compiled("act")`) the C library's erfc; without, `erfc` below (relative error < 1.2e-7 over the whole
    line, so Φ's left tail keeps its digits where 1 + erf would cancel). The two paths agree within float32
    rounding (not bit-identical).
approximate="tanh": GELU(x) = x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))), in the dtype, with NumPy's SIMD tanh on
    both paths (bit-identical); backward is PyTorch's formula.
`*_forward(x, approximate) -> (out, cache)`, `gelu_backward(dout, cache) -> dx`; the cache is the input.
"""

from __future__ import annotations

import math

import numpy as np

from .activation import _compiled, in_parts

APPROXIMATIONS = ("none", "tanh")
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
         -0.82215223, 0.17087277)
_KAPPA = 0.044715


def erfc(z: np.ndarray) -> np.ndarray:
    """The complementary error function of a float64 array, relative error < 1.2e-7 everywhere (Press et al.,
    Numerical Recipes, `erfcc`: a Chebyshev fit of erfc(z)·exp(z²) in t = 1/(1 + z/2))."""
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = np.full_like(t, _ERFC[-1])
    for c in _ERFC[-2::-1]:  # Horner
        poly *= t
        poly += c
    r = t * np.exp(poly - a * a)
    return np.where(z >= 0, r, 2.0 - r)


def _cdf(v: np.ndarray) -> np.ndarray:
    return 0.5 * erfc(v * -math.sqrt(0.5))


def gelu_forward(x: np.ndarray, approximate: str = "none"):
    out = np.empty_like(x)
    if approximate == "tanh":
        in_parts(_tanh_forward, np.ascontiguousarray(x), out)
        return out, (x, approximate)
    jit = _compiled(x)
    if jit is not None:
        in_parts(jit.gelu_forward, x, out)
    else:
        def part(a, o):
            v = a.astype(np.float64)
            o[...] = v * _cdf(v)

        in_parts(part, np.ascontiguousarray(x), out)
    return out, (x, approximate)


def gelu_backward(dout: np.ndarray, cache) -> np.ndarray:
    x, approximate = cache
    dout, x = np.ascontiguousarray(dout), np.ascontiguousarray(x)
    dx = np.empty_like(dout)
    if approximate == "tanh":
        in_parts(_tanh_backward, dout, x, dx)
        return dx
    jit = _compiled(dout, x)
    if jit is not None and dout.dtype == x.dtype:
        in_parts(jit.gelu_backward, dout, x, dx)
    else:
        def part(d, a, g):
            v = a.astype(np.float64)
            g[...] = d * (_cdf(v) + v * (np.exp(-0.5 * v * v) * (1 / math.sqrt(2 * math.pi))))

        in_parts(part, dout, x, dx)
    return dx


def _inner(a):
    """√(2/π)·(x + κx³) and x² in x's dtype (PyTorch's order of operations)."""
    t = a.dtype.type
    sq = a * a
    return t(math.sqrt(2 / math.pi)) * (a + t(_KAPPA) * (sq * a)), sq


def _tanh_forward(a, o):
    th = np.tanh(_inner(a)[0])
    th += 1
    np.multiply(a.dtype.type(0.5) * a, th, out=o)


def _tanh_backward(d, a, g):
    t = a.dtype.type
    inner, sq = _inner(a)
    th = np.tanh(inner)
    left_derivative = t(0.5) * (1 + th)
    right_derivative = t(0.5) * a * (1 - th * th) * (t(math.sqrt(2 / math.pi)) * (1 + t(3 * _KAPPA) * sq))
    np.multiply(d, left_derivative + right_derivative, out=g)
