"""3×3 stride-1 convolution by Winograd's minimal filtering F(m×m, 3×3), m = 2 or 4 (Lavin & Gray 2016),
on NHWC arrays: all three passes of training.

x: (N, H, W, C), w: (3, 3, C, F), b: (F,) → out: (N, Ho, Wo, F), Ho = H + 2·pad − 2, pad 0, 1 or 2.

The output is cut into m×m tiles (ragged edges are computed on zero padding and cropped). Per chunk of
tiles (images × tile rows, `TILES` tiles): the chunk's padded input is copied once into the layout
(rows, columns, images, C); Bᵀ d B runs along rows then columns as NumPy passes over strided views whose
inner blocks (images·C) are long and contiguous; the α² products (tiles × C)·(C × F) are one batched
`np.matmul` on position-major arrays; Aᵀ M A runs along columns then rows, its last pass writing the
output tiles in place. The chunk's arrays stay in cache between the passes.

Backward: the input gradient is the same forward algorithm applied to dout padded by 2 − pad with the
kernel rotated by 180° and its channels swapped; the weight gradient is computed in the Winograd domain,
dU[a] = Σ_tiles V[a]ᵀ · (A dY Aᵀ)[a], then dw = Gᵀ dU G.
"""

from __future__ import annotations

import numpy as np

from .conv import column_sums, workspace
from .parallel import for_parts
from .winograd_transforms import ROUTINES, check_m, filter_transform, filter_transform_transposed

TILES = 1024  # tiles per chunk


def _chunks(n0: int, n1: int, r0: int, r1: int, tw: int, tiles: int):
    """Rectangles (images [a, b), tile rows [ra, rb)) of about `tiles` tiles covering the given one."""
    rows = r1 - r0
    if rows * tw <= tiles:
        per = max(1, tiles // (rows * tw))
        count = -(-(n1 - n0) // per)
        per = -(-(n1 - n0) // count)  # even chunks
        for a in range(n0, n1, per):
            yield a, min(a + per, n1), r0, r1
    else:
        k = max(1, tiles // tw)
        for a in range(n0, n1):
            for ra in range(r0, r1, k):
                yield a, a + 1, ra, min(ra + k, r1)


def _pad_chunk(src, name, n0, n1, row0, rows, cols, pad):
    """(rows, cols, n1 − n0, C) copy of src[n0:n1] (N, H, W, C) whose element [i, j, k] is
    src[n0 + k, row0 + i − pad, j − pad], zero outside src."""
    _, h, w, c = src.shape
    p = workspace(name, (rows, cols, n1 - n0, c), src.dtype)
    top = row0 - pad                                           # src row of p[0]
    i0, i1 = max(0, -top), max(0, min(rows, h - top))
    j0, j1 = pad, max(pad, min(cols, w + pad))
    p[:i0] = 0
    p[i1:] = 0
    p[i0:i1, :j0] = 0
    p[i0:i1, j1:] = 0
    if i1 > i0 and j1 > j0:
        np.copyto(p[i0:i1, j0:j1], src[n0:n1, top + i0:top + i1, :j1 - pad].transpose(1, 2, 0, 3))
    return p


def _scratch(name, shape, dtype):
    return lambda k: list(workspace(name, (k, *shape), dtype))


def _input_rows(x, n0, n1, r0, r1, tw, pad, m):
    """Bᵀ along the rows of the chunk's tiles: Z (α, rows, m·tw + 2, images, C)."""
    bt, _, _ = ROUTINES[m]
    alpha, nc, tr, c = m + 2, n1 - n0, r1 - r0, x.shape[3]
    p = _pad_chunk(x, "wg_p", n0, n1, m * r0, m * tr + 2, m * tw + 2, pad)
    z = workspace("wg_z", (alpha, tr, m * tw + 2, nc, c), x.dtype)
    bt([p[i:i + m * tr:m] for i in range(alpha)], z, _scratch("wg_t", z.shape[1:], x.dtype))
    return z


def _input_columns(z, a, tw, m):
    """Bᵀ along the columns of row position `a`: V[a] (α, rows·tw·images, C), tile order (row, column,
    image)."""
    bt, _, _ = ROUTINES[m]
    alpha, tr, _, nc, c = z.shape
    v = workspace("wg_v", (alpha, tr, tw, nc, c), z.dtype)
    bt([z[a, :, j:j + m * tw:m] for j in range(alpha)], v, _scratch("wg_t", v.shape[1:], z.dtype))
    return v.reshape(alpha, -1, c)


def _forward_chunk(x, u, b, out, n0, n1, r0, r1, tw, pad, m):
    _, at, _ = ROUTINES[m]
    alpha, nc, tr, f = m + 2, n1 - n0, r1 - r0, u.shape[2]
    ho, wo = out.shape[1], out.shape[2]
    z = _input_rows(x, n0, n1, r0, r1, tw, pad, m)
    mm = workspace("wg_m", (alpha, tr * tw * nc, f), x.dtype)
    s = workspace("wg_s", (alpha, m, tr, tw, nc, f), x.dtype)
    scratch = _scratch("wg_t", (tr, tw, nc, f), x.dtype)
    for a in range(alpha):  # one row of positions at a time: its V and M stay in cache
        np.matmul(_input_columns(z, a, tw, m), u[a * alpha:(a + 1) * alpha], out=mm)
        if a == 1 and b is not None:
            mm[1] += b  # position (1, 1): Aᵀ's column 1 is all ones, so this adds b to every output
        at(mm.reshape(alpha, tr, tw, nc, f), s[a], scratch)
    # output rows m·(r0 + r) + i, columns m·c + j; ragged edges are computed whole and cropped
    views = [[out[n0:n1, m * r0 + i:min(m * r1, ho):m, j:wo:m].transpose(1, 2, 0, 3) for j in range(m)]
             for i in range(m)]
    whole = all(vw.shape[:2] == (tr, tw) for row in views for vw in row)
    for j in range(m):
        if whole:
            at([s[a, j] for a in range(alpha)], [views[i][j] for i in range(m)], scratch)
        else:
            y = workspace("wg_y", (m, tr, tw, nc, f), x.dtype)
            at([s[a, j] for a in range(alpha)], y, scratch)
            for i in range(m):
                kr, kc = views[i][j].shape[:2]
                np.copyto(views[i][j], y[i, :kr, :kc])


def _geometry(h, w, pad, m):
    if pad not in (0, 1, 2):
        raise ValueError(f"Winograd convolution: pad must be 0, 1 or 2, got {pad!r}")
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    if ho < 1 or wo < 1:
        raise ValueError(f"Winograd convolution: the 3×3 kernel is larger than the padded input "
                         f"{h + 2 * pad}×{w + 2 * pad}")
    return ho, wo, -(-ho // m), -(-wo // m)


def _split(n, th, fn, nbytes):
    """Run fn(n0, n1, r0, r1) on parts of the (images × tile rows) grid, one per thread: images are split,
    or for a single image its tile rows."""
    if n > 1:
        return for_parts(lambda s: fn(s.start, s.stop, 0, th), n, nbytes)
    return for_parts(lambda s: fn(0, 1, s.start, s.stop), th, nbytes)


def winograd_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pad: int = 1, m: int = 2,
                     u: np.ndarray | None = None):
    """Returns (out (N, Ho, Wo, F), cache). `u`: the filter transform `filter_transform(w, m)` when the
    caller keeps it (inference); computed here otherwise."""
    check_m(m)
    n, h, wd, c = x.shape
    if w.shape[:2] != (3, 3) or w.shape[2] != c:
        raise ValueError(f"Winograd convolution: weight must be (3, 3, {c}, F) for input {x.shape}, "
                         f"got {w.shape}")
    f = w.shape[3]
    ho, wo, th, tw = _geometry(h, wd, pad, m)
    if u is None:
        u = filter_transform(w, m)
    out = np.empty((n, ho, wo, f), dtype=x.dtype)

    def part(n0, n1, r0, r1):
        for chunk in _chunks(n0, n1, r0, r1, tw, TILES):
            _forward_chunk(x, u, b, out, *chunk, tw, pad, m)

    _split(n, th, part, x.nbytes + out.nbytes)
    return out, (x, w, b is not None, pad, m)


def winograd_backward(dout: np.ndarray, cache, need_dx: bool = True):
    """Returns (dx (N, H, W, C) or None when not `need_dx`, dw (3, 3, C, F), db (F,) or None)."""
    x, w, has_bias, pad, m = cache
    db = column_sums(dout.reshape(-1, dout.shape[3])) if has_bias else None
    dw = _weight_grad(x, dout, pad, m)
    dx = None
    if need_dx:
        w_rot = np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2))
        dx, _ = winograd_forward(dout, w_rot, None, 2 - pad, m)
    return dx, dw, db


def _weight_grad(x, dout, pad, m):
    _, _, a_t = ROUTINES[m]
    alpha, c, f = m + 2, x.shape[3], dout.shape[3]
    n, ho, wo, _ = dout.shape
    th, tw = -(-ho // m), -(-wo // m)

    def part(n0, n1, r0, r1):
        du = np.zeros((alpha * alpha, c, f), dtype=x.dtype)
        for a0, a1, ra, rb in _chunks(n0, n1, r0, r1, tw, TILES):
            nc, tr = a1 - a0, rb - ra
            z = _input_rows(x, a0, a1, ra, rb, tw, pad, m)
            q = _pad_chunk(dout, "wg_q", a0, a1, m * ra, m * tr, m * tw, 0)
            e = workspace("wg_e", (alpha, tr, m * tw, nc, f), x.dtype)
            a_t([q[i::m] for i in range(m)], e, _scratch("wg_t", e.shape[1:], x.dtype))
            dm = workspace("wg_dm", (alpha, tr, tw, nc, f), x.dtype)
            prod = workspace("wg_du", (alpha, c, f), x.dtype)
            scratch = _scratch("wg_t", dm.shape[1:], x.dtype)
            for k in range(alpha):
                a_t([e[k, :, j::m] for j in range(m)], dm, scratch)
                v = _input_columns(z, k, tw, m)
                np.matmul(v.transpose(0, 2, 1), dm.reshape(alpha, -1, f), out=prod)
                du[k * alpha:(k + 1) * alpha] += prod
        return du

    du = sum(_split(n, th, part, x.nbytes + dout.nbytes))
    return filter_transform_transposed(du, m)
