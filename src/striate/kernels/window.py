"""The output size of a sliding window (convolution or pooling) along one axis, and how the window's last
position is rounded when the input is not tiled exactly.

    span = size + 2·pad − kernel,   out = span / stride + 1

- "strict" (default, the notes' rule): span must be a multiple of the stride, else ValueError — a layer that
  would silently drop rows is a design error in a net built from scratch;
- "floor" (PyTorch's default, for porting nets): ⌊span / stride⌋ + 1; the last rows that no window reaches
  are left out;
- "ceil" (PyTorch's ceil_mode, pooling only): ⌈span / stride⌉ + 1, less one when the last window would
  start past the input and its left padding (PyTorch's rule); the last window hangs over the edge and
  sees only the elements inside.
"""

from __future__ import annotations

ROUNDINGS = ("strict", "floor", "ceil")


def check_rounding(rounding: str, allowed=ROUNDINGS, layer: str = "") -> str:
    if rounding not in allowed:
        raise ValueError(f"{layer + ': ' if layer else ''}rounding must be one of {', '.join(allowed)}; "
                         f"got {rounding!r}")
    return rounding


def output_size(size: int, kernel: int, stride: int, pad: int = 0, rounding: str = "strict") -> int:
    """Positions of a window of `kernel` moving by `stride` over `size` + 2·`pad`; ValueError when it does not
    fit, or (strict) when it does not tile the input."""
    span = size + 2 * pad - kernel
    if span < 0:
        where = f"the padded input {size + 2 * pad}" if pad else f"the input {size}"
        raise ValueError(f"kernel {kernel} is larger than {where}")
    if rounding == "ceil":
        out = -(-span // stride) + 1
        return out - 1 if (out - 1) * stride >= size + pad else out
    if span % stride and rounding == "strict":
        formula = (f"(size + 2·pad − kernel) / stride + 1 = ({size} + 2·{pad} − {kernel}) / {stride} + 1" if pad
                   else f"(size − kernel) / stride + 1 = ({size} − {kernel}) / {stride} + 1")
        raise ValueError(f"{formula} is not an integer: the windows do not tile the input "
                         "(rounding='floor' leaves the last rows out, as PyTorch does)")
    return span // stride + 1


def overhang(size: int, kernel: int, stride: int, pad: int, out: int) -> int:
    """Rows the `out` windows reach beyond the padded input (> 0 with ceil) or leave unreached at its end
    (< 0 with floor): (out − 1)·stride + kernel − (size + 2·pad)."""
    return (out - 1) * stride + kernel - (size + 2 * pad)
