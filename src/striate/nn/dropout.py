"""Regularisation by random masking: Dropout, Dropout2d (whole feature maps) and DropConnect (weights).

p is the probability of DROPPING an element (PyTorch's convention, `torch.nn.Dropout(p)`), not the notes' p,
which is the probability of KEEPING one (their mask `H1 *= rand(*H1.shape) < p`): the notes' p = 0.5 is
this p = 0.5, their p = 0.8 is this p = 0.2. 0 ≤ p ≤ 1 (p = 1 zeroes everything). The repr says it:
`Dropout(p=0.2, drops 20%)`.
Inverted scaling 1/(1 − p) at training time, so evaluation uses the layer unchanged. Masks come from
the module's own generator `rng`, so a seeded generator reproduces them (and gradcheck can replay them) —
except inside a keyed scope (`kernels.keyed_random`: a training run's forward pass), where each sample's
mask is a function of (seed, epoch, sample id), the same whichever process and batch computes it.
"""

from __future__ import annotations

import numpy as np

from ..kernels.dropout import dropout_backward, dropout_forward, dropout_mask
from ..kernels.keyed_random import layer_random
from .linear import Linear
from .module import Module


def _probability(layer: str, p) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{layer}: drop probability p must be in [0, 1], got {p}")
    return p


def _drops(p: float) -> str:
    """'p=0.2, drops 20%': the value and what it means (drop, not keep, as the notes' p would)."""
    return f"p={p}, drops {100 * p:g}%"


class Dropout(Module):
    """Drops each element independently with probability `p` (the drop probability, PyTorch's `p`; the notes'
    keep probability is 1 − p). x: any shape (N, ...) → same shape."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None):
        super().__init__()
        self.p = _probability("Dropout", p)
        self.rng = rng if rng is not None else np.random.default_rng()

    def _check(self, x) -> None:
        if not isinstance(x, np.ndarray):
            raise self._error(f"expected a NumPy array, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise self._error(f"expected a float32 or float64 array, got dtype {x.dtype}")

    def _mask_shape(self, x) -> tuple[int, ...] | None:
        return None

    def forward(self, x):
        self._check(x)
        if not self.training or self.p == 0.0:
            self._save((None,), x)  # no mask: backward is the identity
            return x
        y, mask = dropout_forward(x, self.p, layer_random(self.rng), self._mask_shape(x))
        self._save((mask,), y)
        return y

    def backward(self, dy):
        (mask,) = self._saved(dy)
        return dy if mask is None else dropout_backward(dy, mask)

    def extra_repr(self):
        return _drops(self.p)


class Dropout2d(Dropout):
    """Spatial dropout (Tompson et al. 2015): drops whole feature maps. x: (N, H, W, C); one mask
    entry per (sample, channel), broadcast over H and W — PyTorch's Dropout2d on NCHW."""

    def _check(self, x) -> None:
        super()._check(x)
        if x.ndim != 4:
            raise self._error(f"expected input (N, H, W, C), got {x.shape}")

    def _mask_shape(self, x):
        return (x.shape[0], 1, 1, x.shape[3])

    def output_shape(self, input_shape):
        return self._input_shape(input_shape, 4, None, "N, H, W, C")


class DropConnect(Linear):
    """A Linear layer whose weights are dropped at training time (Wan et al. 2013). x: (N, in) → (N, out).

    Each forward in training draws one mask over the weight matrix (in, out), shared by the batch,
    keeps each weight with probability 1 − p and scales kept weights by 1/(1 − p); the bias is not
    masked. Gradients reach only the kept weights (times the same scale). Evaluation uses the plain
    weight: with inverted scaling that is the mean of the masked layer's pre-activation (the
    mean-field rule, instead of Wan et al.'s Gaussian moment-matching sampler).
    The mask lives in `_mask` from forward to backward (Linear's cache slot holds (x, W_eff)).
    """

    def __init__(self, in_features: int, out_features: int, p: float = 0.5, bias: bool = True, *, init="he",
                 bias_init="zeros", rng: np.random.Generator | None = None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng()
        super().__init__(in_features, out_features, bias, init=init, bias_init=bias_init, rng=rng, dtype=dtype)
        self.p = _probability("DropConnect", p)
        self.rng = rng
        self._mask = None

    def _effective_weight(self):
        w = self.weight.data
        if not self.training or self.p == 0.0:
            self._mask = None
            return w
        self._mask = dropout_mask(w.shape, self.p, layer_random(self.rng, shared=True), w.dtype)
        return w * self._mask

    def _weight_grad(self, dw):
        self.weight.accumulate(dw if self._mask is None else dw * self._mask)

    def extra_repr(self):
        return f"{super().extra_repr()}, {_drops(self.p)}"
