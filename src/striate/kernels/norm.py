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

With compiled kernels on (`jit.compiled("norm")`, numba; C-contiguous float32/float64 arrays), each pass is one
compiled loop per thread's rows instead of many NumPy calls per block (`numba_norm.py`): the statistics in one
pass (float64 sums about the part's first row), Σdout and Σdout·x̂ in one pass,
then dx; in evaluation, dx and both sums in one pass. Their sums add in another order, so results agree with
the NumPy path within float32 rounding (the elementwise arithmetic is the same: with the same statistics the
outputs and dx are bit-identical, and the fused BatchNorm + ReLU equals the two compiled layers bit for bit).
"""

from __future__ import annotations

import numpy as np

from .jit import compiled
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


def _mean_var(x2: np.ndarray, combine=None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, biased variance) of each column of x (M, C), in x's dtype, in one pass over x; with `combine`,
    of the statistics `combine(count, mean, M2)` makes of this part's (float64, e.g. every rank's together).

    Each block (in cache) gives its sum and its sum of squares about its own mean, both by a GEMV with a
    ones vector (BLAS's blocked accumulation); the blocks are combined in float64 by Chan et al.'s update
    (n, mean, M2) ⊕ (k, mean_b, M2_b), which is exact for exact block statistics. So offset data keep the
    precision of a two-pass variance (M = 10⁵ rows: ~1e-7 relative in float32) at the cost of one pass.
    The compiled path (`numba_norm.moments`) sums x − k and (x − k)² in float64 about each part's first row k.
    """
    m, c = x2.shape
    jit = _compiled_for(x2)

    def part(rows):
        if jit is not None and rows.stop > rows.start:
            return rows.stop - rows.start, *jit.moments(x2, rows.start, rows.stop)
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

    first, *rest = for_parts(part, m, x2.nbytes)
    n, mean, m2 = first  # float64 already: combining it with nothing would give the same values
    for stats in rest:
        n, mean, m2 = _combine(n, mean, m2, *stats)
    if combine is not None:
        n, mean, m2 = combine(n, mean, m2)
    return mean.astype(x2.dtype), (m2 / max(n, 1)).astype(x2.dtype)


def combine_statistics(parts) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, mean, M2) of the union of parts [(count, mean, M2), …], combined in the order given."""
    n, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        n, mean, m2 = _combine(n, mean, m2, *part)
    return n, mean, m2


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
    jit = _compiled_for(x2, scale, shift)

    def part(rows):
        if jit is not None:
            return jit.affine(x2, scale, shift, relu, rows.start, rows.stop, out)
        for b in _blocks(*x2.shape, x2.itemsize, rows):
            o = out[b]
            np.multiply(x2[b], scale, out=o)
            o += shift
            if relu:
                np.maximum(o, zero, out=o)

    for_parts(part, x2.shape[0], x2.nbytes)
    return out


def _compiled_for(*arrays):
    """The compiled kernels (`numba_norm`) when they apply: compiled kernels on, and every array C-contiguous and
    of x's float dtype (anything else — mixed dtypes, strided views — takes the NumPy path)."""
    jit = compiled("norm")
    dtype = arrays[0].dtype
    if jit is None or dtype not in (np.float32, np.float64):
        return None
    return jit if all(a.dtype == dtype and a.flags.c_contiguous for a in arrays) else None


def relu_mask(cache) -> np.ndarray:
    """The mask (x·s + t > 0) (shape of x) of a ReLU fed by the BatchNorm whose forward left `cache`."""
    _, x2, mean, inv_std, gamma, beta = cache
    return _affine(x2, *_scale_shift(mean, inv_std, gamma, beta)) > 0


def _scale_shift(mean, inv_std, gamma, beta):
    scale = gamma * inv_std
    return scale, beta - mean * scale


def batchnorm_train_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float, relu: bool = False,
                            combine=None):
    """Normalise with the batch's mean and biased variance (two-pass, so offset data keep precision); with
    `relu`, max(·, 0) of that in the same pass. `combine(count, mean, M2) -> (count, mean, M2)` (float64)
    turns this batch's statistics into those to normalise with (a synchronised BatchNorm: every rank's).

    Returns (out (shape of x), cache, mean (C,), var (C,)); var is the biased (÷M) variance.
    """
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    mean, var = _mean_var(x2, combine)
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


def batchnorm_backward(dout: np.ndarray, cache, relu: bool = False, reduce=None):
    """Returns (dx (shape of dout), dγ (C,), dβ (C,)) for either forward. With `relu`, dout is the gradient of
    max(BatchNorm(x), 0): the mask is recomputed from x, block by block, and applied first.

    `reduce(Σdout, Σdout·x̂) -> (Σ, Σ, M)` (a synchronised BatchNorm) gives the sums and the count of the
    whole batch the statistics came from, which dx needs; dγ and dβ stay this part's own."""
    mode, x2, mean, inv_std, gamma, beta = cache
    m, c = x2.shape
    d2 = dout.reshape(-1, c)
    scale_shift = _scale_shift(mean, inv_std, gamma, beta)
    jit = _compiled_for(d2, x2, mean, *scale_shift)
    if jit is not None:
        dx, dgamma, dbeta = _compiled_backward(jit, d2, cache, scale_shift, relu, reduce)
        return dx.reshape(dout.shape), dgamma, dbeta
    # with relu: dout·mask goes into dx's buffer, which the last pass then overwrites block by block
    masked = np.empty_like(d2) if relu else None
    dbeta, dgamma = _gradient_sums(d2, x2, mean, scale_shift if relu else None, masked)
    d2 = masked if relu else d2
    dgamma *= inv_std  # Σ dout·x̂
    scale = scale_shift[0]
    if mode == "eval":
        if relu:
            d2 *= scale
            return d2.reshape(dout.shape), dgamma, dbeta
        return dout * scale, dgamma, dbeta
    # dx = s·dout − (s·inv_std·dγ/M)·(x − mean) − s·dβ/M, blockwise into one buffer
    k_x, k_0 = _dx_coefficients(scale, inv_std, dbeta, dgamma, m, reduce)
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


def _compiled_backward(jit, d2, cache, scale_shift, relu, reduce):
    """`batchnorm_backward` on (M, C) by the compiled kernels: in evaluation one pass (dx and the sums); in
    training the sums, then dx from them."""
    mode, x2, mean, inv_std, _, _ = cache
    m = x2.shape[0]
    dx = np.empty_like(d2)
    args = (d2, x2, mean, *scale_shift, relu)
    if mode == "eval":
        parts = for_parts(lambda rows: jit.eval_backward(*args, rows.start, rows.stop, dx), m, x2.nbytes)
    else:
        parts = for_parts(lambda rows: jit.gradient_sums(*args, rows.start, rows.stop), m, x2.nbytes)
    dbeta = sum(p[0] for p in parts).astype(d2.dtype)
    dgamma = sum(p[1] for p in parts).astype(d2.dtype)
    dgamma *= inv_std  # Σ dout·x̂
    if mode == "eval":
        return dx, dgamma, dbeta
    k_x, k_0 = _dx_coefficients(scale_shift[0], inv_std, dbeta, dgamma, m, reduce)
    for_parts(lambda rows: jit.train_dx(*args, -k_x, k_0, rows.start, rows.stop, dx), m, x2.nbytes)
    return dx, dgamma, dbeta


def _dx_coefficients(scale, inv_std, dbeta, dgamma, m, reduce):
    """(k_x, k_0) of dx = s·dout − k_x·(x − mean) − k_0 from this part's Σdout = dβ and Σdout·x̂ = dγ, or with
    `reduce` from the whole batch's sums and count."""
    sum_d, sum_dx, count = dbeta, dgamma, m
    if reduce is not None:
        sum_d, sum_dx, count = reduce(dbeta, dgamma)
        sum_d, sum_dx = sum_d.astype(dbeta.dtype), sum_dx.astype(dgamma.dtype)
    return scale * inv_std * sum_dx / count, scale * sum_d / count
