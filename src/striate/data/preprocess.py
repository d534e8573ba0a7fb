"""Preprocessing estimators (scikit-learn style): `fit(x_train)` learns state ending in `_`, `transform(x)`
applies it, output float32. Fit on the training split only and save the state with the model
(`state_dict()` -> {"type", "config" (JSON-able), "arrays"}; `Preprocessor.from_state_dict(state)`), so
inference repeats exactly what training saw. Statistics are accumulated in float64 and stored in float32.

`fit` reads its input once, in chunks of about 32 MB (`rows.row_chunks`: an ndarray, a memory map or a lazy
`Rows`), so fitting never holds more than a chunk in float: means and variances are combined chunk by chunk
(`Moments`, Chan et al.'s pairwise update), PCA's and whitening's covariance too (a D×D float64 sum of the
chunks' centred outer products: every training image is used, none sampled). The statistics can differ
from a one-shot computation in the last bits of float64 (the order of the sums), rarely in float32.

PCA and whitening follow the CS231n notes ("Neural Networks Part 2: data preprocessing"): centre, take the
covariance's eigenvectors U and eigenvalues S, rotate `Xrot = X U`, whiten `Xrot / sqrt(S + eps)` where eps
smooths the division by tiny eigenvalues (and damps their noise), and for ZCA rotate back with U^T.
Input is any (N, ...) array; PCA and PCA-whitening flatten it to (N, D).
"""

from __future__ import annotations

import numpy as np

from .errors import DataError
from .rows import row_chunks

_REGISTRY: dict[str, type] = {}


_FLOAT32_EXACT_INT = 2**24  # integers up to this magnitude are exact in float32
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_batch(x, who: str) -> np.ndarray:
    """x checked to become float32 without NaN, inf or silent loss: integers within +-2**24 (exact in float32),
    floats within float32's range."""
    if not isinstance(x, np.ndarray):
        raise DataError(f"{who}: expected a numpy array (N, ...), got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"{who}: expected a non-empty batch (N, ...), got shape {x.shape}")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{who}: expected a numeric dtype, got {x.dtype}")
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DataError(f"{who}: input contains NaN or inf")
        if x.dtype.itemsize > 4 and np.abs(x).max() > _FLOAT32_MAX:
            raise DataError(f"{who}: values beyond float32's range (|x| > {_FLOAT32_MAX:.3g}) would become inf")
    elif x.dtype.itemsize > 2 and (x.min() < -_FLOAT32_EXACT_INT or x.max() > _FLOAT32_EXACT_INT):
        raise DataError(f"{who}: {x.dtype} values beyond +-2**24 are not exact in float32 "
                        f"(range [{x.min()}, {x.max()}])")
    return x


class Preprocessor:
    """Base: subclasses set `_config` names (constructor arguments) and implement `_fit` / `_transform`."""

    _config: tuple[str, ...] = ()
    needs_fit = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def fit(self, x) -> Preprocessor:
        """Learn the statistics of x (N, ...) — the training split only — in one pass over its chunks (x: an
        ndarray, a memory map or data.Rows). Returns self."""
        if not hasattr(x, "shape") or len(x.shape) < 2:
            _as_batch(x, f"{type(self).__name__}.fit")  # the error that says what is expected
        return self.fit_batches(row_chunks(x))

    def fit_batches(self, batches) -> Preprocessor:
        """Learn the statistics of the samples of an iterable of (n, ...) batches, read once, in float64."""
        who, state, shape = f"{type(self).__name__}.fit", None, None
        for b in batches:
            b = _as_batch(b, who)
            if shape is not None and b.shape[1:] != shape:
                raise DataError(f"{who}: batches of samples {shape} and {b.shape[1:]}")
            shape = b.shape[1:]
            state = self._accumulate(state, b)
        if shape is None:
            raise DataError(f"{who}: expected a non-empty batch (N, ...), got no samples")
        self.input_shape_ = np.array(shape, dtype=np.int64)
        self._finish(state)
        return self

    def _accumulate(self, state, x: np.ndarray):
        """Fold batch x into the running `state` (None at first); the default keeps the batches for `_fit`."""
        return [*(state or []), x]

    def _finish(self, state) -> None:
        """Set the learned attributes from the final `state` (the default: `_fit` on all the batches)."""
        self._fit(np.concatenate(state))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the fitted transform to x (N, ...) with the fitted per-sample shape; float32 out."""
        name = type(self).__name__
        x = _as_batch(x, f"{name}.transform")
        if self.needs_fit:
            if not hasattr(self, "input_shape_"):
                raise DataError(f"{name}: not fitted; call fit(x_train) first")
            if tuple(x.shape[1:]) != tuple(int(d) for d in self.input_shape_):
                raise DataError(f"{name}: fitted on samples of shape {tuple(self.input_shape_.tolist())}, "
                                f"got {tuple(x.shape[1:])}")
        return self._transform(x.astype(np.float32, copy=False)).astype(np.float32, copy=False)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).transform(x)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """`transform`, with the augmentation signature so it can sit in `Compose` or a loader."""
        return self.transform(x)

    def state_dict(self) -> dict:
        config = {k: getattr(self, k) for k in self._config}
        arrays = {k: np.asarray(v) for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}
        return {"type": type(self).__name__, "config": config, "arrays": arrays}

    @classmethod
    def from_state_dict(cls, state: dict) -> Preprocessor:
        """Rebuild any preprocessor from `state_dict()` output (dispatches on state['type'])."""
        if not isinstance(state, dict):
            raise DataError(f"preprocessor state: expected a dict, got {type(state).__name__}")
        kind = state.get("type")
        if kind not in _REGISTRY or (cls is not Preprocessor and _REGISTRY[kind] is not cls):
            raise DataError(f"unknown or mismatched preprocessor type {kind!r} (known: {sorted(_REGISTRY)})")
        config, arrays = state.get("config"), state.get("arrays")
        if not isinstance(config, dict) or not isinstance(arrays, dict):
            raise DataError(f"preprocessor state of {kind}: expected dicts 'config' and 'arrays', got "
                            f"{type(config).__name__} and {type(arrays).__name__}")
        try:
            obj = _REGISTRY[kind](**config)
        except TypeError as err:  # unknown or missing constructor arguments
            raise DataError(f"preprocessor state of {kind}: bad 'config' {config!r} ({err})") from None
        for k, v in arrays.items():
            if not (isinstance(k, str) and k.endswith("_") and not k.startswith("_")):
                raise DataError(f"preprocessor state of {kind}: 'arrays' key {k!r} is not a learned attribute")
            setattr(obj, k, np.asarray(v))
        return obj

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._config)
        return f"{type(self).__name__}({args})"


class Moments:
    """Count, mean and (optionally) the sum of squared deviations, or of their outer products, of float64 rows
    (n, D), combined batch by batch with Chan, Golub and LeVeque's pairwise update, which stays accurate in
    any chunking (no sum of squares minus squared sum)."""

    def __init__(self, squares: bool = False, outer: bool = False):
        self.squares, self.outer = squares, outer
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, rows: np.ndarray) -> Moments:
        """Fold rows (n, D) into the moments. Returns self."""
        rows = rows.astype(np.float64, copy=False)
        n, mean = len(rows), rows.mean(axis=0)
        total = self.n + n
        delta = None if self.n == 0 else mean - self.mean
        if self.outer or self.squares:
            d = rows - mean
            if delta is not None:  # the update's cross term n₁n₂/(n₁+n₂)·δδᵀ, as one more row of d
                d = np.vstack([d, np.sqrt(self.n * n / total) * delta])
            m2 = d.T @ d if self.outer else np.einsum("ij,ij->j", d, d)
            if self.m2 is None:
                self.m2 = m2
            else:
                self.m2 += m2
        self.mean = mean if delta is None else self.mean + delta * (n / total)
        self.n = total
        return self


class Scale(Preprocessor):
    """x * factor (default 1/255: uint8 -> [0, 1]). Stateless; fit only records the sample shape."""

    _config = ("factor",)
    needs_fit = False

    def __init__(self, factor: float = 1.0 / 255.0):
        self.factor = float(factor)

    def _fit(self, x):
        pass

    def _transform(self, x):
        return x * np.float32(self.factor)


# Fixed statistics of published weights, on [0, 1] pixels: name → (mean, std) per RGB channel. ImageNet's are
# torchvision's `ImageClassification` defaults; "inception" maps [0, 1] to [−1, 1].
FIXED_STATISTICS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


class FixedStandardize(Preprocessor):
    """(x − mean) / std per channel (last axis) with given, not fitted, statistics: the input convention of
    published weights (`FIXED_STATISTICS`), e.g. ImageNet's after Scale(1/255). Any image size."""

    _config = ("mean", "std")
    needs_fit = False

    def __init__(self, mean=(0.0,), std=(1.0,)):
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise DataError(f"FixedStandardize: mean {self.mean} and std {self.std} need one value per channel, "
                            "std > 0")

    def _fit(self, x):
        pass

    def _transform(self, x):
        if x.shape[-1] != len(self.mean):
            raise DataError(f"FixedStandardize: {len(self.mean)} channels' statistics for images of "
                            f"{x.shape[-1]} channels (convert them with image_size = \"HxWx{len(self.mean)}\")")
        return (x - np.float32(self.mean)) / np.float32(self.std)


class MeanImage(Preprocessor):
    """Subtract the mean training image: mean_ has the sample shape, e.g. (H, W, C)."""

    def _accumulate(self, state, x):
        return (state or Moments()).add(x.reshape(len(x), -1))

    def _finish(self, m):
        self.mean_ = m.mean.reshape(tuple(self.input_shape_)).astype(np.float32)

    def _transform(self, x):
        return x - self.mean_


class PerChannelMean(Preprocessor):
    """Subtract one mean per channel (last axis): mean_ (C,)."""

    def _accumulate(self, state, x):
        return (state or Moments()).add(x.reshape(-1, x.shape[-1]))

    def _finish(self, m):
        self.mean_ = m.mean.astype(np.float32)

    def _transform(self, x):
        return x - self.mean_


class PerChannelStandardize(Preprocessor):
    """(x - mean_) / std_ per channel (last axis); std_ = sqrt(var + eps) keeps constant channels finite."""

    _config = ("eps",)

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)

    def _accumulate(self, state, x):
        return (state or Moments(squares=True)).add(x.reshape(-1, x.shape[-1]))

    def _finish(self, m):
        self.mean_ = m.mean.astype(np.float32)
        self.std_ = np.sqrt(m.m2 / m.n + self.eps).astype(np.float32)

    def _transform(self, x):
        return (x - self.mean_) / self.std_


class PerImageStandardize(Preprocessor):
    """Each image on its own: (image − image.mean()) / (image.std() + eps), over all its pixels and channels
    (the notes' per-example normalisation; nothing is learned, so any image size works)."""

    _config = ("eps",)
    needs_fit = False

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)

    def _fit(self, x):
        pass

    def _transform(self, x):
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
        std = x.std(axis=axes, keepdims=True, dtype=np.float64)
        return ((x - mean) / (std + self.eps)).astype(np.float32)


class PerPixelStandardize(Preprocessor):
    """Each input dimension normalised over the training set: (x − mean_) / std_ with mean_ and std_ of the
    sample shape (H, W, C) — the mean image, and the standard deviation of every pixel of every channel."""

    _config = ("eps",)

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)

    def _accumulate(self, state, x):
        return (state or Moments(squares=True)).add(x.reshape(len(x), -1))

    def _finish(self, m):
        shape = tuple(self.input_shape_)
        self.mean_ = m.mean.reshape(shape).astype(np.float32)
        self.std_ = np.sqrt(m.m2 / m.n + self.eps).reshape(shape).astype(np.float32)

    def _transform(self, x):
        return (x - self.mean_) / self.std_


def _covariance(state, x: np.ndarray) -> Moments:
    """`state` (a Moments of centred outer products) with the flattened batch x (n, ...) added."""
    return (state or Moments(outer=True)).add(x.reshape(len(x), -1))


def _eig_cov(m: Moments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (D,), eigenvalues (D,) descending, eigenvectors (D, D) as columns, of the flattened samples whose
    moments `m` holds (the sample covariance, divided by N − 1)."""
    if m.n < 2:
        raise DataError(f"need at least 2 samples to estimate a covariance, got {m.n}")
    mean = m.mean
    cov = m.m2 / (m.n - 1)
    s, u = np.linalg.eigh(cov)
    s, u = np.clip(s[::-1], 0.0, None), u[:, ::-1]
    # Deterministic signs: the largest-magnitude entry of each eigenvector is positive (like sklearn).
    u = u * np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    return mean, s, u


class PCA(Preprocessor):
    """Project flattened input onto the top `n_components` principal axes: (N, ...) -> (N, k).

    components_ (k, D) orthonormal rows, mean_ (D,), explained_variance_ (k,) descending.
    """

    _config = ("n_components",)

    def __init__(self, n_components: int | None = None):
        if n_components is not None and (not isinstance(n_components, int) or n_components < 1):
            raise DataError(f"PCA: n_components must be a positive int or None, got {n_components!r}")
        self.n_components = n_components

    _accumulate = staticmethod(_covariance)

    def _finish(self, m):
        mean, s, u = _eig_cov(m)
        k = self.n_components or len(s)
        if k > len(s):
            raise DataError(f"PCA: n_components={k} exceeds the {len(s)} input features")
        self.mean_ = mean.astype(np.float32)
        self.components_ = u[:, :k].T.astype(np.float32)
        self.explained_variance_ = s[:k].astype(np.float32)

    def _transform(self, x):
        return (x.reshape(len(x), -1) - self.mean_) @ self.components_.T


class Whitening(Preprocessor):
    """Decorrelate and scale to unit variance (CS231n notes, eps smoothing).

    kind='pca': (N, ...) -> (N, k) with Xrot / sqrt(S + eps) (k = n_components or D).
    kind='zca': (N, ...) -> (N, ...) same shape, the PCA-whitened data rotated back to pixel space, so the
    result still looks like images. matrix_ (D, k) maps centred flat input to the output; mean_ (D,).
    """

    _config = ("kind", "eps", "n_components")

    def __init__(self, kind: str = "zca", eps: float = 1e-5, n_components: int | None = None):
        if kind not in ("pca", "zca"):
            raise DataError(f"Whitening: kind must be 'pca' or 'zca', got {kind!r}")
        if eps < 0:
            raise DataError(f"Whitening: eps must be >= 0, got {eps!r}")
        if n_components is not None and kind == "zca":
            raise DataError("Whitening: n_components applies to kind='pca' only")
        self.kind, self.eps, self.n_components = kind, float(eps), n_components

    _accumulate = staticmethod(_covariance)

    def _finish(self, m):
        mean, s, u = _eig_cov(m)
        k = self.n_components or len(s)
        if k > len(s):
            raise DataError(f"Whitening: n_components={k} exceeds the {len(s)} input features")
        if self.eps == 0 and s[k - 1] <= 0:
            raise DataError("Whitening: singular covariance; use eps > 0")
        scaled = u[:, :k] / np.sqrt(s[:k] + self.eps)
        matrix = scaled @ u[:, :k].T if self.kind == "zca" else scaled
        self.mean_ = mean.astype(np.float32)
        self.matrix_ = matrix.astype(np.float32)

    def _transform(self, x):
        out = (x.reshape(len(x), -1) - self.mean_) @ self.matrix_
        return out.reshape(x.shape) if self.kind == "zca" else out
