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
