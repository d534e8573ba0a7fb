"""Activation kernels: elementwise non-linearities (any shape) and maxout (N, D).

Each is `*_forward(x, ...) -> (out, cache)` and `*_backward(dout, cache) -> dx` (or a tuple with
parameter gradients). Gradients at the kink x = 0 follow PyTorch: the x ≤ 0 branch is taken there
(ReLU'(0) = 0, LeakyReLU'(0) = slope, PReLU'(0) = α, ELU'(0) = α). Dtype follows the input.
"""

from __future__ import annotations

import numpy as np

from .parallel import for_parts


# ----- ReLU ------------------------------------------------------------------------------------
def relu_forward(x: np.ndarray, mask: bool = True):
    """max(x, 0). The cache is the boolean mask x > 0 (one byte per element), or None without `mask`
    (inference: half the passes). Split over the cores."""
    out = np.empty_like(x)
    m = np.empty(x.shape, dtype=bool) if mask else None
    xf, of = x.reshape(-1), out.reshape(-1)
    mf = m.reshape(-1) if mask else None
    if not (np.shares_memory(xf, x) and np.shares_memory(of, out)):  # non-contiguous input: one pass
        return np.maximum(x, 0), (x > 0 if mask else None)
    zero = x.dtype.type(0)

    def part(s):
        if mask:
            np.greater(xf[s], zero, out=mf[s])
        np.maximum(xf[s], zero, out=of[s])

    for_parts(part, xf.size, x.nbytes)
    return out, m


def relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dout · mask (bool × float keeps the float dtype; a quarter of a float mask's memory)."""
    dx = np.empty_like(dout)
    df, mf, xf = dout.reshape(-1), mask.reshape(-1), dx.reshape(-1)
    if not np.shares_memory(df, dout):
        return dout * mask
    for_parts(lambda s: np.multiply(df[s], mf[s], out=xf[s]), df.size, dout.nbytes)
    return dx


# ----- LeakyReLU / PReLU -------------------------------------------------------------------------
def leaky_relu_forward(x: np.ndarray, negative_slope: float):
    """x if x > 0 else slope·x."""
    mask = x > 0
    out = x * np.where(mask, x.dtype.type(1), x.dtype.type(negative_slope))
    return out, (mask, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache) -> np.ndarray:
    mask, slope = cache
    return dout * np.where(mask, dout.dtype.type(1), dout.dtype.type(slope))


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
    mask = x > 0
    out = np.where(mask, x, np.expm1(np.minimum(x, 0)) * x.dtype.type(alpha))
    return out, (out, mask, alpha)


def elu_backward(dout: np.ndarray, cache) -> np.ndarray:
    # for x ≤ 0: d/dx α(eˣ − 1) = αeˣ = out + α
    out, mask, alpha = cache
    return np.where(mask, dout, dout * (out + out.dtype.type(alpha)))


# ----- sigmoid / tanh ----------------------------------------------------------------------------
def sigmoid_forward(x: np.ndarray):
    """1 / (1 + e⁻ˣ), computed from e^(−|x|) so neither tail overflows or loses its small values."""
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1, e) / (1 + e)
    return out, out


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dout * out * (1 - out)


def tanh_forward(x: np.ndarray):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    return dout * (1 - out * out)


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
