"""The elementwise numba kernels behind `kernels/activation.py`, `kernels/gelu.py` and `kernels/dropout.py`
(imported only through `jit.compiled("act")`). Each takes flat (1-D, C-contiguous) parts of its arrays and
writes its outputs in place, so `for_parts` splits one pass over striate's threads, without the GIL.

Constants come in as arguments of the array's dtype (`zero`, `one`, `slope`, ...): a Python literal inside a
float32 loop would promote the arithmetic to float64 and round differently from NumPy. LLVM does not contract
a·b + c into an FMA here (numba leaves fastmath off), so each kernel that runs the same operations as its
NumPy path is bit-identical to it, signed zeros and NaN included; the docstrings say which are not. The
float32 GELU kernels are the exception: their own float32 constants, FMA contraction on (see `_vec`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

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


# ----- GELU in float32, vectorized ------------------------------------------------------------------------
# libm's erfc is scalar (one element at a time); this form is plain float32 arithmetic that LLVM turns into
# 8-wide AVX2 loops. Q(a) = Φ(−a) = t·R(t)·exp(−a²/2) for a = |x| ≥ 0, t = 1/(1 + 0.3a), R a degree-9
# polynomial: a least-squares fit (weight 1/R) of R = Q·exp(a²/2)/t on t ∈ [1/5.5, 1] (a ≤ 15; beyond, Q
# underflows float32), 1.2e-8 relative in float64, 1.6e-7 in float32.
_f = np.float32
_R = tuple(_f(c) for c in (0.11968767642974854, 0.11955110728740692, 0.11042050272226334, 0.07746529579162598,
                           0.09900493174791336, -0.08505062013864517, 0.1989312469959259, -0.23385412991046906,
                           0.1149522066116333, -0.021108219400048256))
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7, _R8, _R9 = _R
# exp(w) on |w| ≤ ln2/2: Cephes `expf` (1 + w + w²·P(w), ~1 ulp); Cody–Waite ln 2 = HI + LO, HI with 16 bits
_E2, _E3, _E4, _E5, _E6, _E7 = (_f(c) for c in (5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2,
                                                 8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4))
_ZERO, _ONE, _HALF, _K, _AMAX = _f(0), _f(1), _f(0.5), _f(0.3), _f(15)
_SPLIT, _ROUND = _f(2 ** 15), _f(1.5 * 2 ** 23)  # (a + SPLIT) − SPLIT keeps 8 fraction bits; ROUND: nearest int
_LOG2E, _LN2HI, _LN2LO = _f(1.4426950408889634), _f(0.693145751953125), _f(1.4286067653302603e-06)
_INV_SQRT_2PI, _2M64 = _f(0.3989422804014327), _f(2.0 ** -64)
_vec = {**_opts, "fastmath": {"contract"}, "error_model": "numpy"}  # FMA allowed (not bit-identical to NumPy
# anyway); error_model "numpy": no zero-division check in the loop, which would keep LLVM from vectorizing it


@numba.njit(inline="always", **_vec)
def _normal_tail(x):
    """(m, s) of a float32 x, in float32: exp(−x²/2) = s·2⁻⁶⁴ and Φ(−|x|) = m·s·2⁻⁶⁴, each within ~5 ulp (kept
    as products so that x·Φ multiplies x in before Φ turns subnormal, below −13; s is never subnormal). The
    square in the exponent is kept exact (a = ah + al, ah with 12 bits so ah² is exact): rounding a² would cost
    up to a²·2⁻²⁴ relative."""
    a = abs(x)
    a = a if a < _AMAX else _AMAX  # NaN → AMAX: x's NaN still reaches the output through the product with x
    t = _ONE / (_ONE + _K * a)
    r = ((((_R9 * t + _R8) * t + _R7) * t + _R6) * t + _R5) * t + _R4
    r = (((r * t + _R3) * t + _R2) * t + _R1) * t + _R0
    ah = (a + _SPLIT) - _SPLIT
    al = a - ah
    h = -(ah * ah) * _HALF  # exact
    lo = -(al * (a + ah)) * _HALF
    n = ((h + lo) * _LOG2E + _ROUND) - _ROUND
    w = ((h - n * _LN2HI) - n * _LN2LO) + lo  # h − n·HI is exact
    p = ((((_E7 * w + _E6) * w + _E5) * w + _E4) * w + _E3) * w + _E2
    e = p * (w * w) + w + _ONE
    # 2ⁿ⁺⁶⁴ from its bits: n reaches −163 (2ⁿ alone would be subnormal), and n ≤ 0
    m = t * r if a < _AMAX else _ZERO  # Φ(−15) = 4e−51: 0, and GELU(−inf) = −inf·0 = NaN, as in PyTorch
    return m, e * np.int32((np.int32(n) + 191) << 23).view(np.float32)


@numba.njit(**_vec)
def gelu_forward_f32(x, out):
    """out = x·Φ(x) of float32 arrays, Φ from `_normal_tail` (x·Φ(x) = x − x·Φ(−x) for x > 0): within 6 ulp
    of the exact value, under 1 ulp for x > 2 (PyTorch's float32 GELU: ~50 ulp near 0, none below x ≈ −5)."""
    for i in range(x.size):
        v = x[i]
        m, s = _normal_tail(v)
        c = ((v * m) * s) * _2M64  # x·Φ(−|x|)
        out[i] = (v - c if c < v else v) if v > 0 else c  # x − x·Φ(−x) (c < x/2); x = +inf: c = inf


@numba.njit(**_vec)
def gelu_backward_f32(dout, x, dx):
    """dx = dout · (Φ(x) + x·φ(x)) of float32 arrays, φ(x) = exp(−x²/2)/√(2π): within a few ulp of the larger
    of the two terms."""
    for i in range(x.size):
        v = x[i]
        m, s = _normal_tail(v)
        g = s * _2M64
        cdf = _ONE - m * g if v > 0 else m * g
        dx[i] = dout[i] * (cdf + v * (g * _INV_SQRT_2PI))


@numba.njit(**_opts)
def dropout_forward(x, uniforms, out, p, scale, zero):
    """In one pass: the uniforms become the mask (scale where u ≥ p, else 0), out = x · mask — what
    `dropout_mask` and `x * mask` compute in three passes. Bit-identical."""
    for i in range(x.size):
        m = scale if uniforms[i] >= p else zero
        uniforms[i] = m
        out[i] = x[i] * m

