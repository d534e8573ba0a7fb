"""3×3 stride-1 convolution by Winograd's minimal filtering F(m×m, 3×3), m = 2 or 4 (Lavin & Gray 2016),
on NHWC arrays: all three passes of training.

x: (N, H, W, C), w: (3, 3, C, F), b: (F,) → out: (N, Ho, Wo, F), Ho = H + 2·pad − 2, pad 0, 1 or 2.

The output is cut into m×m tiles (ragged edges are computed on zero padding and cropped), processed in
chunks (images × tile rows, `_chunk_tiles`) small enough for a chunk's transformed arrays to stay in cache:

- input transform V = Bᵀ d B: the chunk's zero-padded input is copied once into the layout (rows, columns,
  images, C); Bᵀ runs along the rows as one (α×α)·(α × images·C) product per tile row and pixel column,
  then along the columns as one per tile row, tile column and row position, written position-major:
  V (α², tiles, C), tile order (tile row, tile column, image);
- the α² products M[p] = V[p]·U[p], (tiles × C)·(C × F), are one batched `np.matmul`;
- output transform Aᵀ M A: along the columns per row position and tile row, then along the rows per tile,
  each tile's (m × F) rows written straight into the NHWC output.

The small transform products are batched `np.matmul` calls. Against the same transforms as NumPy
add/subtract passes over strided views (20–24 passes per 6 positions for F(4×4)) they measured 2× faster
for F(4×4) at 64 channels, 1.25–1.5× at 128–256, 1.0–1.4× for F(2×2) (with OpenBLAS's Haswell kernels,
which lack the AVX-512 small-matrix path: 1.1–1.6× for F(4×4), 0.9–1.0× for F(2×2)). Keeping the images
innermost makes those products (α × images·C) rather than (α × C): at C = 16 the passes took 0.6–0.7× the
time, at C ≥ 64 the same within 5 %.

Backward: the input gradient is this forward algorithm applied to dout padded by 2 − pad with the kernel
rotated by 180° and its channels swapped; the weight gradient is computed in the Winograd domain,
dU[p] = Σ_tiles V[p]ᵀ·(A dY Aᵀ)[p], then dw = Gᵀ dU G.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .conv import column_sums, workspace
from .epilogue import bias_activation
from .parallel import for_parts
from .winograd_transforms import MATRICES, check_m, filter_transform, filter_transform_transposed

CHUNK_BYTES = 3 << 20  # a chunk's transformed input and output, V and M


def _chunk_tiles(alpha: int, c: int, f: int, itemsize: int) -> int:
    """Tiles per chunk: V and M within CHUNK_BYTES (F(4×4) 64→64 @ 32×32 measured 1.5× faster at 192 tiles
    than at 1024), but at least C·F/128 so that each product's packing of U[p] (C × F) stays small next to
    its multiply (256→256 by F(2×2) measured 15 % slower at 128 tiles than at 512)."""
    return max(1, CHUNK_BYTES // (alpha * alpha * (c + f) * itemsize), c * f // 128)


def _chunks(n0: int, n1: int, r0: int, r1: int, tw: int, tiles: int):
    """Chunks (n0, n1, r0, r1) — images [n0, n1), tile rows [r0, r1) — of about `tiles` tiles covering the
    given rectangle: groups of whole images, or bands of tile rows of one image."""
    rows = r1 - r0
    if rows * tw <= tiles:
        per = max(1, tiles // (rows * tw))
        count = -(-(n1 - n0) // per)
        per = -(-(n1 - n0) // count)  # equal chunks
        for a in range(n0, n1, per):
            yield a, min(a + per, n1), r0, r1
    else:
        k = max(1, tiles // tw)
        for a in range(n0, n1):
            for ra in range(r0, r1, k):
                yield a, a + 1, ra, min(ra + k, r1)


def _split(n: int, th: int, fn, nbytes: int) -> list:
    """fn(n0, n1, r0, r1) on one part of the (images × tile rows) grid per thread: the images are split, or
    for a single image its tile rows."""
    if n > 1:
        return for_parts(lambda s: fn(s.start, s.stop, 0, th), n, nbytes)
    return for_parts(lambda s: fn(0, 1, s.start, s.stop), th, nbytes)


def _pad_copy(src, name, n0, n1, row0, rows, cols, pad):
    """(rows, cols, n1 − n0, C) copy of src[n0:n1] (N, H, W, C), images inside the pixels:
    [i, j, k] = src[n0 + k, row0 + i − pad, j − pad], zero outside src."""
    _, h, w, c = src.shape
    p = workspace(name, (rows, cols, n1 - n0, c), src.dtype)
    top = row0 - pad  # src row of row 0
    i0, i1 = max(0, -top), max(0, min(rows, h - top))
    j0, j1 = pad, max(pad, min(cols, w + pad))
    p[:i0] = 0
    p[i1:] = 0
    p[i0:i1, :j0] = 0
    p[i0:i1, j1:] = 0
    if i1 > i0 and j1 > j0:
        np.copyto(p[i0:i1, j0:j1], src[n0:n1, top + i0:top + i1, :j1 - pad].transpose(1, 2, 0, 3))
    return p


def _transform_rows(mat, p, m, tr, out):
    """out (tr, a, cols, images·C) = mat (a × k) applied along the rows of p (rows, cols, images, C) to each
    tile row r's k rows m·r … m·r + k − 1: one (a × k)·(k × images·C) product per tile row and column."""
    k = mat.shape[1]
    rs, isz = p.strides[0], p.itemsize
    cols, l = p.shape[1], p.shape[2] * p.shape[3]
    view = as_strided(p, (tr, cols, k, l), (m * rs, l * isz, rs, isz), writeable=False)
    np.matmul(mat, view, out=out.transpose(0, 2, 1, 3))


def _transform_cols(mat, z, m, tw, out):
    """out (a, b, tr, tw, images·C) = mat (b × k) applied along the columns of z (tr, a, cols, images·C) to
    each tile column s's k columns m·s …: one product per tile row, row position a and tile column."""
    tr, a, _, l = z.shape
    k = mat.shape[1]
    isz = z.itemsize
    zs = z.strides
    view = as_strided(z, (tr, a, tw, k, l), (zs[0], zs[1], m * l * isz, l * isz, isz), writeable=False)
    np.matmul(mat, view, out=out.reshape(a, mat.shape[0], tr, tw, l).transpose(2, 0, 3, 1, 4))


def _input_transform(x, bt, chunk, tw, pad, m):
    """V (α², tiles, C) = Bᵀ d B of the chunk's input tiles, tile order (tile row, tile column, image)."""
    n0, n1, r0, r1 = chunk
    alpha, nc, tr, c = m + 2, n1 - n0, r1 - r0, x.shape[3]
    wp = m * tw + 2
    p = _pad_copy(x, "wg_p", n0, n1, m * r0, m * tr + 2, wp, pad)
    z = workspace("wg_z", (tr, alpha, wp, nc * c), x.dtype)
    _transform_rows(bt, p, m, tr, z)
    v = workspace("wg_v", (alpha, alpha, tr, tw, nc, c), x.dtype)
    _transform_cols(bt, z, m, tw, v)
    return v.reshape(alpha * alpha, tr * tw * nc, c)


def _output_transform(mm, at, out, chunk, tw, m):
    """Write the chunk's output tiles Aᵀ M A into out (N, Ho, Wo, F); M (α², tiles, F)."""
    n0, n1, r0, r1 = chunk
    alpha, nc, tr, f, isz = m + 2, n1 - n0, r1 - r0, mm.shape[2], mm.itemsize
    t = nc * tr * tw
    s = workspace("wg_s", (alpha, m, t, f), mm.dtype)
    step, lb = t * f * isz, tw * nc * f
    # along the columns, per row position and tile row: (m × α)·(α × tw·images·F)
    m_rows = as_strided(mm, (alpha, tr, alpha, lb), (alpha * step, lb * isz, step, isz), writeable=False)
    np.matmul(at, m_rows, out=as_strided(s, (alpha, tr, m, lb), (m * step, lb * isz, step, isz)))
    # along the rows, per tile and output column j: (m × α)·(α × F), written to the output's rows
    ho, wo = out.shape[1], out.shape[2]
    whole = m * r1 <= ho and m * tw <= wo
    o = out[n0:n1, m * r0:] if whole else workspace("wg_y", (nc, m * tr, m * tw, f), out.dtype)
    s_cols = as_strided(s, (tr, tw, nc, m, alpha, f), (tw * nc * f * isz, nc * f * isz, f * isz, step, m * step, isz),
                        writeable=False)
    so = o.strides
    np.matmul(at, s_cols, out=as_strided(o, (tr, tw, nc, m, m, f), (m * so[1], m * so[2], so[0], so[2], so[1], so[3])))
    if not whole:  # ragged edge: crop the computed tiles
        k = min(m * tr, ho - m * r0)
        np.copyto(out[n0:n1, m * r0:m * r0 + k], o[:, :k, :wo])


def _output_transform_transposed(dout, a, chunk, tw, m):
    """dM (α², tiles, F) = A dY Aᵀ of the chunk's output-gradient tiles (zero beyond the output's edge)."""
    n0, n1, r0, r1 = chunk
    alpha, nc, tr, f = m + 2, n1 - n0, r1 - r0, dout.shape[3]
    q = _pad_copy(dout, "wg_q", n0, n1, m * r0, m * tr, m * tw, 0)
    e = workspace("wg_e", (tr, alpha, m * tw, nc * f), dout.dtype)
    _transform_rows(a, q, m, tr, e)
    dm = workspace("wg_dm", (alpha, alpha, tr, tw, nc, f), dout.dtype)
    _transform_cols(a, e, m, tw, dm)
    return dm.reshape(alpha * alpha, tr * tw * nc, f)


def _geometry(h: int, w: int, pad: int, m: int):
    """(Ho, Wo, tile rows, tile columns)."""
    if pad not in (0, 1, 2):
        raise ValueError(f"Winograd convolution: pad must be 0, 1 or 2, got {pad!r}")
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    if ho < 1 or wo < 1:
        raise ValueError(f"Winograd convolution: the 3×3 kernel is larger than the padded input "
                         f"{h + 2 * pad}×{w + 2 * pad}")
    return ho, wo, -(-ho // m), -(-wo // m)


def winograd_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pad: int = 1, m: int = 2,
                     u: np.ndarray | None = None, act=None):
    """Returns (out (N, Ho, Wo, F), cache). `u`: the filter transform `filter_transform(w, m)`, when the
    caller keeps it between calls (inference); computed here otherwise. `act`: an activation applied to each
    chunk's output rows right after its output transform (`kernels.epilogue`; inference only)."""
    check_m(m)
    n, h, wd, c = x.shape
    if w.ndim != 4 or w.shape[:3] != (3, 3, c):
        raise ValueError(f"Winograd convolution: weight must be (3, 3, {c}, F) for input {x.shape}, got {w.shape}")
    f, alpha = w.shape[3], m + 2
    ho, wo, th, tw = _geometry(h, wd, pad, m)
    if u is None:
        u = filter_transform(w, m)
    elif u.shape != (alpha * alpha, c, f):
        raise ValueError(f"Winograd convolution: filter transform must be ({alpha * alpha}, {c}, {f}), got {u.shape}")
    at, _, bt = MATRICES[m]
    at, bt = at.astype(x.dtype), bt.astype(x.dtype)
    out = np.empty((n, ho, wo, f), dtype=x.dtype)
    tiles = _chunk_tiles(alpha, c, f, x.itemsize)

    def part(n0, n1, r0, r1):
        for chunk in _chunks(n0, n1, r0, r1, tw, tiles):
            v = _input_transform(x, bt, chunk, tw, pad, m)
            mm = workspace("wg_m", (alpha * alpha, v.shape[1], f), x.dtype)
            np.matmul(v, u, out=mm)
            if b is not None:
                mm[alpha + 1] += b  # position (1, 1): Aᵀ's column 1 is all ones, so b reaches every output
            _output_transform(mm, at, out, chunk, tw, m)
            if act is not None:  # the chunk's rows (m·r0 … m·r1, cut at Ho) are still in cache
                bias_activation(out[chunk[0]:chunk[1], m * chunk[2]:m * chunk[3]], None, act)

    _split(n, th, part, x.nbytes + out.nbytes)
    return out, (x, w, b is not None, pad, m)


def winograd_backward(dout: np.ndarray, cache, need_dx: bool = True):
    """Returns (dx (N, H, W, C) or None when not `need_dx`, dw (3, 3, C, F), db (F,) or None)."""
    x, w, has_bias, pad, m = cache
    db = column_sums(dout.reshape(-1, dout.shape[3])) if has_bias else None
    dw = winograd_weight_grad(x, dout, pad, m)
    dx = winograd_input_grad(dout, w, pad, m) if need_dx else None
    return dx, dw, db


def winograd_input_grad(dout: np.ndarray, w: np.ndarray, pad: int, m: int) -> np.ndarray:
    """dx (N, H, W, C) of a convolution with weight w (3, 3, C, F) and `pad`, from dout (N, Ho, Wo, F): the full
    correlation of dout with the rotated, channel-swapped kernel, by F(m×m, 3×3) (any m: see `choose`)."""
    w_rot = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
    return winograd_forward(dout, w_rot, None, 2 - pad, m)[0]


def winograd_weight_grad(x: np.ndarray, dout: np.ndarray, pad: int, m: int) -> np.ndarray:
    """dw (3, 3, C, F) = Gᵀ [Σ_tiles V[p]ᵀ·(A dY Aᵀ)[p]] G from x (N, H, W, C) and dout (N, Ho, Wo, F)."""
    check_m(m)
    at, _, bt = MATRICES[m]
    a, bt = np.ascontiguousarray(at.T, dtype=x.dtype), bt.astype(x.dtype)
    alpha, c, f = m + 2, x.shape[3], dout.shape[3]
    n, ho, wo, _ = dout.shape
    if _geometry(x.shape[1], x.shape[2], pad, m)[:2] != (ho, wo):
        raise ValueError(f"Winograd weight gradient: dout {dout.shape} does not match input {x.shape} with pad {pad}")
    th, tw = -(-ho // m), -(-wo // m)
    tiles = _chunk_tiles(alpha, c, f, x.itemsize)

    def part(n0, n1, r0, r1):
        du = None
        for chunk in _chunks(n0, n1, r0, r1, tw, tiles):
            v = _input_transform(x, bt, chunk, tw, pad, m)
            dm = _output_transform_transposed(dout, a, chunk, tw, m)
            if du is None:  # the part's own sum, not a workspace: it outlives the part
                du = np.matmul(v.transpose(0, 2, 1), dm)
            else:
                du += np.matmul(v.transpose(0, 2, 1), dm, out=workspace("wg_du", du.shape, x.dtype))
        return du

    parts = _split(n, th, part, x.nbytes + dout.nbytes)
    du = parts[0]
    for p in parts[1:]:
        du += p
    return filter_transform_transposed(du, m)


def applicable(kh: int, kw: int, stride: int, pad: int, h: int, w: int) -> bool:
    """Whether Winograd F(m×m, 3×3) computes this convolution: a 3×3 kernel, stride 1, padding ≤ 2, a
    non-empty output."""
    return kh == kw == 3 and stride == 1 and pad in (0, 1, 2) and min(h, w) + 2 * pad - 2 >= 1


def choose(n: int, h: int, w: int, c: int, f: int, *, kernel: int = 3, stride: int = 1, pad: int = 1,
           which: str = "all", force: bool = False) -> str:
    """The algorithm for a convolution of x (N, H, W, C) to F channels: "im2col", "winograd2" (F(2×2, 3×3))
    or "winograd4" (F(4×4, 3×3)); `which` pass: "fwd", "dx" (`winograd_input_grad`), "dw"
    (`winograd_weight_grad`), or "all" for one choice that suits all three.

    Read off bench/winograd.py (batch 128, 1 thread, AMD EPYC with OpenBLAS 0.3.31's SkylakeX kernels, same
    order with its Haswell kernels; ms per pass; errors are max|y − y64| / max|y64| on ReLU activations,
    over several seeds):

    - Winograd needs 3×3, stride 1, and sums over enough channels: below C = 24 its transforms cost more than
      the small GEMMs they save (3→64 @ 32×32: forward 15.9 ms by im2col, 19.6 by F(4×4), 29.4 by F(2×2);
      16→32 @ 16×16, every pass: F(4×4) 0.72–0.98× im2col's speed, F(2×2) 0.67–0.76×). F(2×2) also needs
      F ≥ 32 outputs and C ≥ 32 (24→64 @ 31×31, batch 128 and 1024, 1 and 2 threads: F(2×2) 0.47–0.92× im2col
      in every pass, F(4×4) 1.1–1.4× in forward and dx; 32→16 @ 16×16: F(2×2) 0.68–0.76×).
    - Accuracy, on real activations (bench/accuracy.py: the reference net and fast_cifar after 150 steps on
      CIFAR-10, every 3×3 layer's input, weights and output gradient): F(2×2)'s float32 error is 0.2–2.5×
      im2col's. F(4×4)'s grows with the length of the sums in its products: forward 1.0–3.6× for C ≤ 128,
      3.6–4.8× at C = 256 (8×8 and 4×4 maps); dw 0.4–2.3× for any C; dx (sums over F) 2.6–4.1× at F = 64,
      1.5–6.4× at F = 128, but 5.7–9.8× at F = 256. On random ReLU data (bench/winograd.py) the same passes are
      worse — forward 4–9.5× (12.8× for 256 channels on 4×4 maps), dx 8–10× at F = 128, dw 16× at C = 16 —
      and on the small trained digits net of tests/test_winograd_accuracy.py forward reaches 7.9× at C = 128
      and 9.75× at C = 256 with OpenBLAS's Haswell kernels. So F(4×4) is used for forward with C ≤ 128, dx
      with F ≤ 128 and dw with 32 ≤ C ≤ 256 (all three: 32 ≤ C ≤ 128, F ≤ 128), which keeps every pass
      within 10× of im2col on real activations, with a margin.
    - Speed. Where both are accurate F(4×4) beats F(2×2) if its products are at most ¾ of F(2×2)'s (not for
      2×2, 5×5, 6×6 or 9×9 outputs, mostly padding) and it has at least 64 tiles: 64→64 @ 32×32 forward
      64 ms vs 114 by F(2×2), 191 by im2col, 117 by PyTorch; 64→128 @ 16×16 dw 30 vs 49, 67, 49.
      F(2×2) is 1.4–2× faster than im2col at 16–512 channels (128→128 @ 16×16 forward 78 vs 134 ms,
      PyTorch 88; 512→512 @ 2×2 22 vs 27; 64→64 @ 2×2 0.5 vs 0.5), unless the work cannot pay for the
      filter transforms and the packing of U per chunk (about 50 tiles' worth of products): fewer than 96
      tiles (one 8×8×256 image: 3.8 ms vs 1.4 by im2col; two 14×14×256 images, 98 tiles: 4.1 vs 5.2).
    """
    if not applicable(kernel, kernel, stride, pad, h, w):
        return "im2col"
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    if which == "fwd":
        return _pick(n, ho, wo, c, f, c <= 128, force)
    if which == "dx":  # a convolution of dout (N, Ho, Wo, F) to C channels, output H×W
        return _pick(n, h, w, f, c, f <= 128, force)
    if which == "dw":
        return _pick(n, ho, wo, c, f, 32 <= c <= 256, force)
    if which == "all":
        return _pick(n, ho, wo, c, f, 32 <= c <= 128 and f <= 128, force)
    raise ValueError(f"choose: which must be 'fwd', 'dx', 'dw' or 'all', got {which!r}")


def _pick(n: int, ho: int, wo: int, c: int, f: int, f4_accurate: bool, force: bool = False) -> str:
    """The fastest algorithm for products (tiles × c)·(c × f) over an output (n, ho, wo); see `choose`.
    `force`: a Winograd variant even where im2col would be faster (F(4×4) where accurate and not mostly padding)."""
    if force:
        return "winograd4" if f4_accurate and 36 * -(-ho // 4) * -(-wo // 4) <= 12 * -(-ho // 2) * -(-wo // 2) \
            else "winograd2"
    if c < 24:
        return "im2col"
    tiles2 = n * -(-ho // 2) * -(-wo // 2)
    tiles4 = n * -(-ho // 4) * -(-wo // 4)
    if f4_accurate and 36 * tiles4 <= 0.75 * 16 * tiles2 and tiles4 >= 64:
        return "winograd4"
    if tiles2 >= 96 and min(c, f) >= 32:
        return "winograd2"
    return "im2col"
