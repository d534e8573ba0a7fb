"""The Optimizer base class (hyperparameters apart from per-parameter state) and SGD.

Update rules follow torch.optim's documented algorithms exactly, so trajectories can be compared
step for step. Every update happens in place on `p.data` in the parameter's dtype: Python scalars
are cast with the parameter's dtype before they touch an array, so float32 stays float32. Intermediate
products (lr·g, g + wd·p, …) go to two scratch arrays the optimizer reuses for every parameter of a step
(`_scratch`), not to fresh temporaries: the same operations in the same order as the plain NumPy
expressions, so the results are bit-identical to them, with one allocation per step instead of one or
more per parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..nn.module import Parameter
from .groups import collect_groups


def _check_nonneg(owner: str, **values) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float, np.floating, np.integer)) and value >= 0):
            raise ValueError(f"{owner}: {name} must be a non-negative number, got {value!r}")


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


class Optimizer:
    """Base class. `Optimizer(params, **hyper)`.

    - `params`: a Module (→ `.parameters()`), an iterable of Parameters, or parameter groups: a list of dicts
      `{"params": [...], "lr_mult": 1.0, "decay_mult": 1.0}` (`optim.groups`; `param_groups(model, rules)`
      builds them), whose learning rate is `lr`·lr_mult and weight decay `weight_decay`·decay_mult. Frozen
      parameters (requires_grad False) are skipped; a parameter in two groups is an error.
    - hyperparameters are plain attributes (`opt.lr = 0.01` takes effect on the next `step()`);
      `hyperparameters` returns them as a JSON-able dict. `initial_lr` is the lr the optimizer was built with
      (torch's `initial_lr`), kept through `load_state_dict`.
    - `decoupled_weight_decay` (a hyperparameter of every optimizer but AdamW): the L2 term a group adds to the
      gradient is weight_decay·decay_mult / (initial_lr·lr_mult) instead of weight_decay·decay_mult, so each
      step shrinks the weights by lr(t)/initial_lr · weight_decay·decay_mult (× the update rule's own scaling):
      a decay whose strength does not depend on the size of the lr nor on lr_mult, and follows the schedule's
      shape (the published airbench's `weight_decay = wd / lr` per group). Unlike AdamW's decoupling
      (p ← p·(1 − lr·wd) outside the gradient) and unlike torch.optim.Adam's `decoupled_weight_decay` (which
      makes Adam AdamW), the decay still passes through momentum and the adaptive scaling.
    - per-parameter state lives in `self.state[i]` (a dict name → array, same dtype as the parameter),
      keyed by the parameter's index in `self.params`; created lazily on the first step, as torch does.
    - `step_count` counts calls to `step()` (Adam's bias correction uses it).

    Subclasses set `hyper_names` and implement `_update(p, g, state, lr, weight_decay)` (the group's values).
    """

    hyper_names: tuple[str, ...] = ()

    def __init__(self, params, **hyper):
        name = type(self).__name__
        self.params, self.groups, self.group_of = collect_groups(name, params)
        if not self.params:
            raise ValueError(f"{name}: got no trainable parameters")
        unknown = sorted(set(hyper) - set(self.hyper_names))
        if unknown:
            raise TypeError(f"{name}: unknown hyperparameters {unknown}; known: {list(self.hyper_names)}")
        hyper.setdefault("decoupled_weight_decay", False)
        for key, value in hyper.items():
            setattr(self, key, value)
        self.initial_lr = float(hyper.get("lr", 0.0))
        if self.decoupled_weight_decay and self.initial_lr * min(g["lr_mult"] for g in self.groups) <= 0:
            raise ValueError(f"{name}: decoupled_weight_decay divides the weight decay by the learning rate: "
                             f"lr = {self.initial_lr!r} and every lr_mult must be > 0")
        self.state: dict[int, dict[str, np.ndarray]] = {i: {} for i in range(len(self.params))}
        self.step_count = 0

    # ----- the update ---------------------------------------------------------------------
    def group_hyperparameters(self) -> list[tuple[float, float]]:
        """Each group's (learning rate, L2 coefficient) for the coming step (see the class docstring)."""
        out = []
        for g in self.groups:
            wd = getattr(self, "weight_decay", 0.0) * g["decay_mult"]
            if self.decoupled_weight_decay and wd:
                wd /= self.initial_lr * g["lr_mult"]
            # × 1.0 is exact: without groups, the same update as before them
            out.append((getattr(self, "lr", 0.0) * g["lr_mult"], wd))
        return out

    def step(self) -> None:
        """Apply one update to every parameter from its current `.grad` (the grad is not modified)."""
        self.step_count += 1
        hyper = self.group_hyperparameters()
        try:
            for i, p in enumerate(self.params):
                if p.requires_grad:
                    self._update(p, p.grad, self.state[i], *hyper[self.group_of[i]])
        finally:  # scratch lives for one step: nothing parameter-sized is held through the next forward
            self.__dict__.pop("_scratch_buffers", None)

    def _update(self, p: Parameter, g: np.ndarray, state: dict[str, np.ndarray], lr: float,
                weight_decay: float) -> None:
        raise NotImplementedError(f"{type(self).__name__}._update")

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def _decayed(self, p: Parameter, g: np.ndarray, weight_decay: float) -> np.ndarray:
        """L2 weight decay as torch does it: g + wd·p, in scratch slot 1 (`p.grad` is left alone)."""
        if weight_decay == 0:
            return g
        out = np.multiply(p.data, p.dtype.type(weight_decay), out=self._scratch(1, p.data))
        out += g
        return out

    def _scratch(self, slot: int, like: np.ndarray) -> np.ndarray:
        """An array shaped like `like` (contents undefined), one per `slot` (0: products, 1: the decayed
        gradient) and dtype, as large as the largest parameter, reused for every parameter of one `step()`."""
        buffers = self.__dict__.setdefault("_scratch_buffers", {})
        key = (slot, like.dtype.str)
        buf = buffers.get(key)
        if buf is None or buf.size < like.size:
            buf = buffers[key] = np.empty(max(like.size, max(p.data.size for p in self.params)), like.dtype)
        return buf[:like.size].reshape(like.shape)

    # ----- state --------------------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict:
        """Hyperparameter name → value, JSON-able (tuples become lists)."""
        return {name: _jsonable(getattr(self, name)) for name in self.hyper_names}

    def state_dict(self) -> dict:
        """{'type', 'hyperparameters', 'initial_lr', 'groups', 'step_count', 'state': {index: {name: array copy}}}
        ('groups': each group's lr_mult, decay_mult and number of parameters, in order).

        Everything but 'state' is JSON-able; put `state_arrays()` in safetensors for the rest."""
        return {
            "type": type(self).__name__,
            "hyperparameters": self.hyperparameters,
            "initial_lr": self.initial_lr,
            "groups": [dict(g) for g in self.groups],
            "step_count": self.step_count,
            "state": {i: {k: v.copy() for k, v in s.items()} for i, s in self.state.items()},
        }

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Per-parameter state flattened to {'<index>.<name>': array copy} (safetensors-ready)."""
        return {f"{i}.{k}": v.copy() for i, s in self.state.items() for k, v in s.items()}

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> Optimizer:
        """Inverse of `state_arrays()`: replaces the per-parameter state."""
        nested: dict[int, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            index, sep, name = str(key).partition(".")
            if not sep or not index.isdigit():
                raise KeyError(f"{type(self).__name__}.load_state_arrays: bad key {key!r}, expected '<index>.<name>'")
            nested.setdefault(int(index), {})[name] = value
        self._load_state(nested)
        return self

    def load_state_dict(self, state_dict: Mapping) -> Optimizer:
        """Restore hyperparameters, the step counter and per-parameter state (arrays are copied
        and cast to each parameter's dtype). State keys may be ints or strings (after JSON). The whole
        state is checked before anything changes: a state that does not fit raises and leaves the optimizer
        as it was. Without 'state', the per-parameter state is left to `load_state_arrays`."""
        name = type(self).__name__
        missing = [k for k in ("type", "hyperparameters", "step_count")
                   if not isinstance(state_dict, Mapping) or k not in state_dict]
        if missing:
            raise KeyError(f"{name}.load_state_dict: the state lacks {', '.join(repr(k) for k in missing)}")
        if state_dict["type"] != name:
            raise ValueError(f"{name}.load_state_dict: state belongs to a {state_dict['type']!r} optimizer")
        hyper = state_dict["hyperparameters"]
        unknown = sorted(set(hyper) - set(self.hyper_names))
        if unknown:
            raise KeyError(f"{name}.load_state_dict: unknown hyperparameters {unknown}")
        step_count = int(state_dict["step_count"])
        before = self.state
        if "state" in state_dict:
            self._load_state({int(i): s for i, s in state_dict["state"].items()})
        try:
            groups = self._loaded_groups(state_dict.get("groups"))
        except ValueError:
            self.state = before
            raise
        for key, value in hyper.items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.step_count = step_count
        self.groups = groups
        self.initial_lr = float(state_dict.get("initial_lr", self.initial_lr))
        return self

    def _loaded_groups(self, saved) -> list[dict]:
        """The saved groups' multipliers, when their sizes fit this optimizer's groups (a state without groups,
        from before them: the current ones)."""
        if saved is None:
            return self.groups
        sizes = [int(g["size"]) for g in saved]
        if sizes != [g["size"] for g in self.groups]:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has parameter groups of sizes "
                             f"{sizes}, this optimizer {[g['size'] for g in self.groups]}")
        return [{"lr_mult": float(g["lr_mult"]), "decay_mult": float(g["decay_mult"]), "size": int(g["size"])}
                for g in saved]

    def _load_state(self, nested: Mapping[int, Mapping[str, np.ndarray]]) -> None:
        bad = sorted(i for i in nested if not 0 <= i < len(self.params))
        if bad:
            raise KeyError(
                f"{type(self).__name__}: state for parameter indices {bad}, but there are {len(self.params)} parameters"
            )
        fresh: dict[int, dict[str, np.ndarray]] = {i: {} for i in range(len(self.params))}
        for i, s in nested.items():
            p = self.params[i]
            for name, value in s.items():
                value = np.asarray(value)
                if value.shape != p.shape:
                    raise ValueError(
                        f"{type(self).__name__}: state '{i}.{name}' has shape {value.shape}, parameter has {p.shape}"
                    )
                fresh[i][name] = value.astype(p.dtype, copy=True)
        self.state = fresh

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        groups = ""
        if len(self.groups) > 1 or any(g["lr_mult"] != 1 or g["decay_mult"] != 1 for g in self.groups):
            groups = ", groups=[" + ", ".join(
                f"{g['size']} × (lr_mult={g['lr_mult']:g}, decay_mult={g['decay_mult']:g})" for g in self.groups) + "]"
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper}{groups})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov, dampening and L2 weight decay.

    As torch.optim.SGD:  g ← g + wd·p;  b ← g on the first step, else b ← μ·b + (1−dampening)·g;
    g ← g + μ·b (Nesterov) or g ← b;  p ← p − lr·g.
    """

    hyper_names = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "decoupled_weight_decay")

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0, decoupled_weight_decay: bool = False):
        _check_nonneg("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay, dampening=dampening)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov needs momentum > 0 and dampening 0, got momentum={momentum!r}, "
                             f"dampening={dampening!r}")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, nesterov=bool(nesterov),
                         weight_decay=weight_decay, decoupled_weight_decay=bool(decoupled_weight_decay))

    def _update(self, p, g, state, lr, weight_decay):
        dt = p.dtype.type
        g = self._decayed(p, g, weight_decay)
        t = self._scratch(0, p.data)
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= dt(self.momentum)
                if self.dampening == 0:
                    buf += g
                else:
                    buf += np.multiply(dt(1 - self.dampening), g, out=t)
            if self.nesterov:  # g + μ·b, as μ·b + g (IEEE addition commutes exactly)
                nesterov = np.multiply(dt(self.momentum), buf, out=t)
                nesterov += g
                g = nesterov
            else:
                g = buf
        p.data -= np.multiply(dt(lr), g, out=t)
