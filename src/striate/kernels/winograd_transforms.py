"""The transforms of Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray 2016, "Fast algorithms for
convolutional neural networks"): one output tile Y (m×m) of a 3×3 correlation from an input tile d (α×α,
α = m + 2) is

    Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A,

applied here along one image axis at a time to whole stacks of tiles: every routine takes α (or m) arrays
of one shape — the tiles' values at one offset along the transformed axis, for all tiles and channels —
and writes the transformed arrays. The inputs may be strided views; each output is written exactly once,
by the routine's last operation on it, so an output may be a strided view too (the final scatter into the
NHWC output costs no extra pass). Intermediate results go to `scratch(k)`, contiguous arrays of the same
shape. Counting passes over the arrays (NumPy ufuncs, each one pass; the transforms are memory-bound):

    F(2, 3): Bᵀ 4 passes, Aᵀ 4, A 4;   F(4, 3): Bᵀ 20, Aᵀ 18, A 18.

F(4, 3) uses the points 0, 1, −1, ½, −2 (and ∞): of the sets measured (±2, ±½, {½, −2}, {2, −½}, {½, −3/2},
{⅔, −3/2}, …) it gave the smallest float32 error, 2–3× smaller than Lavin's 0, ±1, ±2 on ReLU activations;
its powers of two keep the scalings exact. The matrices come from the Toom–Cook construction (Aᵀ = Vₘᵀ,
G = V₃, Bᵀ = V_α⁻ᵀ for the Vandermonde matrices V of the points), rows of Bᵀ rescaled to small integers
with the inverse factors moved into G, which is applied in float64 once per call.
"""

from __future__ import annotations

import numpy as np

# F(2×2, 3×3), points 0, 1, −1, ∞ (Lavin & Gray's matrices)
AT2 = np.array([[1, 1, 1, 0],
                [0, 1, -1, -1]], dtype=np.float64)
G2 = np.array([[1, 0, 0],
               [0.5, 0.5, 0.5],
               [0.5, -0.5, 0.5],
               [0, 0, 1]], dtype=np.float64)
BT2 = np.array([[1, 0, -1, 0],
                [0, 1, 1, 0],
                [0, -1, 1, 0],
                [0, 1, 0, -1]], dtype=np.float64)

# F(4×4, 3×3), points 0, 1, −1, ½, −2, ∞
AT4 = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 1 / 2, -2, 0],
                [0, 1, 1, 1 / 4, 4, 0],
                [0, 1, -1, 1 / 8, -8, 1]], dtype=np.float64)
G4 = np.array([[1, 0, 0],
               [1 / 6, 1 / 6, 1 / 6],
               [1 / 6, -1 / 6, 1 / 6],
               [16 / 15, 8 / 15, 4 / 15],
               [1 / 30, -1 / 15, 2 / 15],
               [0, 0, 1]], dtype=np.float64)
BT4 = np.array([[1, -3 / 2, -2, 3 / 2, 1, 0],
                [0, -2, 1, 5, 2, 0],
                [0, -2, 5, -1, -2, 0],
                [0, 2, 1, -2, -1, 0],
                [0, 1, -2, -1, 2, 0],
                [0, 1, -3 / 2, -2, 3 / 2, 1]], dtype=np.float64)

MATRICES = {2: (AT2, G2, BT2), 4: (AT4, G4, BT4)}


def check_m(m) -> int:
    if m not in MATRICES:
        raise ValueError(f"Winograd F(m×m, 3×3): m must be 2 or 4, got {m!r}")
    return m


def filter_transform(w: np.ndarray, m: int) -> np.ndarray:
    """U = G g Gᵀ for every (input, output) channel pair: w (3, 3, C, F) → (α², C, F), position-major
    (position a·α + b), computed in float64 and rounded once to w's dtype."""
    _, g, _ = MATRICES[check_m(m)]
    c, f = w.shape[2], w.shape[3]
    w64 = w.astype(np.float64, copy=False).reshape(3, 3 * c * f)
    rows = (g @ w64).reshape(-1, 3, c * f)                     # (α, 3, C·F): G along the kernel's rows
    u = np.einsum("bj,ajk->abk", g, rows)                       # (α, α, C·F): and along its columns
    return u.reshape(-1, c, f).astype(w.dtype)


def filter_transform_transposed(du: np.ndarray, m: int) -> np.ndarray:
    """The adjoint of `filter_transform`: dU (α², C, F) → dw = Gᵀ dU G (3, 3, C, F), in float64 then
    rounded once to dU's dtype."""
    _, g, _ = MATRICES[check_m(m)]
    alpha = g.shape[0]
    c, f = du.shape[1], du.shape[2]
    d = du.astype(np.float64, copy=False).reshape(alpha, alpha, c * f)
    rows = np.einsum("ai,abk->ibk", g, d)                        # (3, α, C·F)
    return np.einsum("bj,ibk->ijk", g, rows).reshape(3, 3, c, f).astype(du.dtype)


# ----- Bᵀ: α input offsets → α transformed positions -----
def bt2(d, out, scratch):
    np.subtract(d[0], d[2], out=out[0])
    np.add(d[1], d[2], out=out[1])
    np.subtract(d[2], d[1], out=out[2])
    np.subtract(d[1], d[3], out=out[3])


def bt4(d, out, scratch):
    # with u = d1 − d3, v = d2 − d4, a = 3d2 − 2u, b = 3d3 − 2v the rows of BT4 are (rows 0 and 5 halved)
    # d0 − d2 − v − 1.5u,  a + b,  a − b,  2u + v,  u − 2v,  d5 − d3 + u − 1.5v
    u, v, u2, v2, a, b = scratch(6)
    np.subtract(d[1], d[3], out=u)
    np.subtract(d[2], d[4], out=v)
    np.add(u, u, out=u2)
    np.add(v, v, out=v2)
    np.add(u2, v, out=out[3])
    np.subtract(u, v2, out=out[4])
    np.multiply(d[2], 3, out=a)
    a -= u2
    np.multiply(d[3], 3, out=b)
    b -= v2
    np.add(a, b, out=out[1])
    np.subtract(a, b, out=out[2])
    np.multiply(u, 1.5, out=u2)                                 # u2, v2 now hold 1.5u, 1.5v
    np.multiply(v, 1.5, out=v2)
    np.subtract(d[0], d[2], out=a)
    a -= v
    np.subtract(a, u2, out=out[0])
    np.subtract(d[5], d[3], out=b)
    b += u
    np.subtract(b, v2, out=out[5])


# ----- Aᵀ: α positions → m outputs -----
def at2(mm, out, scratch):
    (t,) = scratch(1)
    np.add(mm[0], mm[1], out=t)
    np.add(t, mm[2], out=out[0])
    np.subtract(mm[1], mm[2], out=t)
    np.subtract(t, mm[3], out=out[1])


def at4(mm, out, scratch):
    # p = m1 + m2, q = m1 − m2; the rows are m0 + p + m3 + m4, q + m3/2 − 2m4, p + m3/4 + 4m4, q + m3/8 − 8m4 + m5
    p, q, s1, s2, t = scratch(5)
    np.add(mm[1], mm[2], out=p)
    np.subtract(mm[1], mm[2], out=q)
    np.add(p, mm[3], out=t)
    t += mm[0]
    np.add(t, mm[4], out=out[0])
    np.multiply(mm[3], 0.5, out=s1)
    np.add(mm[4], mm[4], out=s2)
    np.add(q, s1, out=t)
    np.subtract(t, s2, out=out[1])
    s1 *= 0.5
    s2 += s2
    np.add(p, s1, out=t)
    np.add(t, s2, out=out[2])
    s1 *= 0.5
    s2 += s2
    np.add(q, s1, out=t)
    t -= s2
    np.add(t, mm[5], out=out[3])


# ----- A = (Aᵀ)ᵀ: m output gradients → α position gradients (the adjoint of Aᵀ) -----
def a2(y, out, scratch):
    np.copyto(out[0], y[0])
    np.add(y[0], y[1], out=out[1])
    np.subtract(y[0], y[1], out=out[2])
    np.negative(y[1], out=out[3])


def a4(y, out, scratch):
    # rows: y0;  y0 + y1 + y2 + y3;  y0 − y1 + y2 − y3;  y0 + y1/2 + y2/4 + y3/8;  y0 − 2y1 + 4y2 − 8y3;  y3
    e, o, t = scratch(3)
    np.copyto(out[0], y[0])
    np.copyto(out[5], y[3])
    np.add(y[0], y[2], out=e)
    np.add(y[1], y[3], out=o)
    np.add(e, o, out=out[1])
    np.subtract(e, o, out=out[2])
    np.multiply(y[3], 0.5, out=t)                               # Horner in ½: ((y3/2 + y2)/2 + y1)/2 + y0
    t += y[2]
    t *= 0.5
    t += y[1]
    t *= 0.5
    np.add(t, y[0], out=out[3])
    np.add(y[3], y[3], out=t)                                   # and in −2: y0 − 2(y1 − 2(y2 − 2y3))
    np.subtract(y[2], t, out=t)
    t += t
    np.subtract(y[1], t, out=t)
    t += t
    np.subtract(y[0], t, out=out[4])


ROUTINES = {2: (bt2, at2, a2), 4: (bt4, at4, a4)}
