"""Batch normalisation kernels (Ioffe & Szegedy 2015) over every axis but the last.

x: (..., C) — (N, D) features or (N, H, W, C) images — is viewed as an (M, C) matrix, M the product
of the leading axes; statistics are per column. Every pass walks the rows in blocks of about
`BLOCK_BYTES`, so temporaries such as x − mean stay in cache and the only (M, C) array a pass
allocates is its output. Column sums use a GEMV with a ones vector per block (BLAS accumulates in
blocks: faster and more accurate than NumPy's row-by-row axis-0 reduction), block sums add in float64.
The cache keeps a reference to x (layers never modify their inputs), not a normalised copy: x̂ is
recomputed blockwise in backward, which saves one activation-sized array per layer between forward
and backward.

Backward (training) is the compact form of the notes' staged graph,
    dx = (1/M)·inv_std·(M·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂)),  dx̂ = γ·dout,
with Σdx̂ = γ·dβ and Σ(dx̂·x̂) = γ·dγ, i.e.  dx = γ·inv_std·(dout − dβ/M − x̂·dγ/M).
In evaluation the layer is the affine map y = x·s + t, s = γ·inv_std, t = β − mean·s, so dx = dout·s.

BatchNorm followed by ReLU (`*_relu` functions) runs as one pass each way: forward writes max(x·s + t, 0)
straight from x; backward recomputes the ReLU's mask from x blockwise (nothing is stored for it) and feeds
dout·mask into the BatchNorm backward. Every value is computed by the same operations, in the same order, as
the two separate layers, so the fused pair gives bit-identical results.
"""

from __future__ import annotations

import numpy as np

from .parallel import for_parts

BLOCK_BYTES = 2**20  # rows per block: about this many bytes of one (rows, C) slab


def _blocks(m: int, c: int, itemsize: int, rows: slice | None = None):
    """Row blocks of about BLOCK_BYTES covering `rows` (default: all m rows)."""
    start, stop = (0, m) if rows is None else (rows.start, rows.stop)
    step = max(1, BLOCK_BYTES // (c * itemsize))
    return [slice(s, min(s + step, stop)) for s in range(start, stop, step)]


def _ones(blocks: list[slice], dtype) -> np.ndarray:
    """A ones vector as long as the first (largest) block; empty when there are no rows."""
    return np.ones(blocks[0].stop - blocks[0].start if blocks else 0, dtype=dtype)


def _mean_var(x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, biased variance) of each column of x (M, C), in x's dtype, in one pass over x.

    Each block (in cache) gives its sum and its sum of squares about its own mean, both by a GEMV with a
    ones vector (BLAS's blocked accumulation); the blocks are combined in float64 by Chan et al.'s update
    (n, mean, M2) ⊕ (k, mean_b, M2_b), which is exact for exact block statistics. So offset data keep the
    precision of a two-pass variance (M = 10⁵ rows: ~1e-7 relative in float32) at the cost of one pass.
    """
    m, c = x2.shape

    def part(rows):
        n, mean, m2 = 0, np.zeros(c, dtype=np.float64), np.zeros(c, dtype=np.float64)
        blocks = _blocks(m, c, x2.itemsize, rows)
        ones = _ones(blocks, x2.dtype)
        for b in blocks:
            t = x2[b]
            k = t.shape[0]
            block_mean = (ones[:k] @ t) / x2.dtype.type(k)
            u = t - block_mean
            u *= u
            n, mean, m2 = _combine(n, mean, m2, k, block_mean.astype(np.float64), ones[:k] @ u)
        return n, mean, m2

    n, mean, m2 = 0, np.zeros(c, dtype=np.float64), np.zeros(c, dtype=np.float64)
    for stats in for_parts(part, m, x2.nbytes):
        n, mean, m2 = _combine(n, mean, m2, *stats)
    return mean.astype(x2.dtype), (m2 / max(n, 1)).astype(x2.dtype)


def _combine(n, mean, m2, k, mean_b, m2_b):
    """Statistics of the union of two sets of rows, from each set's count, mean and Σ(x − its mean)²."""
    if k == 0:
        return n, mean, m2
    total = n + k
    delta = mean_b - mean
    return total, mean + delta * (k / total), m2 + m2_b + delta * delta * (n * k / total)


def _gradient_sums(d2: np.ndarray, x2: np.ndarray, mean: np.ndarray, relu=None, masked=None):
    """(Σ dout, Σ dout·(x − mean)) over the rows, in one blockwise pass (GEMVs, block sums added in float64).
    With `relu` = (scale, shift), dout is first multiplied by the mask (x·scale + shift > 0), block by block,
    and the product written to `masked` (M, C)."""
    m, c = x2.shape
    zero = x2.dtype.type(0)

    def part(rows):
        sum_d, sum_dx = np.zeros(c, dtype=np.float64), np.zeros(c, dtype=np.float64)
        blocks = _blocks(m, c, x2.itemsize, rows)
        ones = _ones(blocks, x2.dtype)
        for b in blocks:
            d = d2[b]
            if relu is not None:
                z = x2[b] * relu[0]
                z += relu[1]
                d = np.multiply(d, z > zero, out=masked[b])
            t = x2[b] - mean
            t *= d
            sum_d += ones[:t.shape[0]] @ d
            sum_dx += ones[:t.shape[0]] @ t
        return sum_d, sum_dx

    parts = for_parts(part, m, x2.nbytes)
    return sum(p[0] for p in parts).astype(d2.dtype), sum(p[1] for p in parts).astype(d2.dtype)


def _affine(x2: np.ndarray, scale: np.ndarray, shift: np.ndarray, relu: bool = False) -> np.ndarray:
    """x·scale + shift per column (then max(·, 0) with `relu`), into one new (M, C) array."""
    out = np.empty_like(x2)
    zero = x2.dtype.type(0)

    def part(rows):
        for b in _blocks(*x2.shape, x2.itemsize, rows):
            o = out[b]
            np.multiply(x2[b], scale, out=o)
            o += shift
            if relu:
                np.maximum(o, zero, out=o)

    for_parts(part, x2.shape[0], x2.nbytes)
    return out


def relu_mask(cache) -> np.ndarray:
    """The mask (x·s + t > 0) (shape of x) of a ReLU fed by the BatchNorm whose forward left `cache`."""
    _, x2, mean, inv_std, gamma, beta = cache
    return _affine(x2, *_scale_shift(mean, inv_std, gamma, beta)) > 0


def _scale_shift(mean, inv_std, gamma, beta):
    scale = gamma * inv_std
    return scale, beta - mean * scale


def batchnorm_train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, relu: bool = False):
    """Normalise with the batch's mean and biased variance (two-pass, so offset data keep precision); with
    `relu`, max(·, 0) of that in the same pass.

    Returns (out (shape of x), cache, mean (C,), var (C,)); var is the biased (÷M) variance.
    """
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    mean, var = _mean_var(x2)
    inv_std = 1 / np.sqrt(var + eps)
    out = _affine(x2, *_scale_shift(mean, inv_std, gamma, beta), relu)
    return out.reshape(x.shape), ("train", x2, mean, inv_std, gamma.copy(), beta.copy()), mean, var


def batchnorm_eval_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                           running_var: np.ndarray, eps: float, relu: bool = False):
    """Normalise with fixed statistics (then max(·, 0) with `relu`). Returns (out (shape of x), cache)."""
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    inv_std = 1 / np.sqrt(running_var + eps)
    out = _affine(x2, *_scale_shift(running_mean, inv_std, gamma, beta), relu)
    # copies of the (C,) vectors: the module updates its buffers and parameters in place
    return out.reshape(x.shape), ("eval", x2, running_mean.copy(), inv_std, gamma.copy(), beta.copy())


def batchnorm_backward(dout: np.ndarray, cache, relu: bool = False):
    """Returns (dx (shape of dout), dγ (C,), dβ (C,)) for either forward. With `relu`, dout is the gradient of
    max(BatchNorm(x), 0): the mask is recomputed from x, block by block, and applied first."""
    mode, x2, mean, inv_std, gamma, beta = cache
    m, c = x2.shape
    d2 = dout.reshape(-1, c)
    # with relu: dout·mask goes into dx's buffer, which the last pass then overwrites block by block
    masked = np.empty_like(d2) if relu else None
    dbeta, dgamma = _gradient_sums(d2, x2, mean, _scale_shift(mean, inv_std, gamma, beta) if relu else None, masked)
    d2 = masked if relu else d2
    dgamma *= inv_std  # Σ dout·x̂
    scale = gamma * inv_std
    if mode == "eval":
        if relu:
            d2 *= scale
            return d2.reshape(dout.shape), dgamma, dbeta
        return dout * scale, dgamma, dbeta
    # dx = s·dout − (s·inv_std·dγ/M)·(x − mean) − s·dβ/M, blockwise into one buffer
    k_x = scale * inv_std * dgamma / m
    k_0 = scale * dbeta / m
    dx = d2 if relu else np.empty_like(d2)

    def part(rows):
        for b in _blocks(*x2.shape, x2.itemsize, rows):
            o = dx[b]
            t = d2[b] * scale
            np.subtract(x2[b], mean, out=o)
            o *= -k_x
            o += t
            o -= k_0

    for_parts(part, m, x2.nbytes)
    return dx.reshape(dout.shape), dgamma, dbeta
