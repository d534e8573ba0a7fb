"""PatchWhitening: a frozen convolution whose filters whiten the input's patches, fitted from data.

The notes' PCA and whitening (`data.preprocess`: x_white = x·U / √(S + eps)) applied to every kh×kw patch
instead of the whole image, as the first layer of a network (the fastest published CIFAR-10 recipes, Keller
Jordan's airbench): a convolution whose filters are the eigenvectors of the patches' covariance, each scaled by
1/√(λ + eps), followed by their negatives (so a ReLU-like activation after it keeps both signs). With
`method="zca"` the filters are instead the columns of U·diag(1/√(λ + eps))·Uᵀ: the notes' whitening rotated back
into the patch's own coordinates (ZCA), so output i is the whitened value of the patch's i-th pixel-channel.
"""

from __future__ import annotations

import numpy as np

from .conv import Conv2d, _pair

PATCH_BYTES = 32 << 20  # float64 bytes of the patch matrix of one chunk of images in `fit`


class PatchWhitening(Conv2d):
    """x: (N, H, W, C) → (N, H − kh + 1, W − kw + 1, 2·C·kh·kw): a stride-1, unpadded Conv2d whose weight
    (kh, kw, C, 2·C·kh·kw) is frozen (`requires_grad` False, and kept so by `unfreeze()`) and set by
    `fit(x)`; the bias (zeros) trains, or with `bias_epochs=k` trains during epochs 0..k−1 only (the callback
    `train.callbacks.BiasEpochs`, which a run adds by itself).

    `fit(x)`: P the (n, C·kh·kw) matrix of every patch of x (every position, stride 1; the values in the
    weight's (kh, kw, C) order), Σ = PᵀP / n the patches' *uncentred* covariance (as airbench: no mean is
    subtracted; the input is normalised already), in float64; λ_1 ≥ … ≥ λ_d its eigenvalues with
    eigenvectors u_i. Output channel i < d is the filter u_i / √(λ_i + eps), channel d + i its negative, so the
    first d outputs have covariance diag(λ / (λ + eps)) ≈ I over the patches of x. `method="zca"`: filter i
    is column i of U·diag(1/√(λ + eps))·Uᵀ (whitened outputs in the patch's (kh, kw, C) order, not ordered by
    variance), again followed by the negatives; its first d outputs have covariance U·diag(λ/(λ + eps))·Uᵀ ≈ I.

    Until fitted, the weight is Conv2d's usual initial one and the repr says "unfitted"; `fitted_` (a bool
    buffer, saved in state_dict) records the fit, so a model loaded from a checkpoint is not fitted again.
    """

    fixed_parameters = ("weight",)  # Module.unfreeze leaves it frozen: the fit sets it, training never does

    def __init__(self, in_channels: int, kernel_size: int | tuple[int, int] = 2, eps: float = 5e-4,
                 bias: bool = True, bias_epochs: int | None = None, method: str = "pca", *,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        kh, kw = _pair(kernel_size)
        if method not in ("pca", "zca"):
            raise ValueError(f"PatchWhitening: method must be 'pca' or 'zca', got {method!r}")
        if not (isinstance(eps, int | float) and not isinstance(eps, bool) and eps >= 0 and np.isfinite(eps)):
            raise ValueError(f"PatchWhitening: eps must be a finite number ≥ 0, got {eps!r}")
        if bias_epochs is not None and (isinstance(bias_epochs, bool) or not isinstance(bias_epochs, int)
                                        or bias_epochs < 0 or not bias):
            raise ValueError(f"PatchWhitening: bias_epochs must be None or an integer ≥ 0 (and bias=True), "
                             f"got {bias_epochs!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int | np.integer) or in_channels < 1 \
                or min(kh, kw) < 1:
            raise ValueError(f"PatchWhitening: bad configuration in={in_channels!r} kernel={kernel_size!r}")
        super().__init__(in_channels, 2 * in_channels * kh * kw, (kh, kw), 1, 0, bias, rng=rng, dtype=dtype)
        self.weight.requires_grad = False
        self.eps, self.bias_epochs, self.method = float(eps), bias_epochs, method
        self.register_buffer("fitted_", np.array(False))

    def fit(self, x, batch_size: int | None = None) -> PatchWhitening:
        """Set the filters from the patches of x: an array (N, H, W, C) — an ndarray, a memory map, or anything
        whose slices x[a:b] are such arrays (a lazily preprocessed `data.Rows`) — read `batch_size` images at a
        time (default: about PATCH_BYTES of patches), or an iterable of such arrays. Returns self."""
        sigma = self.patch_covariance(x, batch_size)
        lam, u = np.linalg.eigh(sigma)
        lam, u = lam[::-1], u[:, ::-1]  # descending, as airbench orders its filters
        with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 and λ = 0: refused just below
            filters = u / np.sqrt(np.maximum(lam, 0.0) + self.eps)
        if not np.all(np.isfinite(filters)):
            raise self._error("fit: the patch covariance is singular and eps = 0 (give eps > 0)")
        if self.method == "zca":  # rotate back: U·diag(1/√(λ + eps))·Uᵀ
            filters = filters @ u.T
        kh, kw = self.kernel_size
        w = np.concatenate([filters, -filters], axis=1).reshape(kh, kw, self.in_channels, self.out_channels)
        self.weight.data[...] = w
        self.fitted_[...] = True
        return self

    def patch_covariance(self, x, batch_size: int | None = None) -> np.ndarray:
        """Σ = PᵀP / n (float64, (d, d), d = kh·kw·C) over every kh×kw patch of x (as `fit` takes it)."""
        kh, kw = self.kernel_size
        d = kh * kw * self.in_channels
        sigma, count = np.zeros((d, d)), 0
        for chunk in self._chunks(x, batch_size):
            if chunk.ndim != 4 or chunk.shape[-1] != self.in_channels or chunk.dtype.kind != "f":
                raise self._error(f"fit: expected float images (N, H, W, {self.in_channels}), got {chunk.dtype} "
                                  f"{chunk.shape}")
            if chunk.shape[1] < kh or chunk.shape[2] < kw:
                raise self._error(f"fit: images {chunk.shape[1]}×{chunk.shape[2]} are smaller than the "
                                  f"{kh}×{kw} patches")
            # (n, Ho, Wo, C, kh, kw) windows → rows in the weight's (kh, kw, C) order
            windows = np.lib.stride_tricks.sliding_window_view(chunk, (kh, kw), axis=(1, 2))
            p = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, d).astype(np.float64)
            sigma += p.T @ p
            count += len(p)
        if count == 0:
            raise self._error("fit: got no images")
        return sigma / count

    def _chunks(self, x, batch_size):
        if not hasattr(x, "shape") or not hasattr(x, "__getitem__"):
            yield from (np.asarray(c) for c in x)
            return
        if batch_size is None:
            kh, kw = self.kernel_size
            per_image = 8 * kh * kw * self.in_channels * max(1, (x.shape[1] - kh + 1) * (x.shape[2] - kw + 1)) \
                if len(x.shape) == 4 else 1
            batch_size = max(1, PATCH_BYTES // per_image)
        for lo in range(0, len(x), batch_size):
            yield np.asarray(x[lo:lo + batch_size])

    def extra_repr(self, groups: int = 1):
        kh, kw = self.kernel_size
        parts = [f"{self.in_channels}→{self.out_channels}", f"{kh}×{kw}"]
        parts += [f"eps={self.eps:g}"] if self.eps != 5e-4 else []
        parts += ["zca"] if self.method == "zca" else []
        parts += ["bias=False"] if self.bias is None else []
        parts += [f"bias_epochs={self.bias_epochs}"] if self.bias_epochs is not None else []
        return ", ".join(parts + ([] if self.fitted_ else ["unfitted"]))


class _Reached(Exception):
    """Raised by `layer_inputs`'s hook once the layer has its input: the rest of the network is not run."""


def unfitted(model) -> list[PatchWhitening]:
    """The PatchWhitening layers of `model` not fitted yet, in module order."""
    return [m for m in model.modules() if isinstance(m, PatchWhitening) and not m.fitted_]


def fit_unfitted(model, batches) -> int:
    """Fit every unfitted PatchWhitening of `model` on the inputs it receives when `model` runs on the batches
    `batches()` yields (a function returning a fresh iterable of network inputs (n, H, W, C), e.g. the first
    training images, preprocessed), one layer after another in module order, so a layer's fit sees the fitted
    layers below it. Eval mode without gradients; the rest of the network is not run. Returns how many."""
    layers = unfitted(model)
    mode = model.training
    model.eval()
    try:
        for layer in layers:
            layer.fit(layer_inputs(model, layer, batches()))
    finally:
        model.train(mode)
    return len(layers)


def layer_inputs(model, layer, batches):
    """The input of `layer` (a module inside `model`) for each network input in `batches`, computed without
    running the part of `model` after it."""
    from .module import no_grad

    seen = []

    def grab(module, x, y):
        seen.append(x)
        raise _Reached

    with layer.register_forward_hook(grab):
        for batch in batches:
            try:
                with no_grad():
                    model(batch)
            except _Reached:
                yield seen.pop()
            else:
                raise layer._error("fit: the model's forward pass never reached this layer")
