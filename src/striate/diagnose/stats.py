"""Check 6 (and the measurements behind check 7): per-layer activation and gradient statistics.

For every leaf layer: mean, std and a histogram of its output; for tanh/sigmoid the fraction of
saturated units (|tanh| > 0.99, sigmoid outside [0.01, 0.99]: the local gradient is below ~0.02); for
ReLU the fraction of dead units (a unit = a feature / channel, the last axis, that is never positive over
the batch — or over every sampled batch of an epoch in the training callback); and the RMS of the
gradient arriving at the layer's output in the backward pass.

`diagnose_activations` names the cause, e.g. "activations collapse towards 0 by layer 4 (Tanh): weights
too small for this depth — use Xavier/He", "87 % of units saturated in layer 2 (Tanh): weights too large".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..nn.module import Module
from .hooks import leaf_modules, tap
from .inputs import fresh_copy
from .verdict import FAIL, PASS, SKIP, WARN, Verdict

CHECK = "activations"
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
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "active_units"})


def summarize(name: str, module: Module, y: np.ndarray, bins: int = 40, limit: int | None = None) -> LayerStats:
    """Statistics of the output `y` of `module` (float64 accumulation). `limit`: use an evenly strided
    subset of about that many values for everything but the dead-unit count (the training callback's
    setting, to keep sampling cheap); None uses every value."""
    kind = layer_kind(module)
    flat = _sample(y, limit)
    mean = float(flat.mean(dtype=np.float64))
    std = float(flat.std(dtype=np.float64))
    s = LayerStats(name, module.describe(), kind, mean, std)
    if kind == "tanh":
        s.saturated = float(np.mean(np.abs(flat) > SATURATED_TANH))
        lo, hi = -1.0, 1.0
    elif kind == "sigmoid":
        s.saturated = float(np.mean((flat < SATURATED_SIGMOID) | (flat > 1 - SATURATED_SIGMOID)))
        lo, hi = 0.0, 1.0
    else:
        finite = flat[np.isfinite(flat)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-12
    if kind == "relu":
        units = y.reshape(-1, y.shape[-1]) if y.ndim > 1 else y.reshape(-1, 1)
        s.active_units = (units > 0).any(axis=0)
        s.dead = float(1.0 - s.active_units.mean())
        s.zero = float(np.mean(flat <= 0))
    with np.errstate(all="ignore"):
        counts, edges = np.histogram(flat[np.isfinite(flat)], bins=bins, range=(lo, hi))
    s.hist, s.edges = counts.tolist(), edges.tolist()
    return s


def _sample(a: np.ndarray, limit: int | None) -> np.ndarray:
    """The flattened values, or an evenly strided subset of about `limit` of them for large tensors
    (statistics and histograms of a big activation do not need every value)."""
    flat = a.reshape(-1)
    return flat if limit is None or flat.size <= limit else flat[::flat.size // limit]


def grad_rms(dy: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(dy, dtype=np.float64))))


def summarize_gradient(s: LayerStats, dy: np.ndarray, bins: int = 40, limit: int | None = None) -> None:
    """Fill `s.grad_rms` and a histogram of the gradient at the layer's output (symmetric range)."""
    flat = _sample(dy, limit)
    s.grad_rms = grad_rms(flat)
    flat = flat[np.isfinite(flat)]
    top = float(np.abs(flat).max()) if flat.size else 0.0
    top = top if top > 0 else 1e-12
    counts, edges = np.histogram(flat, bins=bins, range=(-top, top))
    s.grad_hist, s.grad_edges = counts.tolist(), edges.tolist()


def layer_statistics(model: Module, x: np.ndarray, loss=None, y: np.ndarray | None = None,
                     bins: int = 40) -> tuple[list[LayerStats], dict[str, dict]]:
    """One training-mode forward (and, with `loss` and `y`, backward) pass on a copy of `model`.

    Returns the per-leaf-layer statistics in forward order and, per parameter tensor, the RMS of its
    gradient and ‖grad‖/‖weight‖ ({} without a loss). Your model is not changed."""
    m = fresh_copy(model)
    m.train()
    stats: dict[str, LayerStats] = {}
    leaves = leaf_modules(m)

    def on_forward(name, mod, _x, out):
        stats[name] = summarize(name, mod, out, bins)

    def on_backward(name, mod, dy, _dx):
        if name in stats:
            summarize_gradient(stats[name], dy, bins)

    with tap(leaves, on_forward, on_backward if loss is not None else None):
        scores = m.forward(x)
        params = {}
        if loss is not None:
            m.zero_grad()
            loss(scores, y)
            m.backward(loss.backward())
            params = param_gradients(m)
    return list(stats.values()), params


def param_gradients(model: Module) -> dict[str, dict]:
    out = {}
    for name, p in model.named_parameters():
        g = p.grad.astype(np.float64)
        w = float(np.linalg.norm(p.data.astype(np.float64)))
        gn = float(np.linalg.norm(g))
        out[name] = {"grad_rms": float(np.sqrt(np.mean(g * g))), "grad_norm": gn, "weight_norm": w,
                     "ratio": gn / w if w > 0 else None, "finite": bool(np.isfinite(g).all())}
    return out


def _activation_layers(stats: list[LayerStats]) -> list[LayerStats]:
    act = [s for s in stats if s.kind in ("tanh", "sigmoid", "relu", "relu-like")]
    return act if act else [s for s in stats if s.kind == "param"]


def _where(s: LayerStats, acts: list[LayerStats] | None = None) -> str:
    """'layer 17 (ReLU())', or with the list of activation layers 'activation 9 of 10 (layer 17, ReLU())'."""
    if acts is not None and len(acts) > 1:
        return f"activation {acts.index(s) + 1} of {len(acts)} (layer {s.name}, {s.layer})"
    return f"layer {s.name} ({s.layer})"


def diagnose_activations(stats: list[LayerStats], input_std: float | None = None, collapse: float = 0.05,
                         collapse_warn: float = 0.2, grow: float = 20.0, saturated_fail: float = 0.5,
                         saturated_warn: float = 0.2, dead_fail: float = 0.7, dead_warn: float = 0.4) -> Verdict:
    """Collapse (std shrinking with depth below `collapse`× the reference: the input's std if given,
    else the first activation layer's), saturation and dead ReLUs, each named by its first layer.
    Dead units: the notes warn that "as much as 40 %" of a ReLU network can die with a too-high learning
    rate; a trained net typically has some (≈ 20 % of the hidden units of the digits net), so WARN starts
    at 40 % and FAIL at 70 %."""
    acts = _activation_layers(stats)
    if not acts:
        return Verdict(CHECK, SKIP, "no layers", "n/a", "no activation layers to inspect")
    stds = [s.std for s in acts]
    ref = input_std if input_std else stds[0]
    ref = ref if ref > 0 else 1.0
    details = {"layers": [{"name": s.name, "layer": s.layer, "kind": s.kind, "mean": s.mean, "std": s.std,
                           "saturated": s.saturated, "dead": s.dead} for s in acts], "reference_std": ref}
    findings: list[tuple[str, str, str, str]] = []  # status, cause, value, advice

    if not all(np.isfinite(stds)):
        bad = next(s for s in acts if not np.isfinite(s.std))
        findings.append((FAIL, "not_finite", f"non-finite activations in {_where(bad)}",
                         "the forward pass overflows: weights or learning rate far too large"))
    sat = [s for s in acts if s.saturated is not None]
    for level, thr in ((FAIL, saturated_fail), (WARN, saturated_warn)):
        hit = next((s for s in sat if s.saturated > thr), None)
        if hit is not None:
            worst_sat = max(sat, key=lambda s: s.saturated)
            findings.append((level, "saturated", f"{100 * hit.saturated:.0f} % saturated in {_where(hit)}",
                             f"{100 * hit.saturated:.0f} % of units saturated in {_where(hit)} (up to "
                             f"{100 * worst_sat.saturated:.0f} % in layer {worst_sat.name}): weights too large — "
                             "use Xavier (tanh) initialisation or lower the learning rate"))
            break
    relus = [s for s in acts if s.dead is not None]
    for level, thr in ((FAIL, dead_fail), (WARN, dead_warn)):
        hit = next((s for s in relus if s.dead > thr), None)
        if hit is not None:
            findings.append((level, "dead_relu", f"{100 * hit.dead:.0f} % dead ReLUs in {_where(hit)}",
                             f"{100 * hit.dead:.0f} % of the ReLU units in {_where(hit)} never fire: a large "
                             "negative bias, a too-high learning rate knocked them out, or bad initialisation "
                             "— use small positive/zero biases, He init, a lower learning rate (or LeakyReLU)"))
            break
    ratios = [s.std / ref for s in acts]
    for level, thr in ((FAIL, collapse), (WARN, collapse_warn)):
        k = next((i for i, r in enumerate(ratios) if r < thr), None)
        # a collapse is a trend with depth; one dead layer is reported as dead units above
        if k is not None and (ratios[-1] < thr) and not (acts[k].dead is not None and acts[k].dead > dead_warn):
            findings.append((level, "collapse", f"std {acts[k].std:.2g} in {_where(acts[k], acts)}, "
                             f"{acts[-1].std:.2g} at the last",
                             f"activations collapse towards 0 by {_where(acts[k], acts)} (std {ratios[k]:.1g}× the "
                             "input's): weights too small for this depth — use Xavier (tanh) / He (ReLU) init"))
            break
    k = next((i for i, r in enumerate(ratios) if r > grow), None)
    if k is not None:
        findings.append((WARN, "explode", f"std {acts[k].std:.3g} in {_where(acts[k])}",
                         f"activations grow with depth ({ratios[k]:.0f}× the input's std by {_where(acts[k])}): "
                         "weights too large — use Xavier/He init or batch normalisation"))
    expected = f"std steady with depth; ≤ {saturated_warn:.0%} saturated, ≤ {dead_warn:.0%} dead"
    summary = f"std {stds[0]:.2g} → {stds[-1]:.2g} over {len(acts)} layers"
    if not findings:
        return Verdict(CHECK, PASS, summary, expected, "healthy activation scale through the network",
                       details=details)
    findings.sort(key=lambda f: f[0] != FAIL)
    status, cause, value, advice = findings[0]
    details["findings"] = [{"status": f[0], "cause": f[1], "advice": f[3]} for f in findings]
    more = "; ".join(f[3] for f in findings[1:])
    return Verdict(CHECK, status, value, expected, advice + (f". Also: {more}" if more else ""), cause=cause,
                   details=details)


def check_activations(model: Module, x: np.ndarray, bins: int = 40) -> Verdict:
    """Check 6 at initialisation: statistics of one training-mode forward pass on `x`, diagnosed."""
    stats, _ = layer_statistics(model, x, bins=bins)
    v = diagnose_activations(stats, input_std=float(np.std(x)))
    v.details["stats"] = [s.to_dict() for s in stats]
    return v
