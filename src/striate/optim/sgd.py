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

from collections.abc import Iterable, Mapping

import numpy as np

from ..nn.module import Module, Parameter


def _collect(params) -> list[Parameter]:
    """A Module → its parameters; an iterable → its Parameters. Frozen ones (requires_grad False) are skipped."""
    if isinstance(params, Module):
        params = params.parameters()
    elif isinstance(params, Parameter):
        params = [params]
    if not isinstance(params, Iterable):
        raise TypeError(f"expected a Module or an iterable of Parameters, got {type(params).__name__}")
    out, seen = [], set()
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"expected Parameters, got an element of type {type(p).__name__}")
        if id(p) in seen:
            raise ValueError(f"{p!r} appears more than once in the parameter list")
        seen.add(id(p))
        if p.requires_grad:
            out.append(p)
    return out


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

    - `params`: a Module (→ `.parameters()`) or an iterable of Parameters; frozen ones are skipped.
    - hyperparameters are plain attributes (`opt.lr = 0.01` takes effect on the next `step()`);
      `hyperparameters` returns them as a JSON-able dict.
    - per-parameter state lives in `self.state[i]` (a dict name → array, same dtype as the parameter),
      keyed by the parameter's index in `self.params`; created lazily on the first step, as torch does.
    - `step_count` counts calls to `step()` (Adam's bias correction uses it).

    Subclasses set `hyper_names` and implement `_update(p, g, state)`.
    """

    hyper_names: tuple[str, ...] = ()

    def __init__(self, params, **hyper):
        self.params: list[Parameter] = _collect(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no trainable parameters")
        unknown = sorted(set(hyper) - set(self.hyper_names))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown hyperparameters {unknown}; known: {list(self.hyper_names)}"
            )
        for name, value in hyper.items():
            setattr(self, name, value)
        self.state: dict[int, dict[str, np.ndarray]] = {i: {} for i in range(len(self.params))}
        self.step_count = 0

    # ----- the update ---------------------------------------------------------------------
    def step(self) -> None:
        """Apply one update to every parameter from its current `.grad` (the grad is not modified)."""
        self.step_count += 1
        try:
            for i, p in enumerate(self.params):
                if p.requires_grad:
                    self._update(p, p.grad, self.state[i])
        finally:  # scratch lives for one step: nothing parameter-sized is held through the next forward
            self.__dict__.pop("_scratch_buffers", None)

    def _update(self, p: Parameter, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
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
        """{'type', 'hyperparameters', 'step_count', 'state': {index: {name: array copy}}}.

        Everything but 'state' is JSON-able; put `state_arrays()` in safetensors for the rest."""
        return {
            "type": type(self).__name__,
            "hyperparameters": self.hyperparameters,
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
        if "state" in state_dict:
            self._load_state({int(i): s for i, s in state_dict["state"].items()})
        for key, value in hyper.items():
            setattr(self, key, tuple(value) if isinstance(value, list) else value)
        self.step_count = step_count
        return self

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
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov, dampening and L2 weight decay.

    As torch.optim.SGD:  g ← g + wd·p;  b ← g on the first step, else b ← μ·b + (1−dampening)·g;
    g ← g + μ·b (Nesterov) or g ← b;  p ← p − lr·g.
    """

    hyper_names = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0):
        _check_nonneg("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay, dampening=dampening)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov needs momentum > 0 and dampening 0, got momentum={momentum!r}, "
                             f"dampening={dampening!r}")
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, nesterov=bool(nesterov),
                         weight_decay=weight_decay)

    def _update(self, p, g, state):
        dt = p.dtype.type
        g = self._decayed(p, g, self.weight_decay)
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
        p.data -= np.multiply(dt(self.lr), g, out=t)
