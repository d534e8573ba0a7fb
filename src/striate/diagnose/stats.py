"""The measurements behind checks 6 and 7: per-layer activation and gradient statistics.

For every leaf layer: mean, std and a histogram of its output (float64, over the finite values; the share
of NaN/inf is counted apart, and a constant output gets a small range around its value, so no statistic
fails on a degenerate layer); for tanh/sigmoid the fraction of saturated values (|tanh| > 0.99, sigmoid
outside [0.01, 0.99]: the local gradient is below ~0.02); for ReLU the fraction of dead units (a unit = a
feature / channel, the last axis, that is never positive over the batch — or over every sampled batch of
an epoch in the training callback) and the share of zero outputs; for weighted layers the weight scale
(RMS·√fan_in: 1 for Xavier, √2 for He) and the mean bias; and the RMS of the gradient arriving at the
layer's output in the backward pass. `checks/activations.py` judges them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..nn.init import fans
from ..nn.module import Module
from .hooks import leaf_modules, tap
from .inputs import fresh_copy

SATURATED_TANH, SATURATED_SIGMOID = 0.99, 0.01
MAX_VALUES = 1 << 16  # the training callback's sample size per tensor (dead units always use every value)
_KINDS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "ReLU": "relu", "LeakyReLU": "relu-like", "ELU": "relu-like",
          "PReLU": "relu-like", "Maxout": "relu-like"}


def layer_kind(module: Module) -> str:
    """'tanh', 'sigmoid', 'relu', 'relu-like' (no dead units possible), 'param' (has weights) or 'other'."""
    for cls in type(module).__mro__:
        if cls.__name__ in _KINDS:
            return _KINDS[cls.__name__]
    return "param" if module._parameters else "other"


def weight_of(module: Module):
    """The module's own weight tensor (≥ 2 axes, the last = output units), or None."""
    w = module._parameters.get("weight")
    if w is None:
        w = next((p for p in module._parameters.values() if p.data.ndim >= 2), None)
    return w if w is not None and w.data.ndim >= 2 else None


def weight_gain(w: np.ndarray) -> float:
    """RMS(W)·√fan_in: 1.0 for Xavier (randn/√fan_in), 1.41 for He; far above → too large, far below → too
    small, 0 → all zero. (The RMS, not the std: a constant tensor has std 0 but a scale.)"""
    fan_in, _ = fans(w.shape)
    return float(np.sqrt(np.mean(np.square(w, dtype=np.float64))) * math.sqrt(fan_in)) if w.size else 0.0


@dataclass
class LayerStats:
    """Statistics of one layer's output on one batch (a snapshot)."""

    name: str
    layer: str  # describe()
    kind: str
    mean: float
    std: float
    saturated: float | None = None  # tanh / sigmoid only
    dead: float | None = None  # relu only: fraction of units never positive
    zero: float | None = None  # relu only: fraction of zero outputs
    nonfinite: float = 0.0  # fraction of NaN / inf outputs
    weight_gain: float | None = None  # weighted layers: RMS(W)·√fan_in
    bias_mean: float | None = None  # weighted layers with a bias
    hist: list[int] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)
    grad_rms: float | None = None  # RMS of d loss / d output, filled by the backward pass
    grad_hist: list[int] = field(default_factory=list)
    grad_edges: list[float] = field(default_factory=list)
    active_units: np.ndarray | None = field(default=None, repr=False)  # relu: per-unit "ever positive"

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("active_units")
        from .verdict import jsonable

        return jsonable(d)

    @classmethod
    def from_dict(cls, d: dict) -> LayerStats:
        """A `to_dict()` read back (from a diagnostics.json), every field converted to its type: raises
        KeyError, TypeError, ValueError or OverflowError when `d` is not one, so a damaged file fails here,
        not later in a check. Missing optional fields take their defaults; unknown keys are ignored."""
        text = {k: d[k] for k in ("name", "layer", "kind")}
        if not all(isinstance(v, str) for v in text.values()):
            raise TypeError(f"LayerStats: name, layer and kind must be text, got {text!r}")
        optional = {k: optional_number(d.get(k)) for k in ("saturated", "dead", "zero", "weight_gain", "bias_mean",
                                                            "grad_rms")}
        edges = {k: [json_number(v) for v in d.get(k) or []] for k in ("edges", "grad_edges")}
        counts = {k: [int(json_number(v)) for v in d.get(k) or []] for k in ("hist", "grad_hist")}
        return cls(**text, mean=json_number(d.get("mean")), std=json_number(d.get("std")),
                   nonfinite=json_number(d.get("nonfinite", 0.0)), **optional, **edges, **counts)


def json_number(v) -> float:
    """A number read back from JSON, where None stands for NaN or ±inf (JSON has neither, `verdict.jsonable`);
    TypeError for anything else."""
    if isinstance(v, bool) or not isinstance(v, int | float | None):
        raise TypeError(f"not a number: {v!r}")
    return math.nan if v is None else float(v)


def optional_number(v) -> float | None:
    return None if v is None else json_number(v)


def histogram(values: np.ndarray, bins: int, lo: float | None = None, hi: float | None = None):
    """(counts, edges) of the finite `values` over [lo, hi] (default: their range); a degenerate range (a
    constant, or nothing finite) is widened around its value, so this never fails."""
    if lo is None or hi is None:
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if not hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi)):
        pad = 1e-3 * max(1.0, abs(lo), abs(hi))
        lo, hi = lo - pad, hi + pad
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return counts.tolist(), edges.tolist()


def summarize(name: str, module: Module, y: np.ndarray, bins: int = 40, limit: int | None = None) -> LayerStats:
    """Statistics of the output `y` of `module` (float64 accumulation). `limit`: use an evenly strided
    subset of about that many values for everything but the dead-unit count (the training callback's
    setting, to keep sampling cheap); None uses every value."""
    kind = layer_kind(module)
    flat = _sample(y, limit)
    finite = np.isfinite(flat)
    good = flat[finite].astype(np.float64) if not finite.all() else flat.astype(np.float64)
    mean = float(good.mean()) if good.size else math.nan
    std = float(good.std()) if good.size else math.nan
    s = LayerStats(name, module.describe(), kind, mean, std, nonfinite=float(1.0 - finite.mean()) if flat.size else 0)
    lo = hi = None
    if kind == "tanh":
        s.saturated = float(np.mean(np.abs(good) > SATURATED_TANH)) if good.size else 0.0
        lo, hi = -1.0, 1.0
    elif kind == "sigmoid":
        s.saturated = float(np.mean((good < SATURATED_SIGMOID) | (good > 1 - SATURATED_SIGMOID))) if good.size else 0.0
        lo, hi = 0.0, 1.0
    elif kind == "relu":
        units = y.reshape(-1, y.shape[-1]) if y.ndim > 1 else y.reshape(-1, 1)
        s.active_units = (units > 0).any(axis=0)
        s.dead = float(1.0 - s.active_units.mean())
        s.zero = float(np.mean(good <= 0)) if good.size else 1.0
    w = weight_of(module)
    if w is not None:
        s.weight_gain = weight_gain(w.data)
        b = module._parameters.get("bias")
        s.bias_mean = float(np.mean(b.data, dtype=np.float64)) if b is not None else None
    if lo is not None and good.size:  # a bounded layer's range, widened if a custom subclass strays out of it
        lo, hi = min(lo, float(good.min())), max(hi, float(good.max()))
    s.hist, s.edges = histogram(good, bins, lo, hi)
    return s


def _sample(a: np.ndarray, limit: int | None) -> np.ndarray:
    """The flattened values, or an evenly strided subset of about `limit` of them for large tensors
    (statistics and histograms of a big activation do not need every value)."""
    flat = a.reshape(-1)
    return flat if limit is None or flat.size <= limit else flat[::flat.size // limit]


def grad_rms(dy: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(dy, dtype=np.float64)))) if dy.size else 0.0


def summarize_gradient(s: LayerStats, dy: np.ndarray, bins: int = 40, limit: int | None = None) -> None:
    """Fill `s.grad_rms` (NaN/inf propagate: an overflow shows) and a histogram of the finite values of the
    gradient at the layer's output (symmetric range)."""
    flat = _sample(dy, limit)
    s.grad_rms = grad_rms(flat)
    flat = flat[np.isfinite(flat)].astype(np.float64)
    top = float(np.abs(flat).max()) if flat.size else 0.0
    top = top if top > 0 else 1e-12
    s.grad_hist, s.grad_edges = histogram(flat, bins, -top, top)


def layer_statistics(model: Module, x: np.ndarray, loss=None, y: np.ndarray | None = None,
                     bins: int = 40) -> tuple[list[LayerStats], dict[str, dict]]:
    """One training-mode forward (and, with `loss` and `y`, backward) pass on a copy of `model`, dropout
    off (its zeros are noise, not the network's: they would read as dead units).

    Returns the per-leaf-layer statistics in forward order and, per parameter tensor, the RMS of its
    gradient and ‖grad‖/‖weight‖ ({} without a loss). Your model is not changed."""
    m = fresh_copy(model, dropout=False)
    m.train()
    stats: dict[str, LayerStats] = {}
    leaves = leaf_modules(m)

    def on_forward(name, mod, _x, out):
        stats[name] = summarize(name, mod, out, bins)

    def on_backward(name, mod, dy, _dx):
        if name in stats:
            summarize_gradient(stats[name], dy, bins)

    with np.errstate(all="ignore"), tap(leaves, on_forward, on_backward if loss is not None else None):
        scores = m.forward(x)
        params = {}
        if loss is not None and any(p.requires_grad for p in m.parameters()):
            m.zero_grad()
            loss(scores, y)
            m.backward(loss.backward())
            params = param_gradients(m)
    return list(stats.values()), params


def param_gradients_from_dict(d: dict) -> dict:
    """One entry of `param_gradients` read back (from a diagnostics.json), every field converted to its type
    (raises as `LayerStats.from_dict`)."""
    flags = {k: d[k] for k in ("finite", "trainable")}
    if not all(isinstance(v, bool) for v in flags.values()):
        raise TypeError(f"finite and trainable must be true or false, got {flags!r}")
    return {"grad_rms": json_number(d["grad_rms"]), "grad_norm": json_number(d["grad_norm"]),
            "weight_norm": json_number(d["weight_norm"]), "ratio": optional_number(d["ratio"]), **flags,
            "ndim": int(json_number(d["ndim"]))}


def param_gradients(model: Module) -> dict[str, dict]:
    """Per parameter tensor: gradient RMS and norm, weight norm, their ratio, whether the gradient is finite
    and whether the tensor is trainable (a frozen tensor's zero gradient is no finding)."""
    out = {}
    with np.errstate(all="ignore"):
        for name, p in model.named_parameters():
            g = p.grad.astype(np.float64)
            w = float(np.linalg.norm(p.data.astype(np.float64)))
            gn = float(np.linalg.norm(g))
            out[name] = {"grad_rms": float(np.sqrt(np.mean(g * g))) if g.size else 0.0, "grad_norm": gn,
                         "weight_norm": w, "ratio": gn / w if w > 0 else None,
                         "finite": bool(np.isfinite(g).all()), "trainable": bool(p.requires_grad),
                         "ndim": int(p.data.ndim)}
    return out
