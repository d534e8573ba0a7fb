"""Naive loop implementations, kept only as test oracles for the fast kernels. Never on a hot path."""

from __future__ import annotations

import numpy as np


def conv2d_naive(x, w, b, stride=1, pad=0):
    """Direct loops over output positions. x (N, H, W, C), w (KH, KW, C, F) → (N, Ho, Wo, F)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, ho, wo, f), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            window = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(window, w, axes=([1, 2, 3], [0, 1, 2]))
    if b is not None:
        out += b
    return out


def conv2d_backward_naive(dout, x, w, stride=1, pad=0):
    """Loop version of the convolution gradients: (dx, dw, db)."""
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    _, ho, wo, _ = dout.shape
    for i in range(ho):
        for j in range(wo):
            hs, ws = i * stride, j * stride
            window = xp[:, hs:hs + kh, ws:ws + kw, :]
            g = dout[:, i, j, :]  # (N, F)
            dw += np.tensordot(window, g, axes=([0], [0]))
            dxp[:, hs:hs + kh, ws:ws + kw, :] += np.tensordot(g, w, axes=([1], [3]))
    dx = dxp[:, pad:pad + h, pad:pad + wd, :]
    return dx, dw, dout.sum(axis=(0, 1, 2))


# ----- pooling oracles (loops over output positions; argmax by np.argmax, which picks the first) -----
def max_pool2d_naive(x, kh, kw, stride_h, stride_w):
    """Loops over output positions. x (N, H, W, C) → (out (N, Ho, Wo, C), argmax (N, Ho, Wo, C) as
    row-major offsets inside each window)."""
    n, h, wd, c = x.shape
    ho, wo = (h - kh) // stride_h + 1, (wd - kw) // stride_w + 1
    out = np.zeros((n, ho, wo, c), dtype=x.dtype)
    arg = np.zeros((n, ho, wo, c), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            window = x[:, i * stride_h:i * stride_h + kh, j * stride_w:j * stride_w + kw, :].reshape(n, kh * kw, c)
            arg[:, i, j, :] = window.argmax(axis=1)
            out[:, i, j, :] = window.max(axis=1)
    return out, arg


def max_pool2d_backward_naive(dout, x, kh, kw, stride_h, stride_w):
    """Each output gradient added to the first maximum of its window, one window at a time."""
    _, arg = max_pool2d_naive(x, kh, kw, stride_h, stride_w)
    n, ho, wo, c = dout.shape
    dx = np.zeros_like(x)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    a = arg[b, i, j, ch]
                    dx[b, i * stride_h + a // kw, j * stride_w + a % kw, ch] += dout[b, i, j, ch]
    return dx


def avg_pool2d_naive(x, kh, kw, stride_h, stride_w):
    n, h, wd, c = x.shape
    ho, wo = (h - kh) // stride_h + 1, (wd - kw) // stride_w + 1
    out = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, i, j, :] = x[:, i * stride_h:i * stride_h + kh, j * stride_w:j * stride_w + kw, :].mean(axis=(1, 2))
    return out


def avg_pool2d_backward_naive(dout, x_shape, kh, kw, stride_h, stride_w):
    dx = np.zeros(x_shape, dtype=dout.dtype)
    _, ho, wo, _ = dout.shape
    for i in range(ho):
        for j in range(wo):
            hs, ws = i * stride_h, j * stride_w
            dx[:, hs:hs + kh, ws:ws + kw, :] += dout[:, i:i + 1, j:j + 1, :] / (kh * kw)
    return dx


def fractional_max_pool2d_naive(x, row_bounds, col_bounds):
    """Max over the regions [a_i, a_{i+1}) × [b_j, b_{j+1}); returns (out, dx_fn) where dx_fn(dout)
    routes each gradient to the region's first maximum (row-major), one region at a time."""
    n, _, _, c = x.shape
    ho, wo = len(row_bounds) - 1, len(col_bounds) - 1
    out = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, i, j, :] = x[:, row_bounds[i]:row_bounds[i + 1], col_bounds[j]:col_bounds[j + 1], :].max(axis=(1, 2))

    def backward(dout):
        dx = np.zeros_like(x)
        for i in range(ho):
            for j in range(wo):
                r0, c0, w = row_bounds[i], col_bounds[j], col_bounds[j + 1] - col_bounds[j]
                region = x[:, r0:row_bounds[i + 1], c0:col_bounds[j + 1], :].reshape(n, -1, c)
                a = region.argmax(axis=1)
                for b in range(n):
                    for ch in range(c):
                        dx[b, r0 + a[b, ch] // w, c0 + a[b, ch] % w, ch] += dout[b, i, j, ch]
        return dx

    return out, backward


def lrn_naive(x, size, alpha, beta, k):
    """Loop over channels, straight from the local response normalisation formula (see kernels/lrn.py)."""
    c = x.shape[-1]
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        y[..., ch] = x[..., ch] / (k + alpha / size * (x[..., lo:hi] ** 2).sum(axis=-1)) ** beta
    return y
