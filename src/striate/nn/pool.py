"""Pooling layers on NHWC images: MaxPool2d, AvgPool2d, GlobalAvgPool2d, FractionalMaxPool2d.

None has parameters or buffers; pooling has no multiply-accumulates, so `macs` is 0.
"""

from __future__ import annotations

import numpy as np

from ..kernels.keyed_random import layer_random
from ..kernels.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    fractional_boundaries,
    fractional_max_pool2d_backward,
    fractional_max_pool2d_forward,
    fractional_output_size,
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from ..kernels.window import check_rounding, output_size, overhang
from .module import Module, grad_enabled


def _pair(v, name: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, int | np.integer) else v
    if int(a) < 1 or int(b) < 1:
        raise ValueError(f"{name} must be positive, got {v!r}")
    return int(a), int(b)


class _WindowPool2d(Module):
    """Shared configuration of the fixed-window pools (kernel, stride defaulting to the kernel) and their
    rounding (`kernels.window`): "strict" (the windows must tile the input), "floor" (the last rows no window
    reaches are left out) or "ceil" (PyTorch's ceil_mode: the last window hangs over the edge and pools the
    elements inside it)."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None, *,
                 rounding: str = "strict"):
        super().__init__()
        self.kernel_size = _pair(kernel_size, f"{type(self).__name__} kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, f"{type(self).__name__} stride")
        self.rounding = check_rounding(rounding, layer=type(self).__name__)

    def _check(self, x) -> None:
        self._check_input(x, 4, None, "N, H, W, C")
        self.output_shape(x.shape)

    def output_shape(self, input_shape):
        n, h, w, c = shape = self._input_shape(input_shape, 4, None, "N, H, W, C")
        try:
            ho = output_size(h, self.kernel_size[0], self.stride[0], 0, self.rounding)
            wo = output_size(w, self.kernel_size[1], self.stride[1], 0, self.rounding)
        except ValueError as e:
            raise self._error(f"input {shape}: {e}") from None
        return (n, ho, wo, c)

    def _overhang(self, shape) -> tuple[int, int]:
        """Rows and columns the windows reach past the input (ceil, > 0) or leave out (floor, < 0)."""
        _, ho, wo, _ = self.output_shape(shape)
        return (overhang(shape[1], self.kernel_size[0], self.stride[0], 0, ho),
                overhang(shape[2], self.kernel_size[1], self.stride[1], 0, wo))

    def _fit(self, x, fill):
        """x cut or extended (with `fill`) to the size the windows tile; x itself when they already do."""
        dh, dw = self._overhang(x.shape)
        if dh == dw == 0:
            return x
        n, h, w, c = x.shape
        if dh <= 0 and dw <= 0:
            return np.ascontiguousarray(x[:, :h + dh, :w + dw])
        out = np.full((n, h + dh, w + dw, c), fill, dtype=x.dtype)
        out[:, :min(h, h + dh), :min(w, w + dw)] = x[:, :h + min(dh, 0), :w + min(dw, 0)]
        return out

    @staticmethod
    def _unfit(dx, shape):
        """The gradient of `_fit`: dx (fitted shape) back to the input's shape (zeros where no window reached)."""
        if dx.shape == tuple(shape):
            return dx
        full = np.zeros(shape, dtype=dx.dtype)
        h, w = min(shape[1], dx.shape[1]), min(shape[2], dx.shape[2])
        full[:, :h, :w] = dx[:, :h, :w]
        return full

    def extra_repr(self):
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        rounding = f", rounding={self.rounding}" if self.rounding != "strict" else ""
        return f"{kh}×{kw}, stride={sh if sh == sw else (sh, sw)}{rounding}"


class MaxPool2d(_WindowPool2d):
    """x: (N, H, W, C) → (N, Ho, Wo, C), the max of each KH×KW window; Ho = (H − KH)/S + 1 must be
    an integer (exact tiling, like Conv2d), unless `rounding` is "floor" (PyTorch's default) or "ceil"
    (PyTorch's ceil_mode=True). No padding.

    Forward records the argmax switches (one small integer per output); backward routes each
    gradient to the first maximum of its window (PyTorch's tie rule). Inside `no_grad()` the
    switches are not computed at all.
    """

    def forward(self, x):
        self._check(x)
        cut = self._overhang(x.shape)
        if max(cut) <= 0:  # strict or floor: the kernel leaves out what no window reaches, without a copy
            y, cache = max_pool2d_forward(x, self.kernel_size, self.stride, grad_enabled(), floor=min(cut) < 0)
        else:  # ceil: an overhanging window's outside never wins
            y, cache = max_pool2d_forward(self._fit(x, -np.inf), self.kernel_size, self.stride, grad_enabled())
        self._save(None if cache is None else (cache, x.shape), y)  # no switches under no_grad
        return y

    def backward(self, dy):
        cache, shape = self._saved(dy)
        return self._unfit(max_pool2d_backward(dy, cache), shape)


class AvgPool2d(_WindowPool2d):
    """x: (N, H, W, C) → (N, Ho, Wo, C), the mean of each KH×KW window (no padding; exact tiling unless
    `rounding` is "floor" or "ceil"; with "ceil" an overhanging window averages the elements inside the input,
    as PyTorch's ceil_mode does)."""

    def forward(self, x):
        self._check(x)
        fitted = self._fit(x, 0)
        y, cache = avg_pool2d_forward(fitted, self.kernel_size, self.stride)
        inside = self._inside(x.shape, x.dtype)
        if inside is not None:
            y *= inside
        self._save((cache, x.shape, inside), y)
        return y

    def backward(self, dy):
        cache, shape, inside = self._saved(dy)
        return self._unfit(avg_pool2d_backward(dy * inside if inside is not None else dy, cache), shape)

    def _inside(self, shape, dtype):
        """(Ho, Wo, 1) factors KH·KW ÷ (elements of each window inside the input) when windows overhang
        (ceil), else None."""
        dh, dw = self._overhang(shape)
        if dh <= 0 and dw <= 0:
            return None
        _, ho, wo, _ = self.output_shape(shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        rows = np.minimum(np.arange(ho) * sh + kh, shape[1]) - np.arange(ho) * sh
        cols = np.minimum(np.arange(wo) * sw + kw, shape[2]) - np.arange(wo) * sw
        return (kh * kw / np.outer(rows, cols))[:, :, None].astype(dtype)


class GlobalAvgPool2d(Module):
    """x: (N, H, W, C) → (N, C), the mean over all positions (Network in Network, GoogLeNet heads)."""

    def forward(self, x):
        self._check_input(x, 4, None, "N, H, W, C")
        y, cache = global_avg_pool2d_forward(x)
        self._save(cache, y)
        return y

    def backward(self, dy):
        return global_avg_pool2d_backward(dy, self._saved(dy))

    def output_shape(self, input_shape):
        n, _, _, c = self._input_shape(input_shape, 4, None, "N, H, W, C")
        return (n, c)


class FractionalMaxPool2d(Module):
    """Fractional max-pooling (Graham 2014), disjoint pseudorandom regions.

    x: (N, H, W, C) → (N, ⌊H·r⌋, ⌊W·r⌋, C) for output_ratio r ∈ (½, 1) (a float or an (r_h, r_w)
    pair); the output size must be at least half the input. Rows are cut at
    a_i = ⌊α(i + u)⌋ − ⌊αu⌋, α = H / Ho, i = 0 … Ho (the paper's ⌈α(i + u)⌉, which equals this for
    almost every u), so every region is 1 or 2 rows tall and they tile the input; columns likewise
    with an independent u. Computed in exact integers (see `kernels.pool.fractional_boundaries`).

    Training: u is drawn from `rng` on every forward (one draw per axis, shared by the whole batch
    and all channels). Eval: u = ½ on both axes, a fixed deterministic, evenly spread sequence
    (the paper instead averages several random draws at test time; keep training mode for that).
    Backward routes each gradient to its region's first maximum.
    """

    def __init__(self, output_ratio: float | tuple[float, float], rng: np.random.Generator | None = None):
        super().__init__()
        rh, rw = (output_ratio, output_ratio) if np.isscalar(output_ratio) else output_ratio
        if not (0.5 < float(rh) < 1 and 0.5 < float(rw) < 1):
            raise ValueError(f"FractionalMaxPool2d: output_ratio must lie in (0.5, 1), got {output_ratio!r}")
        self.output_ratio = (float(rh), float(rw))
        self.rng = rng if rng is not None else np.random.default_rng()

    def _sizes(self, input_shape):
        n, h, w, c = shape = self._input_shape(input_shape, 4, None, "N, H, W, C")
        try:
            ho = fractional_output_size(h, self.output_ratio[0])
            wo = fractional_output_size(w, self.output_ratio[1])
        except ValueError as e:
            raise self._error(f"input {shape}: {e}") from None
        return n, h, w, c, ho, wo

    def boundaries(self, h: int, w: int, ho: int, wo: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column region boundaries: random in training (consumes `rng`), fixed in eval."""
        if self.training:
            rng = layer_random(self.rng, shared=True)  # one set of regions for the whole batch
            sh, sw = int(rng.integers(h)), int(rng.integers(w))
        else:
            sh, sw = h // 2, w // 2  # s = ⌊n_in · u⌋ with u = ½
        return fractional_boundaries(h, ho, sh), fractional_boundaries(w, wo, sw)

    def forward(self, x):
        self._check_input(x, 4, None, "N, H, W, C")
        _, h, w, _, ho, wo = self._sizes(x.shape)
        rows, cols = self.boundaries(h, w, ho, wo)
        y, cache = fractional_max_pool2d_forward(x, rows, cols, switches=grad_enabled())
        self._save(cache, y)
        return y

    def backward(self, dy):
        return fractional_max_pool2d_backward(dy, self._saved(dy))

    def output_shape(self, input_shape):
        n, _, _, c, ho, wo = self._sizes(input_shape)
        return (n, ho, wo, c)

    def extra_repr(self):
        rh, rw = self.output_ratio
        return f"output_ratio={rh:.3g}" if rh == rw else f"output_ratio=({rh:.3g}, {rw:.3g})"
