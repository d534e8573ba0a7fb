"""Activation kernels: elementwise non-linearities (any shape) and maxout (N, D).

Each is `*_forward(x, ...) -> (out, cache)` and `*_backward(dout, cache) -> dx` (or a tuple with
parameter gradients). Gradients at the kink x = 0 follow PyTorch: the x ≤ 0 branch is taken there
(ReLU'(0) = 0, LeakyReLU'(0) = slope, PReLU'(0) = α, ELU'(0) = α). Dtype follows the input.

Contiguous float32/float64 arrays go in one pass per thread: with numba (`jit.compiled("act")`) through the
compiled loops of `numba_act.py` (bit-identical to the NumPy expressions below, except sigmoid's forward:
the C library's exp, within float32 rounding), else through the same NumPy ufuncs on each part. Tanh's
forward stays NumPy's ufunc on both paths (NumPy's SIMD tanh is ~7× the C library's scalar one that numba
calls); other layouts and dtypes take one whole-array NumPy pass.
"""

from __future__ import annotations

import numpy as np

from .jit import compiled
from .parallel import for_parts


def compiled_act(*arrays):
    """The compiled kernels when they apply to `arrays` (numba on, C-contiguous float32/float64), else None."""
    if arrays[0].dtype not in (np.float32, np.float64) or not all(a.flags.c_contiguous for a in arrays):
        return None
    return compiled("act")


def in_parts(fn, *arrays) -> None:
    """fn(*parts) over flat, equal-length parts of C-contiguous `arrays` (the first sets the work size), one
    part per thread: the outputs among `arrays` are written in place."""
    if not all(a.flags.c_contiguous for a in arrays):  # reshape would copy, and outputs be written to the copy
        raise ValueError("in_parts: every array must be C-contiguous")
    flats = [a.reshape(-1) for a in arrays]
    for_parts(lambda s: fn(*[f[s] for f in flats]), flats[0].size, arrays[0].nbytes)


# ----- ReLU ------------------------------------------------------------------------------------
def relu_forward(x: np.ndarray, mask: bool = True):
    """max(x, 0). The cache is the boolean mask x > 0 (one byte per element), or None without `mask`
    (inference: half the passes). Split over the cores."""
    if not x.flags.c_contiguous:  # one NumPy pass
        return np.maximum(x, 0), (x > 0 if mask else None)
    out = np.empty_like(x)
    m = np.empty(x.shape, dtype=bool) if mask else None
    zero = x.dtype.type(0)
    jit = compiled_act(x)
    if jit is not None:
        if mask:
            in_parts(lambda a, o, b: jit.relu_forward(a, o, b, zero), x, out, m)
        else:
            in_parts(lambda a, o: jit.relu_forward_nomask(a, o, zero), x, out)
        return out, m

    def part(a, o, *b):
        if mask:
            np.greater(a, zero, out=b[0])
        np.maximum(a, zero, out=o)

    in_parts(part, x, out, *([m] if mask else []))
    return out, m


def _scale_by_mask(dout: np.ndarray, mask: np.ndarray, other) -> np.ndarray:
    """dout · (1 where mask else `other`), one pass per thread (ReLU's and LeakyReLU's backward)."""
    one, other = dout.dtype.type(1), dout.dtype.type(other)
    if not (dout.flags.c_contiguous and mask.flags.c_contiguous and mask.dtype == bool and mask.shape == dout.shape):
        return dout * np.where(mask, one, other)
    dx = np.empty_like(dout)
    jit = compiled_act(dout)
    if jit is not None:
        in_parts(lambda d, m, o: jit.scale_by_mask(d, m, o, one, other), dout, mask, dx)
    elif other == 0:  # bool × float keeps the float dtype: dout·1 or dout·0, as the compiled loop
        in_parts(lambda d, m, o: np.multiply(d, m, out=o), dout, mask, dx)
    else:
        in_parts(lambda d, m, o: np.multiply(d, np.where(m, one, other), out=o), dout, mask, dx)
    return dx


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dout · mask (bool × float keeps the float dtype; a quarter of a float mask's memory)."""
    return _scale_by_mask(dout, mask, 0)


# ----- LeakyReLU / PReLU -------------------------------------------------------------------------
def leaky_relu_forward(x: np.ndarray, negative_slope: float):
    """x if x > 0 else slope·x (as x · where(x > 0, 1, slope))."""
    one, slope = x.dtype.type(1), x.dtype.type(negative_slope)
    jit = compiled_act(x)
    if jit is None:
        mask = x > 0
        return x * np.where(mask, one, slope), (mask, negative_slope)
    out, mask = np.empty_like(x), np.empty(x.shape, dtype=bool)
    in_parts(lambda a, o, m: jit.leaky_relu_forward(a, o, m, one, slope), x, out, mask)
    return out, (mask, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    mask, slope = cache
    return _scale_by_mask(dout, mask, slope)


def prelu_forward(x: np.ndarray, alpha: np.ndarray):
    """x if x > 0 else α·x; α has shape (1,) (shared) or (C,) (one per channel = last axis of x)."""
    mask = x > 0
    out = np.where(mask, x, x * alpha)
    return out, (x, mask, alpha)


def prelu_backward(dout: np.ndarray, cache):
    """Returns (dx, dα); dα sums dout·x over the x ≤ 0 elements of each channel (or of all, if shared)."""
    x, mask, alpha = cache
    dx = np.where(mask, dout, dout * alpha)
    neg = np.where(mask, 0, dout * x).astype(dout.dtype, copy=False)
    if alpha.size == 1:
        dalpha = np.array([neg.sum()], dtype=alpha.dtype)
    else:
        dalpha = neg.reshape(-1, alpha.size).sum(axis=0).astype(alpha.dtype, copy=False)
    return dx, dalpha


# ----- ELU ---------------------------------------------------------------------------------------
def elu_forward(x: np.ndarray, alpha: float):
    """x if x > 0 else α·(exp(x) − 1) (Clevert et al. 2016); expm1 keeps precision near 0."""
    jit = compiled_act(x)
    if jit is None:
        mask = x > 0
        out = np.where(mask, x, np.expm1(np.minimum(x, 0)) * x.dtype.type(alpha))
        return out, (out, mask, alpha)
    out, mask = np.empty_like(x), np.empty(x.shape, dtype=bool)
    zero, a = x.dtype.type(0), x.dtype.type(alpha)
    in_parts(lambda v, o, m: jit.elu_forward(v, o, m, zero, a), x, out, mask)
    return out, (out, mask, alpha)


def elu_backward(dout: np.ndarray, cache) -> np.ndarray:
    # for x ≤ 0: d/dx α(eˣ − 1) = αeˣ = out + α
    out, mask, alpha = cache
    a = out.dtype.type(alpha)
    jit = compiled_act(dout, out, mask)
    if jit is None or dout.dtype != out.dtype:
        return np.where(mask, dout, dout * (out + a))
    dx = np.empty_like(dout)
    in_parts(lambda d, o, m, g: jit.elu_backward(d, o, m, g, a), dout, out, mask, dx)
    return dx


# ----- sigmoid / tanh ----------------------------------------------------------------------------
def sigmoid_forward(x: np.ndarray):
    """1 / (1 + e⁻ˣ), computed from e^(−|x|) so neither tail overflows or loses its small values."""
    if not x.flags.c_contiguous:
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1, e) / (1 + e)
        return out, out
    out = np.empty_like(x)
    jit = compiled_act(x)
    if jit is not None:  # within float32 rounding of the NumPy path (the C library's exp)
        one = x.dtype.type(1)
        in_parts(lambda a, o: jit.sigmoid_forward(a, o, one), x, out)
        return out, out

    def part(a, o):
        e = np.exp(-np.abs(a))
        np.divide(np.where(a >= 0, 1, e), 1 + e, out=o)

    in_parts(part, x, out)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return _backward_from_output(dout, out, "sigmoid_backward", lambda d, o, one: d * o * (one - o))


def tanh_forward(x: np.ndarray):
    if not x.flags.c_contiguous:
        out = np.tanh(x)
        return out, out
    out = np.empty_like(x)
    in_parts(lambda a, o: np.tanh(a, out=o), x, out)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return _backward_from_output(dout, out, "tanh_backward", lambda d, o, one: d * (one - o * o))


def _backward_from_output(dout, out, name: str, formula):
    """dx = formula(dout, out, 1) for the activations whose derivative is a function of their output: the
    compiled kernel `name` or NumPy's expression, one pass per thread either way."""
    one = dout.dtype.type(1)
    if dout.dtype != out.dtype or dout.shape != out.shape or not (dout.flags.c_contiguous and out.flags.c_contiguous):
        return formula(dout, out, one)
    dx = np.empty_like(dout)
    jit = compiled_act(dout)
    if jit is not None:
        kernel = getattr(jit, name)
        in_parts(lambda d, o, g: kernel(d, o, g, one), dout, out, dx)
    else:
        in_parts(lambda d, o, g: np.copyto(g, formula(d, o, one)), dout, out, dx)
    return dx


# ----- maxout ------------------------------------------------------------------------------------
def maxout_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pieces: int):
    """Maxout (Goodfellow et al. 2013): z = x @ w + b, then the max over each group of `pieces`.

    x: (N, D), w: (D, F·k), b: (F·k,) → out: (N, F), k = pieces. Column f·k + j of w is piece j of
    unit f (the k pieces of a unit are adjacent columns).
    """
    z = x @ w
    if b is not None:
        z += b
    z = z.reshape(x.shape[0], w.shape[1] // pieces, pieces)  # not -1: an empty batch could not infer it
    arg = z.argmax(axis=2)
    out = np.take_along_axis(z, arg[:, :, None], axis=2)[:, :, 0]
    return out, (x, w, arg, b is not None, pieces)


def maxout_backward(dout: np.ndarray, cache):
    """Routes each unit's gradient to its winning piece. Returns (dx (N, D), dw (D, F·k), db (F·k,) or None)."""
    x, w, arg, has_bias, pieces = cache
    n, f = dout.shape
    dz = np.zeros((n, f, pieces), dtype=dout.dtype)
    np.put_along_axis(dz, arg[:, :, None], dout[:, :, None], axis=2)
    dz = dz.reshape(n, f * pieces)
    dx = dz @ w.T
    dw = x.T @ dz
    db = dz.sum(axis=0) if has_bias else None
    return dx, dw, db
