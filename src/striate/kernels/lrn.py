"""Local response normalisation kernels (Krizhevsky et al. 2012, §3.3) with torch.nn.LocalResponseNorm's
documented semantics, across the last axis (channels of NHWC images):

    b_c = a_c / (k + α/n · Σ_{c' = c − ⌊n/2⌋}^{c + ⌊(n−1)/2⌋} a_{c'}²)^β

(channels outside 0..C−1 count as zero; α is divided by the window size n, as torch does — the paper's α
is torch's α/n). They loop over the n window offsets, never over pixels. The naive oracle is
`reference.lrn_naive`.
"""

from __future__ import annotations

import numpy as np


def _window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """s[..., c] = Σ_{j = c − before}^{c + after} a[..., j] over the last axis, zero outside."""
    c = a.shape[-1]
    s = a.copy()
    for d in range(1, before + 1):
        if d < c:
            s[..., d:] += a[..., :c - d]
    for d in range(1, after + 1):
        if d < c:
            s[..., :c - d] += a[..., d:]
    return s


def lrn_forward(x: np.ndarray, size: int, alpha: float, beta: float, k: float):
    """x: (..., C) → (y, cache), y of x's shape and dtype, normalised across the last axis."""
    t = x.dtype.type
    scale = _window_sum(x * x, size // 2, (size - 1) // 2)
    scale *= t(alpha / size)
    scale += t(k)
    y = x * scale ** t(-beta)
    return y, (x, scale, size, alpha, beta)


def lrn_backward(dy: np.ndarray, cache) -> np.ndarray:
    """dx_c = dy_c·d_c^−β − (2αβ/n)·x_c · Σ_{j: c ∈ window(j)} dy_j·x_j·d_j^(−β−1), d the scale above."""
    x, scale, size, alpha, beta = cache
    t = x.dtype.type
    inv = scale ** t(-beta)
    u = dy * x * inv / scale
    # c lies in window(j) = [j − ⌊n/2⌋, j + ⌊(n−1)/2⌋]  ⇔  j ∈ [c − ⌊(n−1)/2⌋, c + ⌊n/2⌋]
    back = _window_sum(u, (size - 1) // 2, size // 2)
    return dy * inv - t(2 * alpha * beta / size) * x * back
