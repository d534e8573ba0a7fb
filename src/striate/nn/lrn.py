"""LocalResponseNorm: AlexNet's normalisation across neighbouring channels (Krizhevsky et al. 2012, §3.3),
with torch.nn.LocalResponseNorm's documented semantics, on NHWC images.

    b_c = a_c / (k + α/n · Σ_{c' = c − ⌊n/2⌋}^{c + ⌊(n−1)/2⌋} a_{c'}²)^β

(channels outside 0..C−1 count as zero; α is divided by the window size n, as torch does — the paper's α
is torch's α/n). The kernels are pure functions; they loop over the n window offsets, never over pixels.
"""

from __future__ import annotations

import numpy as np

from .module import Module


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
    """x: (..., C) → (y, cache), normalised across the last axis."""
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


def lrn_naive(x: np.ndarray, size: int, alpha: float, beta: float, k: float) -> np.ndarray:
    """Test oracle: a loop over channels, straight from the formula."""
    c = x.shape[-1]
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        y[..., ch] = x[..., ch] / (k + alpha / size * (x[..., lo:hi] ** 2).sum(axis=-1)) ** beta
    return y


class LocalResponseNorm(Module):
    """x: (N, H, W, C) (or any (N, ..., C)) → same shape, normalised across channels.

    Defaults are torch's (size n, α = 1e-4, β = 0.75, k = 1); AlexNet used n = 5, k = 2, paper-α = 1e-4,
    i.e. `LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)` here. No parameters; MACs are not counted
    (like pooling, it is cheap next to the convolutions).
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if int(size) < 1:
            raise ValueError(f"LocalResponseNorm: size must be ≥ 1, got {size!r}")
        if k <= 0 and beta != 0:
            raise ValueError(f"LocalResponseNorm: k must be > 0, got {k!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise self._error(f"expected input (N, H, W, C), got {getattr(x, 'shape', type(x).__name__)}")
        self._check_input(x, x.ndim, None, "N, H, W, C" if x.ndim == 4 else None)
        y, cache = lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return lrn_backward(dy, self._saved(dy))

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._error(f"expected input (N, H, W, C), got {tuple(input_shape)}")
        return tuple(input_shape)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g}"
