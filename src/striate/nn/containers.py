"""Containers: Sequential, Concat (parallel branches joined on channels, the Inception module) and
Residual (identity or projection shortcut, optional stochastic depth). Errors raised inside a child
are re-raised naming the child and its position."""

from __future__ import annotations

import contextlib

import numpy as np

from ..kernels.keyed_random import layer_random
from .activation import ReLU
from .folding import blocks as folded_blocks
from .folding import forget as forget_folded
from .module import Module, grad_enabled
from .norm import BatchNorm


def _rethrow(error: Exception, where: str) -> Exception:
    """The same exception type with `where` prefixed, chained to the original."""
    message = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
    try:
        return type(error)(f"{where}: {message}")
    except Exception:
        return RuntimeError(f"{where}: {type(error).__name__}: {message}")


@contextlib.contextmanager
def _inside(where: str):
    """Re-raise any error of the block with `where` (the failing child) prefixed."""
    try:
        yield
    except Exception as e:
        raise _rethrow(e, where) from e


def _fused_pairs(layers: list[Module]) -> set[int]:
    """Indices i where layers[i] is a BatchNorm directly followed by a ReLU, both plain (their classes exactly,
    no hooks: the fused pass skips their own forwards, so a hook would not be called): that pair runs fused."""
    def plain(m, cls):
        return type(m) is cls and not m.has_hooks()

    return {i for i in range(len(layers) - 1) if plain(layers[i], BatchNorm) and plain(layers[i + 1], ReLU)}


class Sequential(Module):
    """Applies children in order; backward runs them in reverse."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def append(self, module: Module) -> Sequential:
        setattr(self, str(len(self)), module)
        return self

    def _where(self, i: int, m: Module) -> str:
        return f"in layer {i} ({m.describe()}) of {type(self).__name__}"

    def relist(self, layers: list[Module]) -> Sequential:
        """Replace the children by `layers` (renumbered from 0); the container keeps its other attributes."""
        for name in list(self._modules):
            del self._modules[name]
            self.__dict__.pop(name, None)
        for i, m in enumerate(layers):
            setattr(self, str(i), m)
        return self

    def forward(self, x):
        layers = list(self._modules.values())
        fused = _fused_pairs(layers)
        if grad_enabled():  # a forward that may be followed by backward: layer by layer
            blocks = {}
            forget_folded(self)
        else:  # eval-mode blocks run with BatchNorm folded and bias + activation fused (nn.folding)
            blocks = folded_blocks(self, layers)
        i = 0
        while i < len(layers):
            m = layers[i]
            with _inside(self._where(i, m)):
                if i in blocks:
                    x = blocks[i](x)
                    i = blocks[i].stop
                    continue
                if i in fused:  # BatchNorm then ReLU: one pass (see nn.norm)
                    x = m.forward_fused_relu(x, layers[i + 1])
                    i += 2
                    continue
                x = m.forward(x)
            i += 1
        return x

    def _first_needed(self, layers) -> int:
        """Index of the lowest layer backward must reach: 0 if our input gradient is wanted, else the
        first layer with a trainable parameter (nothing below it needs a gradient)."""
        if self.requires_input_grad:
            return 0
        for i, m in enumerate(layers):
            if any(p.requires_grad for p in m.parameters()):
                return i
        return len(layers)

    def backward(self, dy):
        layers = list(self._modules.values())
        stop = self._first_needed(layers)
        fused = _fused_pairs(layers)
        i = len(layers) - 1
        while i >= stop:
            layers[i].requires_input_grad = i > stop or self.requires_input_grad
            with _inside(self._where(i, layers[i])):
                if i - 1 in fused and i - 1 >= stop and layers[i].fused_with(layers[i - 1]):
                    dy = layers[i - 1].backward_fused_relu(dy)
                    i -= 2
                    continue
                dy = layers[i].backward(dy)
            i -= 1
        return dy if stop == 0 else None

    def output_shape(self, input_shape):
        shape = self._input_shape(input_shape)
        for i, m in enumerate(self._modules.values()):
            with _inside(self._where(i, m)):
                shape = m.output_shape(shape)
        return shape

    def macs(self, input_shape):
        total, shape = 0, self._input_shape(input_shape)
        for i, m in enumerate(self._modules.values()):
            with _inside(self._where(i, m)):
                total += m.macs(shape)
                shape = m.output_shape(shape)
        return total

    def describe(self):
        return f"Sequential({len(self)} layers)"

    # ----- transfer learning (freeze/unfreeze: Module) ------------------------------------
    def replace_head(self, num_classes: int, rng: np.random.Generator | None = None):
        """Replace the last Linear layer (searching nested Sequentials from the end) by a freshly initialised
        Linear with the same inputs and `num_classes` outputs, same dtype and bias; returns the new layer."""
        from .linear import Linear

        for name, child in reversed(list(self._modules.items())):
            if isinstance(child, Linear):
                head = Linear(child.in_features, int(num_classes), bias=child.bias is not None, rng=rng,
                              dtype=child.weight.dtype)
                setattr(self, name, head)
                self._record_classes(num_classes)
                return head
            if isinstance(child, Sequential):
                try:
                    head = child.replace_head(num_classes, rng)
                except ValueError:
                    pass
                else:
                    self._record_classes(num_classes)
                    return head
            if any(True for _ in child.parameters()):
                break  # a parameterised layer after the last Linear: it is not a classifier head
        raise ValueError(f"{self.describe()}.replace_head: no Linear layer ends this network")

    def _record_classes(self, num_classes: int) -> None:
        config = getattr(self, "build_config", None)
        if isinstance(config, dict) and "num_classes" in config:
            config["num_classes"] = int(num_classes)


class Concat(Module):
    """Runs every branch on the same input and concatenates their outputs on the last (channel) axis.
    Branch outputs must agree on every other axis. x: (N, H, W, C) → (N, H, W, ΣC_i)."""

    def __init__(self, *branches: Module):
        super().__init__()
        if not branches:
            raise ValueError("Concat needs at least one branch")
        for i, m in enumerate(branches):
            setattr(self, str(i), m)

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def forward(self, x):
        outs = []
        for i, m in enumerate(self._modules.values()):
            with _inside(self._where(i, m)):
                outs.append(m.forward(x))
        lead = outs[0].shape[:-1]
        for i, o in enumerate(outs):
            if o.shape[:-1] != lead:
                raise self._error(f"branch {i} gives {o.shape}, branch 0 gives {outs[0].shape}: "
                                  "all axes but the last must agree")
        y = np.concatenate(outs, axis=-1)
        self._save([o.shape[-1] for o in outs], y)
        return y

    def backward(self, dy):
        sizes = self._saved(dy)
        splits = np.cumsum(sizes)[:-1]
        dx = None
        for i, (m, g) in enumerate(zip(self._modules.values(), np.split(dy, splits, axis=-1), strict=True)):
            with _inside(self._where(i, m)):
                gi = m.backward(np.ascontiguousarray(g))
            dx = gi if dx is None else dx + gi
        return dx

    def _where(self, i: int, m: Module) -> str:
        return f"in branch {i} ({m.describe()}) of Concat"

    def _each(self, method: str, input_shape) -> list:
        """`output_shape` or `macs` of every branch on `input_shape`, errors naming the branch."""
        results = []
        for i, m in enumerate(self._modules.values()):
            with _inside(self._where(i, m)):
                results.append(getattr(m, method)(input_shape))
        return results

    def output_shape(self, input_shape):
        shapes = self._each("output_shape", input_shape)
        for i, s in enumerate(shapes):
            if s[:-1] != shapes[0][:-1]:
                raise self._error(f"branch {i} gives {s}, branch 0 gives {shapes[0]} for input {tuple(input_shape)}")
        return shapes[0][:-1] + (sum(s[-1] for s in shapes),)

    def macs(self, input_shape):
        return sum(self._each("macs", input_shape))

    def describe(self):
        return f"Concat({len(self)} branches)"


class Residual(Module):
    """y = shortcut(x) + body(x), shortcut the identity when None (He et al. 2016).

    Stochastic depth (Huang et al. 2016) with `survival < 1`: at train time each sample's body output is
    kept with probability `survival` and scaled by 1/survival (torchvision's `StochasticDepth`, row mode),
    so eval is the plain sum. Masks come from `rng`.
    """

    def __init__(self, body: Module, shortcut: Module | None = None, survival: float = 1.0,
                 rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 < survival <= 1.0:
            raise ValueError(f"Residual: survival must be in (0, 1], got {survival}")
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut
        self.survival = float(survival)
        self.rng = rng if rng is not None else np.random.default_rng()

    def _shortcut(self):
        return self._modules.get("shortcut")

    def forward(self, x):
        with _inside(self._where("body")):
            y = self.body.forward(x)
        keep = None
        if self.training and self.survival < 1.0:
            keep = layer_random(self.rng).random(x.shape[0]) < self.survival
            keep = keep.astype(y.dtype) / y.dtype.type(self.survival)
            y = y * keep.reshape((-1,) + (1,) * (y.ndim - 1))
        sc = self._shortcut()
        if sc is None:
            s = x
        else:
            with _inside(self._where("shortcut")):
                s = sc.forward(x)
        if s.shape != y.shape:
            raise self._error(f"body gives {y.shape} but shortcut gives {s.shape}; add a projection shortcut")
        out = y + s
        # the cache slot must be non-None to mark "forward happened" even without a mask
        self._save(("keep", keep), out)
        return out

    def backward(self, dy):
        _, keep = self._saved(dy)
        db = dy if keep is None else dy * keep.reshape((-1,) + (1,) * (dy.ndim - 1))
        with _inside(self._where("body")):
            dx = self.body.backward(db)
        sc = self._shortcut()
        if sc is None:
            return dx + dy
        with _inside(self._where("shortcut")):
            return dx + sc.backward(dy)

    def _where(self, part: str) -> str:
        return f"in {part} ({self._modules[part].describe()}) of Residual"

    def output_shape(self, input_shape):
        with _inside(self._where("body")):
            shape = self.body.output_shape(input_shape)
        sc = self._shortcut()
        if sc is None:
            other = self._input_shape(input_shape)
        else:
            with _inside(self._where("shortcut")):
                other = sc.output_shape(input_shape)
        if tuple(other) != tuple(shape):
            raise self._error(f"body gives {shape} but shortcut gives {other}; add a projection shortcut")
        return shape

    def macs(self, input_shape):
        with _inside(self._where("body")):
            total = self.body.macs(input_shape)
        sc = self._shortcut()
        if sc is not None:
            with _inside(self._where("shortcut")):
                total += sc.macs(input_shape)
        return total

    def extra_repr(self):
        return f"survival={self.survival}" if self.survival < 1 else ""
