"""The elementwise numba kernels behind `kernels/activation.py`, `kernels/gelu.py` and `kernels/dropout.py`
(imported only through `jit.compiled("act")`). Each takes flat (1-D, C-contiguous) parts of its arrays and
writes its outputs in place, so `for_parts` splits one pass over striate's threads, without the GIL.

Constants come in as arguments of the array's dtype (`zero`, `one`, `slope`, ...): a Python literal inside a
float32 loop would promote the arithmetic to float64 and round differently from NumPy. LLVM does not contract
a·b + c into an FMA here (numba leaves fastmath off), so each kernel that runs the same operations as its
NumPy path is bit-identical to it, signed zeros and NaN included; the docstrings say which are not.
"""

from __future__ import annotations

import math

import numba

_opts = {"nogil": True, "cache": True, "boundscheck": False}


@numba.njit(**_opts)
def relu_forward(x, out, mask, zero):
    """out = np.maximum(x, 0) (NaN kept, −0 → +0), mask = x > 0. Bit-identical."""
    for i in range(x.size):
        v = x[i]
        m = v > zero
        mask[i] = m
        out[i] = v if m or v != v else zero


@numba.njit(**_opts)
def relu_forward_nomask(x, out, zero):
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > zero or v != v else zero


@numba.njit(**_opts)
def scale_by_mask(dout, mask, dx, one, other):
    """dx = dout · (one where mask else other): ReLU's backward (1, 0) and LeakyReLU's (1, slope), the
    product NumPy's `dout * mask` / `dout * np.where(mask, 1, slope)` computes. Bit-identical."""
    for i in range(dout.size):
        dx[i] = dout[i] * (one if mask[i] else other)


@numba.njit(**_opts)
def leaky_relu_forward(x, out, mask, one, slope):
    """out = x · (1 where x > 0 else slope), mask = x > 0. Bit-identical."""
    for i in range(x.size):
        v = x[i]
        m = v > 0
        mask[i] = m
        out[i] = v * (one if m else slope)


@numba.njit(**_opts)
def elu_forward(x, out, mask, zero, alpha):
    """out = x where x > 0 else expm1(min(x, 0))·α, mask = x > 0: the C library's expm1 as NumPy's
    (no SIMD expm1 in NumPy), so bit-identical where both call the same libm."""
    for i in range(x.size):
        v = x[i]
        m = v > zero
        mask[i] = m
        t = zero if v >= zero else v  # np.minimum(x, 0): −0 → +0, NaN kept
        out[i] = v if m else math.expm1(t) * alpha


@numba.njit(**_opts)
def elu_backward(dout, out, mask, dx, alpha):
    """dx = dout where mask else dout·(out + α). Bit-identical."""
    for i in range(dout.size):
        d = dout[i]
        dx[i] = d if mask[i] else d * (out[i] + alpha)


@numba.njit(**_opts)
def tanh_backward(dout, out, dx, one):
    """dx = dout · (1 − out²). Bit-identical."""
    for i in range(dout.size):
        o = out[i]
        dx[i] = dout[i] * (one - o * o)


@numba.njit(**_opts)
def sigmoid_forward(x, out, one):
    """out = (1 where x ≥ 0 else e) / (1 + e), e = exp(−|x|): NumPy's formula in one pass, with the C library's
    exp in place of NumPy's SIMD one — within float32 rounding (a few values differ by 1–2 ulp), not
    bit-identical."""
    for i in range(x.size):
        v = x[i]
        e = math.exp(-abs(v))
        out[i] = (one if v >= 0 else e) / (one + e)


@numba.njit(**_opts)
def sigmoid_backward(dout, out, dx, one):
    """dx = dout · out · (1 − out), NumPy's left-to-right order. Bit-identical."""
    for i in range(dout.size):
        o = out[i]
        dx[i] = dout[i] * o * (one - o)


@numba.njit(**_opts)
def gelu_forward(x, out):
    """out = x·Φ(x), Φ(x) = erfc(−x/√2)/2 in float64 (libm's erfc: exact in both tails), rounded to the dtype.
    Within float32 rounding of the NumPy path (whose erfc is a rational approximation)."""
    for i in range(x.size):
        v = float(x[i])
        out[i] = v * (0.5 * math.erfc(-v * 0.7071067811865476))


@numba.njit(**_opts)
def gelu_backward(dout, x, dx):
    """dx = dout · (Φ(x) + x·φ(x)), φ the standard normal density; float64 inside. Within float32 rounding."""
    for i in range(dout.size):
        v = float(x[i])
        cdf = 0.5 * math.erfc(-v * 0.7071067811865476)
        pdf = 0.3989422804014327 * math.exp(-0.5 * v * v)
        dx[i] = dout[i] * (cdf + v * pdf)


@numba.njit(**_opts)
def dropout_forward(x, uniforms, out, p, scale, zero):
    """In one pass: the uniforms become the mask (scale where u ≥ p, else 0), out = x · mask — what
    `dropout_mask` and `x * mask` compute in three passes. Bit-identical."""
    for i in range(x.size):
        m = scale if uniforms[i] >= p else zero
        uniforms[i] = m
        out[i] = x[i] * m

