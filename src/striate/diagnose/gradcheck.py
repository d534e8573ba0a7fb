"""Numerical gradient checking (the notes' "gradient check"), public library code.

For a model with children, every leaf layer is also checked alone on the input it saw in the model's
forward pass (Torch7's per-module `nn.Jacobian`, `torch.autograd.gradcheck` per module), so the report
names the first layer whose own backward is wrong — the layers below it get wrong gradients too, but pass
alone. When every leaf passes but the model does not, the containers are checked the same way (innermost
first) to name the one that routes gradients wrongly.

Centred differences in float64 on a deep copy of the module, relative error
|a − n| / max(|a|, |n|) per element (the notes' formula, with a floor on the denominator so entries
below what the differences can resolve are judged on an absolute scale), max per tensor. Elements
sitting on a kink (ReLU at 0, a max-pool tie) are detected by their one-sided differences disagreeing
and are skipped, like Caffe's kink band; an element that fails is retried with h/10 and h/100, which moves a
kink lying just inside [x − h, x + h] out of the window (the numerical derivative does not depend on the
backward, so a wrong backward fails at every step). Random layers (dropout, stochastic depth, fractional pooling)
see the same masks in every evaluation: each module's generator state is restored before each forward.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..markup import Displayed, badge, table
from ..nn.losses import Loss
from ..nn.module import Module


@dataclass
class TensorCheck:
    name: str
    max_rel_error: float
    checked: int
    kinks_skipped: int
    ok: bool


@dataclass
class LayerCheck:
    """One layer checked alone on its real input: `name` its dotted path in the model, `layer` its
    description, `tensors` its input and parameter checks."""

    name: str
    layer: str
    tensors: list[TensorCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors)

    @property
    def max_rel_error(self) -> float:
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def where(self) -> str:
        return f"layer {self.name} ({self.layer})" if self.name else self.layer


@dataclass(repr=False)
class GradcheckReport(Displayed):
    """Per-tensor results of the whole module (`tensors`) and, for a model with children, of each layer
    alone (`layers`); `ok` when every error is within `tol`. `first_wrong_layer`: the first layer (in
    forward order) whose own backward is wrong."""

    tensors: list[TensorCheck] = field(default_factory=list)
    tol: float = 1e-5
    layers: list[LayerCheck] = field(default_factory=list)
    module: str = ""  # the checked module's description (a Module without children is its own layer)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors) and all(layer.ok for layer in self.layers)

    @property
    def first_wrong_layer(self) -> LayerCheck | None:
        if not self.layers and self.module and not self.ok:
            return LayerCheck("", self.module, self.tensors)
        return next((layer for layer in self.layers if not layer.ok), None)

    @property
    def errors(self) -> dict[str, float]:
        return {t.name: t.max_rel_error for t in self.tensors}

    def first_failure(self) -> TensorCheck | None:
        return next((t for t in self.tensors if not t.ok), None)

    def __str__(self) -> str:
        lines = [f"gradcheck: {'ok' if self.ok else 'FAILED'} (tol {self.tol:.0e})"]
        for t in self.tensors:
            lines.append(f"  {'ok  ' if t.ok else 'FAIL'} {t.name:<28} max rel error {t.max_rel_error:.2e}"
                         f"  ({t.checked} checked, {t.kinks_skipped} kinks skipped)")
        if self.layers:
            wrong = self.first_wrong_layer
            lines.append(f"each layer alone: {'ok' if wrong is None else 'first wrong layer: ' + wrong.where()}")
            for layer in self.layers:
                worst = max(layer.tensors, key=lambda t: t.max_rel_error, default=None)
                lines.append(f"  {'ok  ' if layer.ok else 'FAIL'} {layer.where():<40} max rel error "
                             f"{layer.max_rel_error:.2e}" + (f" ({worst.name})" if worst is not None else ""))
        return "\n".join(lines)

    def _text(self) -> str:
        """`str`, cut to 25 lines (a model of many layers): `print` the report for all of it."""
        lines = str(self).splitlines()
        return "\n".join(lines if len(lines) <= 25 else [*lines[:23], f"… {len(lines) - 23} more lines "
                                                            "(print the report for all of them)"])

    def _html(self) -> list[str]:
        """The verdict, a row per tensor and, for a model with children, a row per layer checked alone."""
        status = "PASS" if self.ok else "FAIL"
        wrong = self.first_wrong_layer
        head = (f"<p>{badge(status)}<b>gradient check {'ok' if self.ok else 'FAILED'}</b> (tolerance {self.tol:.0e})"
                + ("" if wrong is None else f": first wrong layer {html.escape(wrong.where())}") + "</p>")
        parts = [head, table(["", "tensor", "max rel error", "checked", "kinks skipped"],
                             [["ok" if t.ok else "FAIL", t.name, f"{t.max_rel_error:.2e}", t.checked, t.kinks_skipped]
                              for t in self.tensors], {2, 3, 4})]
        if self.layers:
            parts += ["<p class='meta'>each layer alone, on the input it saw in the model</p>",
                      table(["", "layer", "max rel error", "worst tensor"],
                            [["ok" if la.ok else "FAIL", la.where(), f"{la.max_rel_error:.2e}",
                              max(la.tensors, key=lambda t: t.max_rel_error).name if la.tensors else ""]
                             for la in self.layers], {2})]
        return parts


def _generators(obj) -> list[np.random.Generator]:
    if isinstance(obj, Module):
        return [g for m in obj.modules() for g in vars(m).values() if isinstance(g, np.random.Generator)]
    return []


def gradcheck(module_or_fn, x, *, target=None, backward: Callable | None = None, h: float = 1e-5,
              tol: float = 1e-5, max_checks: int = 64, kink_tol: float = 1e-2, seed: int = 0,
              check_input: bool = True, per_layer: bool = True, layer_checks: int | None = None) -> GradcheckReport:
    """Compare analytic and numerical gradients of the input and of every parameter.

    module_or_fn: a Module (checked on a float64 deep copy; yours is untouched), a Loss (give the
    labels as `target`), or a function `fn(x) -> y` with `backward(dy) -> dx` given.
    The scalar checked is Σ y·R for a fixed random R (or the loss itself for a Loss).
    At most `max_checks` elements per tensor are checked (chosen with `seed`); per_layer: also check each
    leaf layer of a model with children alone, `layer_checks` elements per tensor (default `max_checks`).
    """
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    is_module = isinstance(module_or_fn, Module)
    is_loss = isinstance(module_or_fn, Loss)
    if is_module:
        model = copy.deepcopy(module_or_fn).to(np.float64)
        model.clear_state()
    else:
        model = module_or_fn
        if not is_loss and backward is None:
            raise ValueError("gradcheck of a plain function needs backward=")
    gens = _generators(model)
    states = [g.bit_generator.state for g in gens]

    def forward(inp):
        for g, s in zip(gens, states, strict=True):
            g.bit_generator.state = s
        if is_loss:
            return model(inp, target)
        return model.forward(inp) if is_module else model(inp)

    y = forward(x)
    proj = None if is_loss else rng.standard_normal(np.shape(y))

    def scalar(inp):
        out = forward(inp)
        return float(out) if is_loss else float(np.vdot(out, proj))

    dx = _analytic(model, forward, x, proj, backward if not is_module else None, check_input)
    tensors: list[tuple[str, np.ndarray, np.ndarray]] = []
    if check_input:
        tensors.append(("input", x, np.asarray(dx)))
    if is_module:
        for name, p in model.named_parameters():
            if p.requires_grad:
                tensors.append((name, p.data, p.grad.copy()))

    report = GradcheckReport(tol=tol, module=module_or_fn.describe() if is_module else "")
    probe = _Probe(scalar, x, h, tol, kink_tol)
    for name, array, analytic in tensors:
        n = array.size
        idx = np.arange(n) if n <= max_checks else rng.choice(n, max_checks, replace=False)
        report.tensors.append(_tensor_check(name, array, analytic, probe, idx))
    if is_module and per_layer and model._modules:
        kw = dict(h=h, tol=tol, max_checks=layer_checks or max_checks, kink_tol=kink_tol, seed=seed)
        report.layers = _per_layer(model, x, forward, report.ok, kw)
    return report


def _analytic(model, forward: Callable, x: np.ndarray, proj, backward: Callable | None, check_input: bool):
    """The analytic input gradient of Σ y·proj (of the loss for a Loss: proj None), parameter gradients
    accumulated into the (zeroed) parameters of a Module; `backward`: a plain function's."""
    if isinstance(model, Module):
        model.zero_grad()
    forward(x)
    if proj is None:
        return model.backward()
    if not isinstance(model, Module):
        return backward(proj)
    dx = model.backward(proj)
    if dx is None and check_input:  # a frozen Sequential stops before its input: ask for the gradient
        object.__setattr__(model, "requires_input_grad", True)
        model.zero_grad()
        forward(x)
        dx = model.backward(proj)
    return dx


class _Probe(NamedTuple):
    """The checked scalar as a function of the input, the input `x` it is evaluated at, the step and the
    tolerances."""

    scalar: Callable
    x: np.ndarray
    h: float
    tol: float
    kink_tol: float


def _tensor_check(name: str, array: np.ndarray, analytic: np.ndarray, probe: _Probe, idx) -> TensorCheck:
    """The worst relative error over elements `idx` of `array` (changed in place and restored)."""
    flat = array.reshape(-1)
    worst, kinks = 0.0, 0
    f0 = probe.scalar(probe.x)
    mean_grad = float(np.abs(analytic).mean())
    for k in idx:
        a = float(analytic.reshape(-1)[k])
        # a kink just inside the window [x − h, x + h] bends the centred difference a little without
        # making the one-sided ones disagree by kink_tol (ReLU inputs of size ≈ h, from tiny weights): an
        # element that fails is looked at again with h/10 and h/100, where such a kink falls outside;
        # the numerical derivative does not depend on the backward, so a wrong one fails at every h
        rel = None
        for step in (probe.h, probe.h / 10, probe.h / 100):
            r = _element_error(probe, flat, k, a, step, f0, mean_grad)
            if r is not None:
                rel = r if rel is None else min(rel, r)
            if rel is not None and rel <= probe.tol:
                break
        if rel is None:
            kinks += 1
            continue
        worst = max(worst, rel)
    return TensorCheck(name, worst, len(idx) - kinks, kinks, worst <= probe.tol)


def _element_error(probe: _Probe, flat, k, a, h, f0, mean_grad) -> float | None:
    """Relative error of analytic `a` against the centred difference of element k with step h; None on a kink.

    The denominator is floored at (a) 1e-3 of the tensor's mean |gradient|, so near-zero entries are judged
    against their peers, and (b) the scale that float64 rounding of the centred difference can resolve at
    this tolerance (32·eps·|f|/h/tol, 32 for the rounding of the many operations behind f): a gradient that
    is exactly zero (a conv bias before BatchNorm) then reads as an error of ~0, not 1. A kink shows in the
    one-sided differences as soon as they differ by more than rounding can explain (a tie in a max-pool of
    large activations moves them by O(1) while the floor is far larger)."""
    scalar, x, tol, kink_tol = probe.scalar, probe.x, probe.tol, probe.kink_tol
    noise = 32 * np.finfo(np.float64).eps * max(abs(f0), 1.0) / h
    floor = max(1e-3 * mean_grad, noise / tol)
    kink_floor = max(1e-3 * mean_grad, 4 * noise / kink_tol)
    old = flat[k]
    flat[k] = old + h
    fp = scalar(x)
    flat[k] = old - h
    fm = scalar(x)
    flat[k] = old
    plus, minus = (fp - f0) / h, (f0 - fm) / h
    if abs(plus - minus) > kink_tol * max(abs(plus), abs(minus), kink_floor):
        return None
    num = (fp - fm) / (2 * h)
    return abs(a - num) / max(abs(a), abs(num), floor)


def _per_layer(model: Module, x: np.ndarray, forward: Callable, whole_ok: bool, kw: dict) -> list[LayerCheck]:
    """Each leaf of `model` (a float64 copy) checked alone on the input it sees in `forward(x)`; if they all
    pass but the whole does not, the containers too, innermost first, up to the first that fails."""
    from .hooks import tap

    named = [(n, m) for n, m in model.named_modules() if n]
    inputs: dict[str, np.ndarray] = {}
    with tap(named, on_forward=lambda name, mod, a, b: inputs.setdefault(name, np.array(a))):
        forward(x)
    leaves = [(n, m) for n, m in named if not m._modules and n in inputs]
    layers = [_check_alone(n, m, inputs[n], kw) for n, m in leaves]
    if whole_ok or not all(layer.ok for layer in layers):
        return layers
    containers = sorted([(n, m) for n, m in named if m._modules and n in inputs], key=lambda nm: -nm[0].count("."))
    for n, m in containers:
        check = _check_alone(n, m, inputs[n], kw)
        if not check.ok:
            return layers + [check]
    return layers


def _check_alone(name: str, module: Module, x: np.ndarray, kw: dict) -> LayerCheck:
    m = copy.deepcopy(module)
    object.__setattr__(m, "requires_input_grad", True)  # inside a model the first layer may skip dx
    r = gradcheck(m, x, per_layer=False, **kw)
    return LayerCheck(name, module.describe(), r.tensors)
