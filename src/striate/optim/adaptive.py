"""Per-coordinate adaptive methods: AdaGrad, RMSProp, Adam (with AMSGrad) and AdamW.

Each follows torch.optim's documented algorithm (eps outside the square root everywhere; Adam's
bias correction as torch computes it), updating `p.data` in place in the parameter's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .sgd import Optimizer, _check_nonneg


class AdaGrad(Optimizer):
    """As torch.optim.Adagrad (initial accumulator 0):
    g ← g + wd·p;  s ← s + g²;  p ← p − clr·g / (√s + eps),  clr = lr / (1 + (t−1)·lr_decay)."""

    hyper_names = ("lr", "eps", "weight_decay", "lr_decay", "decoupled_weight_decay")

    def __init__(self, params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0,
                 lr_decay: float = 0.0, decoupled_weight_decay: bool = False):
        _check_nonneg("AdaGrad", lr=lr, eps=eps, weight_decay=weight_decay, lr_decay=lr_decay)
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay, lr_decay=lr_decay,
                         decoupled_weight_decay=bool(decoupled_weight_decay))

    def _update(self, p, g, state, lr, weight_decay):
        dt = p.dtype.type
        g = self._decayed(p, g, weight_decay)
        if "sum" not in state:
            state["sum"] = np.zeros_like(p.data)
        s = state["sum"]
        t = self._scratch(0, p.data)
        s += np.multiply(g, g, out=t)
        denom = np.sqrt(s, out=t)
        denom += dt(self.eps)
        np.divide(g, denom, out=denom)
        clr = lr / (1 + (self.step_count - 1) * self.lr_decay)
        denom *= dt(clr)
        p.data -= denom


class RMSProp(Optimizer):
    """As torch.optim.RMSprop:  g ← g + wd·p;  v ← α·v + (1−α)·g²;  (centered: m ← α·m + (1−α)·g,
    v̂ = v − m²);  d = √v̂ + eps;  momentum μ>0: b ← μ·b + g/d, p ← p − lr·b;  else p ← p − lr·g/d."""

    hyper_names = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "decoupled_weight_decay")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, decoupled_weight_decay: bool = False):
        _check_nonneg("RMSProp", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=bool(centered), decoupled_weight_decay=bool(decoupled_weight_decay))

    def _update(self, p, g, state, lr, weight_decay):
        dt = p.dtype.type
        g = self._decayed(p, g, weight_decay)
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p.data)
            if self.momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if self.centered:
                state["grad_avg"] = np.zeros_like(p.data)
        v = state["square_avg"]
        v *= dt(self.alpha)
        t = np.multiply(dt(1 - self.alpha), g, out=self._scratch(0, p.data))  # (1−α)·g·g, left to right
        t *= g
        v += t
        if self.centered:
            m = state["grad_avg"]
            t = np.subtract(g, m, out=t)
            t *= dt(1 - self.alpha)
            m += t
            denom = np.multiply(m, m, out=t)
            np.subtract(v, denom, out=denom)
            np.sqrt(denom, out=denom)
        else:
            denom = np.sqrt(v, out=t)
        denom += dt(self.eps)
        np.divide(g, denom, out=denom)
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= dt(self.momentum)
            buf += denom
            p.data -= np.multiply(dt(lr), buf, out=denom)
        else:
            denom *= dt(lr)
            p.data -= denom


class Adam(Optimizer):
    """As torch.optim.Adam:  g ← g + wd·p (L2, coupled);  m ← m + (1−β₁)(g − m);  v ← β₂·v + (1−β₂)·g²;
    (AMSGrad: v̂ ← max(v̂, v), used in place of v);  d = √v / √(1−β₂ᵗ) + eps;  p ← p − (lr / (1−β₁ᵗ))·m / d."""

    hyper_names = ("lr", "betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, decoupled_weight_decay: bool = False):
        name = type(self).__name__
        _check_nonneg(name, lr=lr, eps=eps, weight_decay=weight_decay)
        if self._decoupled and decoupled_weight_decay:
            raise ValueError("AdamW: decoupled_weight_decay is the L2 form wd / initial_lr of the other optimizers; "
                             "AdamW decays p ← p·(1 − lr·wd) outside the gradient already: use Adam with "
                             "decoupled_weight_decay=True, or AdamW without it")
        betas = tuple(float(b) for b in betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=bool(amsgrad),
                         decoupled_weight_decay=bool(decoupled_weight_decay))

    def _update(self, p, g, state, lr, weight_decay):
        dt = p.dtype.type
        beta1, beta2 = self.betas
        if self._decoupled:
            if weight_decay != 0:
                p.data *= dt(1 - lr * weight_decay)
        else:
            g = self._decayed(p, g, weight_decay)
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        work = np.subtract(g, m, out=self._scratch(0, p.data))
        work *= dt(1 - beta1)  # (1−β₁)·(g − m): multiplication commutes exactly
        m += work
        v *= dt(beta2)
        np.multiply(dt(1 - beta2), g, out=work)  # (1−β₂)·g·g, left to right
        work *= g
        v += work
        if self.amsgrad:
            vmax = state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        t = self.step_count
        bias_correction1 = 1 - beta1**t
        bias_correction2_sqrt = math.sqrt(1 - beta2**t)
        denom = np.sqrt(v, out=work)
        denom /= dt(bias_correction2_sqrt)
        denom += dt(self.eps)
        np.divide(m, denom, out=denom)
        denom *= dt(lr / bias_correction1)
        p.data -= denom


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: p ← p·(1 − lr·wd) before the Adam step
    (the gradient itself is not decayed). Default weight_decay 1e-2 as in torch. A parameter group's decay is
    lr·lr_mult · weight_decay·decay_mult, as torch's AdamW with those group values; `decoupled_weight_decay`
    (the other optimizers' L2 form wd / initial_lr) is refused: AdamW's decay is decoupled already."""

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, decoupled_weight_decay: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         decoupled_weight_decay=decoupled_weight_decay)
