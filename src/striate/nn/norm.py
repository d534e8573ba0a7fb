"""BatchNorm: batch normalisation over every axis but the last ((N, D) features, (N, H, W, C) images)."""

from __future__ import annotations

import weakref

import numpy as np

from ..kernels.norm import (
    batchnorm_backward,
    batchnorm_eval_forward,
    batchnorm_train_forward,
    combine_statistics,
    relu_mask,
)
from .init import filled
from .module import Module, Parameter


class BatchNorm(Module):
    """y = γ·(x − mean)/√(var + eps) + β per channel (last axis); x: (N, C) or (N, H, W, C) (any rank ≥ 2).

    Training normalises with the batch statistics over all leading axes (M = N·H·W values per
    channel, biased variance) and updates the running buffers exactly as PyTorch's BatchNorm1d/2d:
        running_mean ← (1 − momentum)·running_mean + momentum·mean
        running_var  ← (1 − momentum)·running_var  + momentum·var·M/(M − 1)   (unbiased)
    momentum=None uses the cumulative average (factor 1/num_batches_tracked), as PyTorch does.
    Evaluation normalises with the running statistics (an affine map; backward works there too).

    Synchronised (a data-parallel run with sync_bn: `comm` set to the job's communicator): training statistics
    are those of the global batch — every rank's (count, mean, M2) exchanged and combined in rank order — and
    backward sums Σdy and Σdy·x̂ over the ranks (each weighted by its share of the global batch, as the gradient
    averaging weights it), so the result equals one process running the whole batch.
    Parameters `gamma` (init 1), `beta` (init 0); buffers `running_mean` (0), `running_var` (1),
    `num_batches_tracked` (int64 scalar). `scale=False` keeps γ at 1: the parameter stays (state dicts match
    PyTorch's `weight`) but is frozen, also through `unfreeze()` (airbench's BatchNorm). `momentum` is PyTorch's
    (the weight of the new batch): airbench's 0.6 (the weight of the old average, as in Keras) is 0.4 here.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, *, scale: bool = True,
                 dtype=np.float32):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"BatchNorm: num_features must be ≥ 1, got {num_features}")
        if eps <= 0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1] or None, got {momentum}")
        if not isinstance(scale, bool | np.bool_):
            raise ValueError(f"BatchNorm: scale must be true or false, got {scale!r}")
        self.num_features, self.eps = int(num_features), float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.gamma = Parameter(filled(num_features, 1.0, dtype), requires_grad=bool(scale))
        self.fixed_parameters = () if scale else ("gamma",)  # Module.unfreeze keeps a frozen scale frozen
        self.beta = Parameter(filled(num_features, 0.0, dtype))
        self.register_buffer("running_mean", filled(num_features, 0.0, dtype))
        self.register_buffer("running_var", filled(num_features, 1.0, dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def _check(self, x) -> None:
        if isinstance(x, np.ndarray) and x.ndim < 2:
            raise self._error(f"expected input (N, {self.num_features}) or (N, H, W, {self.num_features}), "
                              f"got {x.shape}")
        ndim = x.ndim if isinstance(x, np.ndarray) else 2
        self._check_input(x, ndim, self.num_features, "N, H, W, C" if ndim == 4 else None)

    def forward(self, x):
        return self._forward(x, relu=False)

    def forward_fused_relu(self, x, relu):
        """max(self.forward(x), 0) in one pass, for `Sequential` when this layer is followed by the ReLU module
        `relu`: both layers' caches are set as if each had run (`relu.backward` recomputes its mask from
        this layer's cache), so either may still be used on its own; `backward_fused_relu` is the fused way back."""
        y = self._forward(x, relu=True)
        mask = _FusedMask(self._cache) if self._cache is not None else None
        relu._save(mask, y)
        # weakly: a model whose caches were cleared keeps nothing alive through here
        object.__setattr__(self, "_fused_mask", weakref.ref(mask) if mask is not None else None)
        return y

    def _forward(self, x, relu: bool):
        self._check(x)
        if not self.training:
            y, cache = batchnorm_eval_forward(x, self.gamma.data, self.beta.data, self.running_mean,
                                              self.running_var, self.eps, relu)
            self._save(cache, y)
            return y
        m = x.size // self.num_features
        comm = self.__dict__.get("comm")
        synced = comm is not None and comm.size > 1  # the global batch's count is checked below
        if m < 2 and not synced:
            raise self._error(f"training needs more than one value per channel, got input {x.shape} "
                              "(use a larger batch, or eval())")
        y, cache, mean, var = batchnorm_train_forward(x, self.gamma.data, self.beta.data, self.eps, relu,
                                                      self._global_statistics if synced else None)
        self._update_running(mean, var, self._sync[1] if synced else m)
        self._save(cache, y)
        return y

    def _global_statistics(self, n, mean, m2):
        """(count, mean, M2) of every rank's batch from this rank's; keeps (this rank's share, count)."""
        c = self.num_features
        rows = self.comm.allgather(np.concatenate([[n], mean, m2]))
        total = combine_statistics((int(r[0]), r[1:1 + c], r[1 + c:]) for r in rows)
        if total[0] < 2:
            raise self._error(f"training needs more than one value per channel, got {total[0]} over all ranks")
        object.__setattr__(self, "_sync", (n / total[0], total[0]))
        return total

    def _global_sums(self, sum_d, sum_dxhat):
        """Backward's Σdy and Σdy·x̂ over the global batch, in this rank's scale (its loss is the mean over its
        own samples: weighted by its share before the sum, divided by it after), and the global count."""
        share, count = self._sync
        rows = self.comm.allgather(np.concatenate([sum_d, sum_dxhat]) * share)
        total = rows.sum(axis=0) / share
        return total[:self.num_features], total[self.num_features:], count

    def idle_sync(self, backward: bool = False) -> None:
        """Take part in the exchange of a step this rank has no samples for (a short last batch): the other
        ranks' collectives must still be matched."""
        if backward:
            self.comm.allgather(np.zeros(2 * self.num_features))
        else:
            self.comm.allgather(np.zeros(2 * self.num_features + 1))

    def _update_running(self, mean, var, m: int) -> None:
        # update through local names: `self.x op= ...` would re-assign the attribute and unregister the buffer
        count, rm, rv = self.num_batches_tracked, self.running_mean, self.running_var
        count += 1
        f = 1.0 / float(count) if self.momentum is None else self.momentum
        rm *= 1 - f
        rm += f * mean.astype(rm.dtype, copy=False)
        rv *= 1 - f
        rv += (f * m / (m - 1)) * var.astype(rv.dtype, copy=False)

    def __getstate__(self):
        """Pickling and deep copies leave out the weak link to a fused ReLU's mask (a weakref cannot be pickled,
        and a copy's link would lead to the original's mask)."""
        state = self.__dict__.copy()
        state.pop("_fused_mask", None)
        return state

    def backward(self, dy):
        return self._backward(dy, relu=False)

    def backward_fused_relu(self, dy):
        """The input gradient of max(BatchNorm(x), 0) after `forward_fused_relu`, in one pass."""
        return self._backward(dy, relu=True)

    def _backward(self, dy, relu: bool):
        cache = self._saved(dy)
        if relu:  # the ReLU's mask holds this cache too: let it go with ours (a deep copy's mask is not ours)
            ref = self.__dict__.get("_fused_mask")
            mask = ref() if ref is not None else None
            if mask is not None and mask.bn_cache is cache:
                mask.bn_cache = None
        comm = self.__dict__.get("comm")
        synced = comm is not None and comm.size > 1 and cache[0] == "train"
        dx, dgamma, dbeta = batchnorm_backward(dy, cache, relu, self._global_sums if synced else None)
        self.gamma.accumulate(dgamma)
        self.beta.accumulate(dbeta)
        return dx

    def output_shape(self, input_shape):
        return self._input_shape(input_shape, None, self.num_features, "N, ..., C", min_ndim=2)

    def macs(self, input_shape):
        # one multiply-add per element (inference form y = x·s + t)
        return int(np.prod(self.output_shape(input_shape)))

    def extra_repr(self):
        s = str(self.num_features)  # defaults omitted: the name shows in error messages and summaries
        if self.eps != 1e-5:
            s += f", eps={self.eps:g}"
        if self.momentum != 0.1:
            s += f", momentum={self.momentum}"
        if self.fixed_parameters:
            s += ", scale=False"
        return s


class _FusedMask:
    """A ReLU's cache after a fused BatchNorm + ReLU forward: the mask, recomputed on demand from the
    BatchNorm's cache (nothing mask-sized is stored)."""

    __slots__ = ("bn_cache", "__weakref__")

    def __init__(self, bn_cache):
        self.bn_cache = bn_cache  # None once the fused backward has used it

    def mask(self) -> np.ndarray:
        if self.bn_cache is None:
            raise RuntimeError("ReLU: backward called without a cached forward pass (the fused BatchNorm + ReLU "
                               "backward has used it; each forward serves one backward)")
        return relu_mask(self.bn_cache)
