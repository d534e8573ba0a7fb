"""The matrices of Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray 2016, "Fast algorithms for
convolutional neural networks"): one output tile Y (m×m) of a 3×3 correlation from an input tile d (α×α,
α = m + 2) is

    Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A.

F(4, 3) uses the points 0, 1, −1, ½, −2 (and ∞): of the sets measured (±2, ±½, {½, −2}, {2, −½}, {½, −3/2},
{⅔, −3/2}, …) it gave the smallest float32 error, 2–3× smaller than Lavin's 0, ±1, ±2 on ReLU activations;
its powers of two keep most scalings exact. The matrices come from the Toom–Cook construction (Aᵀ = Vₘᵀ,
G = V₃, Bᵀ = V_α⁻ᵀ for the Vandermonde matrices V of the points), rows of Bᵀ rescaled to small numbers
with the inverse factors moved into G. The filter transforms run in float64 (rounded once at the end).
"""

from __future__ import annotations

import numpy as np

from .parallel import for_parts

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
    return _kron_apply(np.kron(g, g), w.reshape(9, c * f)).reshape(-1, c, f)


def filter_transform_transposed(du: np.ndarray, m: int) -> np.ndarray:
    """The adjoint of `filter_transform`: dU (α², C, F) → dw = Gᵀ dU G (3, 3, C, F), in float64 then
    rounded once to dU's dtype."""
    _, g, _ = MATRICES[check_m(m)]
    c, f = du.shape[1], du.shape[2]
    return _kron_apply(np.kron(g, g).T, du.reshape(-1, c * f)).reshape(3, 3, c, f)


def _kron_apply(k: np.ndarray, a: np.ndarray, block: int = 4096) -> np.ndarray:
    """k (P, Q) float64 @ a (Q, L) in float64, in column blocks that stay in cache (a whole float64 copy of
    a 256×512 filter bank measured 3× slower) split over striate's threads, rounded to a's dtype."""
    out = np.empty((k.shape[0], a.shape[1]), dtype=a.dtype)

    def blocks(part: slice):
        for s in range(part.start * block, min(part.stop * block, a.shape[1]), block):
            out[:, s:s + block] = k @ a[:, s:s + block].astype(np.float64)

    for_parts(blocks, -(-a.shape[1] // block), out.nbytes)
    return out
