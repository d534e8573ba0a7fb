"""Conv2d: the notes' convolutional layer on NHWC images."""

from __future__ import annotations

import numpy as np

from ..kernels.conv import (
    column_sums,
    conv2d_backward,
    conv2d_forward,
    conv2d_input_grad,
    conv2d_weight_grad,
    pad_nhwc,
)
from ..kernels.conv_algorithm import select
from ..kernels.window import check_rounding, output_size, overhang
from ..kernels.winograd import winograd_forward, winograd_input_grad, winograd_weight_grad
from ..kernels.winograd_transforms import filter_transform
from . import init as initializers
from .module import Module, Parameter


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


class Conv2d(Module):
    """x: (N, H, W, C_in) → (N, Ho, Wo, C_out). weight (KH, KW, C_in, C_out), bias (C_out,).

    Cross-correlation without kernel flip; Ho = (H + 2P − KH) / S + 1 must be an integer, unless
    `rounding="floor"` (PyTorch's rule, for porting nets): then Ho = ⌊(H + 2P − KH) / S⌋ + 1 and the last
    rows and columns of the padded input that no window reaches are left out (`kernels.window`).

    Each pass (forward, input gradient, weight gradient) is computed by the algorithm
    `kernels.conv_algorithm.select` picks for its shape: im2col + GEMM, or Winograd for 3×3 stride 1
    (`st.set_conv_algorithm`, `STRIATE_CONV_ALGO`). `algorithms` holds the last choice per pass.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int = 0, bias: bool = True, *, init="he", bias_init="zeros", rounding: str = "strict",
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.rounding = check_rounding(rounding, ("strict", "floor"), "Conv2d")
        kh, kw = _pair(kernel_size)
        if min(in_channels, out_channels, kh, kw, stride) < 1 or padding < 0:
            raise ValueError(f"Conv2d: bad configuration in={in_channels} out={out_channels} "
                             f"kernel={kernel_size} stride={stride} padding={padding}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = (kh, kw), int(stride), int(padding)
        rng = rng if rng is not None else np.random.default_rng()
        self.weight = Parameter(initializers.get(init)((kh, kw, in_channels, out_channels), rng, dtype))
        self.bias = Parameter(initializers.get(bias_init)((out_channels,), rng, dtype)) if bias else None

    def forward(self, x):
        self._check_input(x, 4, self.in_channels, "N, H, W, C")
        w, b = self.weight.data, None if self.bias is None else self.bias.data
        y, x, xp, pad, framed = self._convolve(x, w, b, None, None if self.training else self._eval_transform)
        self._save((x, xp, w, pad, framed), y)
        return y

    def fused_forward(self, x, w, b, act, transform):
        """act(conv(x, w) + b) in one output pass with this layer's geometry, for the inference graph
        (`nn.folding`): `w`, `b` its folded weights, `act` as `kernels.epilogue` takes it, `transform(w, m)` the
        kept Winograd filter transform. Keeps no cache."""
        self._check_input(x, 4, self.in_channels, "N, H, W, C")
        return self._convolve(x, w, b, act, transform)[0]

    def _convolve(self, x, w, b, act, transform):
        """(y, x, xp, pad, framed): the output, the input (the padded copy's interior when there is one), the
        padded input or None, the padding used and the input shape when floor rounding cut the padded input."""
        _, ho, wo, _ = self.output_shape(x.shape)
        stride, pad, framed = self.stride, self.padding, None
        (kh, kw), (_, h, wd, _) = self.kernel_size, x.shape
        cut = (-overhang(h, kh, stride, pad, ho), -overhang(wd, kw, stride, pad, wo))
        if any(cut):  # floor rounding: convolve the padded input without the rows no window reaches
            framed, pad = x.shape, 0
            x = np.ascontiguousarray(pad_nhwc(x, self.padding)[:, :h + 2 * self.padding - cut[0],
                                                                :wd + 2 * self.padding - cut[1]])

        def run(algo):
            if algo == "im2col":
                y, (xp, *_) = conv2d_forward(x, w, b, stride, pad, act)
                return y, xp
            m = int(algo[-1])
            return winograd_forward(x, w, b, pad, m, None if transform is None else transform(w, m), act)[0], None

        algo, done = select("fwd", x.shape, w.shape, stride, pad, x.dtype, run)
        y, xp = done if done is not None else run(algo)
        object.__setattr__(self, "algorithms", {"fwd": algo})
        if xp is not None and pad:  # keep the padded copy only: x is its interior (one activation, not two)
            x = xp[:, pad:pad + x.shape[1], pad:pad + x.shape[2]]
        return y, x, xp, pad, framed

    def backward(self, dy):
        x, xp, w, pad, framed = self._saved(dy)
        dx = self._backward(dy, x, xp, w, pad)
        if dx is not None and framed is not None:  # back from the cut padded input to the layer's input
            p = self.padding
            full = np.zeros((framed[0], framed[1] + 2 * p, framed[2] + 2 * p, framed[3]), dtype=dx.dtype)
            full[:, :dx.shape[1], :dx.shape[2]] = dx
            dx = np.ascontiguousarray(full[:, p:p + framed[1], p:p + framed[2]])
        return dx

    def _backward(self, dy, x, xp, w, pad):
        (kh, kw), stride, need_dx = self.kernel_size, self.stride, self.requires_input_grad
        algos = self.__dict__.setdefault("algorithms", {})
        direct = stride == 1 and pad <= min(kh, kw) - 1 or kh == kw == 1 and stride == 1
        dw = None
        if not self.weight.requires_grad:  # a frozen kernel (PatchWhitening, freeze()): no weight gradient
            if need_dx and direct:
                dx = self._selected_input_grad(x, w, dy, pad)
            elif need_dx:
                algos["dx"] = "im2col"
                dx = conv2d_backward(dy, (self._padded(x, xp, pad), w, False, stride, pad, x.shape), True)[0]
            else:
                dx = None
        elif not direct:
            # strided (or over-padded): im2col only, dx and dw sharing each chunk's column matrix
            dx, dw, _ = conv2d_backward(dy, (self._padded(x, xp, pad), w, False, stride, pad, x.shape), need_dx)
            algos.update(dw="im2col", **({"dx": "im2col"} if need_dx else {}))
        else:
            algos["dw"], dw = select("dw", x.shape, w.shape, stride, pad, x.dtype,
                                     lambda a: self._weight_grad(a, x, xp, dy, pad))
            if dw is None:
                dw = self._weight_grad(algos["dw"], x, xp, dy, pad)
            dx = self._selected_input_grad(x, w, dy, pad) if need_dx else None
        if dw is not None:
            self.weight.accumulate(dw)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate(column_sums(dy.reshape(-1, dy.shape[3])))
        return dx

    def _selected_input_grad(self, x, w, dy, pad):
        """dx by the algorithm `select` picks for this shape (stride 1, pad ≤ K − 1, or 1×1)."""
        algos = self.algorithms
        algos["dx"], dx = select("dx", x.shape, w.shape, self.stride, pad, x.dtype,
                                 lambda a: self._input_grad(a, x, w, dy, pad))
        return dx if dx is not None else self._input_grad(algos["dx"], x, w, dy, pad)

    def _eval_transform(self, w, m: int):
        """The Winograd filter transform of `w`, kept between eval-mode calls while the weights stay equal
        (checked against a copy: an optimizer changes weights in place)."""
        kept = self.__dict__.get("_winograd_u")
        if kept is None or kept[0] != m or kept[1].dtype != w.dtype or not np.array_equal(kept[1], w):
            kept = (m, w.copy(), filter_transform(w, m))
            object.__setattr__(self, "_winograd_u", kept)
        return kept[2]

    @staticmethod
    def _padded(x, xp, pad):
        return xp if xp is not None else pad_nhwc(x, pad)

    def _weight_grad(self, algo, x, xp, dy, pad):
        if algo == "im2col":
            kh, kw = self.kernel_size
            return conv2d_weight_grad(self._padded(x, xp, pad), dy, kh, kw, self.stride)
        return winograd_weight_grad(x, dy, pad, int(algo[-1]))

    def _input_grad(self, algo, x, w, dy, pad):
        if algo == "im2col":
            return conv2d_input_grad(dy, w, self.stride, pad, x.shape)
        return winograd_input_grad(dy, w, pad, int(algo[-1]))

    def output_shape(self, input_shape):
        n, h, w, _ = shape = self._input_shape(input_shape, 4, self.in_channels, "N, H, W, C")
        try:
            ho = output_size(h, self.kernel_size[0], self.stride, self.padding, self.rounding)
            wo = output_size(w, self.kernel_size[1], self.stride, self.padding, self.rounding)
        except ValueError as e:
            raise self._error(f"input {shape}: {e}") from None
        return (n, ho, wo, self.out_channels)

    def macs(self, input_shape):
        n, ho, wo, f = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        return n * ho * wo * f * kh * kw * self.in_channels

    def extra_repr(self, groups: int = 1):
        kh, kw = self.kernel_size
        parts = [f"{self.in_channels * groups}→{self.out_channels * groups}", f"{kh}×{kw}"]
        parts += [f"groups={groups}"] if groups != 1 else []
        parts += [f"stride={self.stride}"] if self.stride != 1 else []
        parts += [f"pad={self.padding}"] if self.padding else []
        parts += ["bias=False"] if self.bias is None else []
        parts += [f"rounding={self.rounding}"] if self.rounding != "strict" else []
        return ", ".join(parts)
