"""Networks as layer lists: the model of a run file's `[model] layers = [...]`.

    layers = [
      { layer = "Conv2d", out_channels = 16, kernel_size = 3, padding = 1, init = "xavier" },
      { layer = "LeakyReLU", negative_slope = 0.1 },
      { layer = "MaxPool2d", kernel_size = 2 },
      { layer = "Flatten" },
      { layer = "Linear", out_features = 10, init = { normal = 0.01 }, bias_init = { constant = 0.01 } },
    ]

Each table names a layer class of `st.nn` (or one added with `register_layer`) and its constructor's keywords,
PyTorch's names. The input sizes (`in_channels`, `in_features`, `num_features`) are inferred from the previous
layer's output shape; the last layer's `out_features` may be left out, and is then the dataset's class
count. `init` / `bias_init` take an initialiser: a name or a table (`{ normal = 0.01 }`, `{ sparse = 10 }`,
`{ constant = 0.01 }`); PReLU's own `init` is its initial slope, a number, as in PyTorch. Containers nest:
`{ layer = "Residual", body = [...], shortcut = [...], survival = 0.8 }` (a shortcut is needed when the
channels change), `{ layer = "Concat", branches = [[...], [...]] }`, `{ layer = "Sequential", layers = [...] }`.
An error names the table (`model.layers[3]`, `model.layers[5].body[1]`) and the bad keyword.
"""

from __future__ import annotations

import difflib
import inspect

import numpy as np

from .. import nn
from ..nn.module import Module

_LAYERS: dict[str, type] = {name: getattr(nn, name) for name in nn.__all__
                            if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), Module)
                            and name not in ("Module", "Concat", "Residual", "Sequential")}
CONTAINERS = ("Sequential", "Residual", "Concat")
INFERRED = ("in_channels", "in_features", "num_features")  # taken from the previous layer's output shape


def register_layer(name: str, cls: type) -> None:
    """Make a Module subclass of your own usable by name in layer lists."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_layer({name!r}): expected a Module subclass, got {cls!r}")
    _LAYERS[name] = cls


def takes(name: str) -> set[str]:
    """The keywords a layer list's table may give layer class `name`."""
    if name == "Sequential":
        return {"layers"}
    if name == "Residual":
        return {"body", "shortcut", "survival"}
    if name == "Concat":
        return {"branches"}
    cls = _LAYERS.get(name)
    return set() if cls is None else set(inspect.signature(cls).parameters) - {"rng", "dtype"}


def layer_names() -> list[str]:
    return sorted([*_LAYERS, *CONTAINERS])


def _class(table: dict, where: str) -> str:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table such as {{ layer = \"ReLU\" }}, got {table!r}")
    name = table.get("layer")
    if name in CONTAINERS or name in _LAYERS:
        return name
    hint = difflib.get_close_matches(str(name), layer_names(), n=1)
    maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"{where}: unknown layer {name!r}{maybe}; choose from {', '.join(layer_names())}")


class _Builder:
    def __init__(self, num_classes: int, rng: np.random.Generator):
        self.num_classes, self.rng = num_classes, rng

    def sequence(self, tables, shape: tuple, where: str, last: bool) -> tuple[list[Module], tuple]:
        if not isinstance(tables, list | tuple) or not tables:
            raise ValueError(f"{where}: expected a non-empty list of layer tables, got {tables!r}")
        layers = []
        for i, table in enumerate(tables):
            layer, shape = self.layer(table, shape, f"{where}[{i}]", last and i == len(tables) - 1)
            layers.append(layer)
        return layers, shape

    def layer(self, table, shape: tuple, where: str, last: bool) -> tuple[Module, tuple]:
        name = _class(table, where)
        kw = {k: v for k, v in table.items() if k != "layer"}
        if name in CONTAINERS:
            layer = self.container(name, kw, shape, where, last)
        else:
            layer = self.leaf(name, kw, shape, where, last)
        try:
            return layer, layer.output_shape(shape)
        except ValueError as e:
            raise ValueError(f"{where} ({name}): {e}") from None

    def container(self, name: str, kw: dict, shape: tuple, where: str, last: bool) -> Module:
        allowed = {"Sequential": ("layers",), "Residual": ("body", "shortcut", "survival"),
                   "Concat": ("branches",)}[name]
        unknown = sorted(set(kw) - set(allowed))
        if unknown:
            raise ValueError(f"{where} ({name}): unknown keyword {unknown[0]!r}; it takes {', '.join(allowed)}")
        if name == "Sequential":
            return nn.Sequential(*self.sequence(kw.get("layers"), shape, f"{where}.layers", last)[0])
        if name == "Concat":
            branches = kw.get("branches")
            if not isinstance(branches, list) or not branches:
                raise ValueError(f"{where} (Concat): branches must be a list of layer lists")
            return nn.Concat(*(nn.Sequential(*self.sequence(b, shape, f"{where}.branches[{j}]", False)[0])
                               for j, b in enumerate(branches)))
        body = nn.Sequential(*self.sequence(kw.get("body"), shape, f"{where}.body", False)[0])
        shortcut = kw.get("shortcut")
        if shortcut is not None:
            shortcut = nn.Sequential(*self.sequence(shortcut, shape, f"{where}.shortcut", False)[0])
        return nn.Residual(body, shortcut, survival=kw.get("survival", 1.0), rng=self.rng)

    def leaf(self, name: str, kw: dict, shape: tuple, where: str, last: bool) -> Module:
        cls = _LAYERS[name]
        params = inspect.signature(cls).parameters
        unknown = [k for k in kw if k not in params or params[k].kind is inspect.Parameter.VAR_POSITIONAL]
        if unknown:
            hint = difflib.get_close_matches(unknown[0], list(params), n=1)
            maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
            takes = ", ".join(k for k in params if k not in ("rng", "dtype"))
            raise ValueError(f"{where} ({name}): unknown keyword {unknown[0]!r}{maybe}; {name} takes {takes}")
        for key in INFERRED:
            if key in params and key not in kw:
                kw[key] = int(shape[-1])
        if "out_features" in params and "out_features" not in kw and last:
            kw["out_features"] = self.num_classes  # the classifier: as many outputs as classes
        if "rng" in params:
            kw["rng"] = self.rng
        self._initialisers(name, kw, params, where)
        missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kw
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if missing:
            raise ValueError(f"{where} ({name}): give {', '.join(repr(m) for m in missing)}")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where} ({name}): {e}") from None

    @staticmethod
    def _initialisers(name: str, kw: dict, params, where: str) -> None:
        """`init`/`bias_init` as initialisers, except PReLU's `init`: its initial slope, a number."""
        from ..nn import init as inits

        for key in ("init", "bias_init"):
            if key not in kw or key not in params:
                continue
            if name == "PReLU" and key == "init":
                if not isinstance(kw[key], int | float) or isinstance(kw[key], bool):
                    raise ValueError(f"{where} (PReLU): init is PReLU's initial slope, a number (as in PyTorch), "
                                     f"not an initialiser: got {kw[key]!r}")
                continue
            try:
                kw[key] = inits.get(kw[key])
            except ValueError as e:
                raise ValueError(f"{where} ({name}): {key}: {e}") from None


def layer_list(num_classes: int = 10, in_channels: int = 3, image_size=32, *, rng: np.random.Generator,
               layers: list) -> nn.Sequential:
    """The network a layer list describes (see the module docstring), for images (H, W, in_channels)."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    built, shape = _Builder(int(num_classes), rng).sequence(layers, (1, int(h), int(w), int(in_channels)),
                                                             "model.layers", last=True)
    if len(shape) != 2 or shape[-1] != num_classes:
        raise ValueError(f"model.layers: the network gives outputs of shape {shape[1:]}, expected "
                         f"({num_classes},) class scores: end with a Linear (its out_features may be left out)")
    return nn.Sequential(*built)
