"""The inference graph: each BatchNorm folded into the convolution or Linear before it, and the bias and the
activation after it fused into that layer's output pass, so conv → BatchNorm → ReLU reads and writes its
output once (onnxruntime's and TensorRT's rewrite).

A BatchNorm in eval mode is the per-channel affine map x ↦ s·x + t, s = γ/√(var + ε), t = β − mean·s. After
y = x ∗ w + b it folds into

    w' = w·s (per output channel: the last axis of Conv2d's (KH, KW, C, F) and Linear's (in, out) weights),
    b' = (b − mean)·s + β,

computed in float64 and rounded once to the weights' dtype. A MaxPool2d between the layer and the BatchNorm
(fast_cifar's conv → pool → BN → ReLU) commutes with the map when every s ≥ 0 (max(s·x + t) = s·max(x) + t),
and with any nondecreasing activation, so that block runs as conv' with bias and activation, then the pool.
Fused activations: ReLU, LeakyReLU with slope in [0, 1], Tanh (`kernels.epilogue`).

Two uses:
- automatic: `Sequential.forward` in eval mode inside `no_grad()` runs each block through the layer's
  `fused_forward` (`blocks`). Folded parameters are kept between calls and recomputed when a source array
  changes: optimizers and `load_state_dict` write in place, so each call compares the sources with kept
  copies (one read of the block's weights; Conv2d's Winograd transform is kept the same way). A block holds
  only modules of exactly these classes, in eval mode and without hooks, so training, backward (which needs
  the caches `no_grad` does not keep), subclasses and hooked layers see every layer as it is.
- `fold(net)`: an inference copy with the BatchNorms folded away (Conv2d/Linear with the folded weights and
  a bias; for export). Its layer → activation pairs still fuse when it runs.

Results equal the unfolded model's within float32 rounding: w·s is rounded once, and the sums run over w'.
"""

from __future__ import annotations

import copy

import numpy as np

from ..kernels.winograd_transforms import filter_transform
from .activation import LeakyReLU, ReLU, Tanh
from .conv import Conv2d
from .linear import Linear
from .module import Module, Parameter
from .norm import BatchNorm
from .pool import MaxPool2d


def _plain(m, cls) -> bool:
    """Exactly class `cls` (a subclass may compute differently), in eval mode, without hooks."""
    return type(m) is cls and not m.training and not m.has_hooks()


def activation_of(m) -> tuple[str, float] | None:
    """The epilogue form of activation module `m`, or None when it does not fuse."""
    if _plain(m, ReLU):
        return "relu", 0.0
    if _plain(m, LeakyReLU) and 0.0 <= m.negative_slope <= 1.0:
        return "leaky_relu", m.negative_slope
    if _plain(m, Tanh):
        return "tanh", 0.0
    return None


def match(layers: list[Module], i: int):
    """(layer, pool, bn, act, stop) for the block that starts at layers[i] and ends before layers[stop]:
    a Conv2d or Linear, then a MaxPool2d (convolutions, when a BatchNorm or activation follows it), a
    BatchNorm of the layer's width, an activation (`activation_of`) — at least one of the last two. None
    where no block starts."""
    layer, n = layers[i], len(layers)
    if not (_plain(layer, Conv2d) or _plain(layer, Linear)):
        return None
    width = layer.out_channels if type(layer) is Conv2d else layer.out_features
    j, pool, bn, act = i + 1, None, None, None

    def is_bn(k):
        return k < n and _plain(layers[k], BatchNorm) and layers[k].num_features == width

    if type(layer) is Conv2d and j < n and _plain(layers[j], MaxPool2d) and (
            is_bn(j + 1) or j + 1 < n and activation_of(layers[j + 1])):
        pool, j = layers[j], j + 1
    if is_bn(j):
        bn, j = layers[j], j + 1
    if j < n:
        act = activation_of(layers[j])
        j += act is not None
    return None if bn is None and act is None else (layer, pool, bn, act, j)


def fold_batchnorm(w: np.ndarray, b: np.ndarray | None, bn: BatchNorm) -> tuple[np.ndarray, np.ndarray, bool]:
    """(w', b', every s ≥ 0) of layer weights w (..., F) and bias b (F,) or None followed by `bn` (formulas in
    the module docstring)."""
    s = bn.gamma.data.astype(np.float64) / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
    b64 = np.zeros(s.shape) if b is None else b.astype(np.float64)
    shift = (b64 - bn.running_mean.astype(np.float64)) * s + bn.beta.data.astype(np.float64)
    return (w.astype(np.float64) * s).astype(w.dtype), shift.astype(w.dtype), bool(np.all(s >= 0))


def _same(arrays: list[np.ndarray], kept: list[np.ndarray]) -> bool:
    """Whether `arrays` equal their `kept` copies in dtype, shape and every value."""
    return len(arrays) == len(kept) and all(
        a.dtype == k.dtype and a.shape == k.shape and np.array_equal(a, k) for a, k in zip(arrays, kept, strict=True))


class Block:
    """One fused block of a Sequential (see `match`), with its folded parameters."""

    def __init__(self, layer, pool, bn, act, stop: int, members: list[Module] = ()):
        self.layer, self.pool, self.bn, self.act, self.stop = layer, pool, bn, act, stop
        self.members = list(members)  # every module of the block, the activation's too
        self.kept: list[np.ndarray] = []
        # (w', b', usable, {m: Winograd transform of w'}); usable False: a negative scale before a pool. One
        # tuple, replaced whole: a thread running the block meanwhile keeps a consistent set
        self.folded: tuple | None = None

    def _sources(self) -> list[np.ndarray]:
        bn, layer = self.bn, self.layer
        out = [layer.weight.data] + ([] if layer.bias is None else [layer.bias.data])
        return out + [bn.gamma.data, bn.beta.data, bn.running_mean, bn.running_var, np.array(bn.eps)]

    def ready(self) -> bool:
        """Refold if a source changed since the last fold; whether the block can run fused."""
        if self.bn is None:
            return True
        now = self._sources()
        if self.folded is None or not _same(now, self.kept):
            bias = None if self.layer.bias is None else self.layer.bias.data
            w, b, positive = fold_batchnorm(self.layer.weight.data, bias, self.bn)
            self.kept = [a.copy() for a in now]
            self.folded = (w, b, positive or self.pool is None, {})
        return self.folded[2]

    def __call__(self, x):
        layer = self.layer
        for m in self.members:  # as if each had run under no_grad: no cache left from an earlier training pass
            m._save(None)
        if self.bn is None:
            w, b = layer.weight.data, None if layer.bias is None else layer.bias.data
            transform = getattr(layer, "_eval_transform", None)
        else:
            w, b, _, kept = self.folded

            def transform(w, m):
                if m not in kept:
                    kept[m] = filter_transform(w, m)
                return kept[m]
        if type(layer) is Linear:
            return layer.fused_forward(x, w, b, self.act)
        y = layer.fused_forward(x, w, b, self.act, transform)
        return y if self.pool is None else self.pool.forward(y)


def blocks(owner: Module, layers: list[Module]) -> dict[int, Block]:
    """{start: Block} of the fused blocks of `layers` (the children of Sequential `owner`) that are ready to
    run; the blocks are kept on `owner` between calls (`forget` drops them)."""
    kept = owner.__dict__.get("_fold_blocks", {})
    now, found, i = {}, {}, 0
    while i < len(layers):
        m = match(layers, i)
        if m is None:
            i += 1
            continue
        key = (i, m[4], m[3]) + tuple(id(part) for part in m[:3])
        block = now[key] = kept.get(key) or Block(*m, members=layers[i:m[4]])
        if block.ready():
            found[i] = block
        i = m[4]
    object.__setattr__(owner, "_fold_blocks", now)
    return found


def forget(owner: Module) -> None:
    """Drop `owner`'s kept blocks (their copies of the weights): training makes them stale anyway."""
    owner.__dict__.pop("_fold_blocks", None)


def fold(net: Module) -> Module:
    """An inference copy of `net` in eval mode with every BatchNorm that `match` pairs with a Conv2d or Linear
    folded into it and removed (the layer gets the folded weights and a bias); activations and pools stay as
    modules. `net` is unchanged. The copy computes the same function within float32 rounding; it is not
    meant for training (its layers' parameters are the folded ones)."""
    from .containers import Sequential  # the containers import this module for `blocks`

    out = copy.deepcopy(net).clear_state().eval()
    for seq in [m for m in out.modules() if isinstance(m, Sequential)]:
        forget(seq)
        layers, keep, i = list(seq), [], 0
        while i < len(layers):
            m = match(layers, i)
            if m is None or m[2] is None:
                keep.append(layers[i])
                i += 1
                continue
            layer, pool, bn, _, stop = m
            bias = None if layer.bias is None else layer.bias.data
            w, b, positive = fold_batchnorm(layer.weight.data, bias, bn)
            if pool is not None and not positive:  # a negative scale does not commute with the max
                keep.append(layers[i])
                i += 1
                continue
            layer.weight.data, layer.weight.grad = w, np.zeros_like(w)
            layer.bias = Parameter(b)
            keep += [layer] + ([pool] if pool is not None else [])
            keep += layers[i + 2 + (pool is not None):stop]  # the activation, if any
            i = stop
        seq.relist(keep)
    return out
