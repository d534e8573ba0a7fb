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
An error names the table (`model.layers[3]`, `model.layers[5].body[1]`) and the bad keyword. Every keyword's
value is checked against the constructor's signature (`models.keywords`) before the layer is made, and
containers nest at most `MAX_DEPTH` deep; `check(layers)` runs these checks without building anything (a run
file is checked when it is read, before any work).
"""

from __future__ import annotations

import difflib
import inspect

import numpy as np

from .. import nn
from ..nn.module import Module
from .keywords import check_value, describe

_LAYERS: dict[str, type] = {name: getattr(nn, name) for name in nn.__all__
                            if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), Module)
                            and name not in ("Module", "Concat", "Residual", "Sequential")}
CONTAINERS = ("Sequential", "Residual", "Concat")
INFERRED = ("in_channels", "in_features", "num_features")  # taken from the previous layer's output shape
MAX_DEPTH = 32  # containers within containers; deeper is a mistake (and would exhaust Python's stack)
_CONTAINER_KEYWORDS = {"Sequential": ("layers",), "Residual": ("body", "shortcut", "survival"),
                       "Concat": ("branches",)}
_NOT_GIVEN = ("rng", "dtype")  # the builder's: the run's seed, and float32 throughout


def register_layer(name: str, cls: type) -> None:
    """Make a Module subclass of your own usable by name in layer lists."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_layer({name!r}): expected a Module subclass, got {cls!r}")
    _LAYERS[name] = cls


def takes(name: str) -> set[str]:
    """The keywords a layer list's table may give layer class `name`."""
    if name in CONTAINERS:
        return set(_CONTAINER_KEYWORDS[name])
    cls = _LAYERS.get(name)
    return set() if cls is None else set(_params(cls)) - set(_NOT_GIVEN)


def _params(cls) -> dict:
    return {k: p for k, p in inspect.signature(cls).parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def layer_names() -> list[str]:
    return sorted([*_LAYERS, *CONTAINERS])


def _class(table, where: str) -> str:
    if not isinstance(table, dict):
        raise ValueError(f"{where}: expected a table such as {{ layer = \"ReLU\" }}, got {table!r}")
    name = table.get("layer")
    if isinstance(name, str) and (name in CONTAINERS or name in _LAYERS):
        return name
    hint = difflib.get_close_matches(str(name), layer_names(), n=1)
    maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"{where}: unknown layer {name!r}{maybe}; choose from {', '.join(layer_names())}")


def _keywords(name: str, table: dict, where: str) -> dict:
    """The table's keywords, each a keyword layer `name` takes with a value of the type it takes."""
    kw = {k: v for k, v in table.items() if k != "layer"}
    if name in CONTAINERS:
        allowed = _CONTAINER_KEYWORDS[name]
        unknown = [k for k in kw if k not in allowed]
        if unknown:
            raise ValueError(f"{where} ({name}): unknown keyword {unknown[0]!r}; it takes {', '.join(allowed)}")
        if "survival" in kw:
            check_value(kw["survival"], inspect.signature(nn.Residual).parameters["survival"], f"{where}.survival")
        return kw
    params = _params(_LAYERS[name])
    unknown = [k for k in kw if k not in params or k in _NOT_GIVEN]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], [k for k in params if k not in _NOT_GIVEN], n=1)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        why = {"rng": " (the run's seed sets it)", "dtype": " (layers are float32)"}.get(unknown[0], "")
        raise ValueError(f"{where} ({name}): unknown keyword {unknown[0]!r}{why}{maybe}; {name} takes "
                         f"{describe(params, skip=_NOT_GIVEN)}")
    for k, v in kw.items():
        if name == "PReLU" and k == "init" and (not isinstance(v, int | float) or isinstance(v, bool)):
            raise ValueError(f"{where} (PReLU): init is PReLU's initial slope, a number (as in PyTorch), not an "
                             f"initialiser: got {v!r}")
        if k in ("init", "bias_init") and name != "PReLU":
            _initialiser(v, f"{where} ({name}): {k}")
            continue
        check_value(v, params[k], f"{where}.{k}")
    return kw


def _initialiser(spec, where: str):
    """`spec` as an initialiser (a name or a table, e.g. {normal = 0.01}); ValueError naming it otherwise."""
    from ..nn import init as inits

    try:
        return inits.get(spec)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _sublists(name: str, kw: dict, where: str) -> list[tuple[object, str]]:
    """The layer lists inside container table `name`: [(list, where)]."""
    if name == "Sequential":
        return [(kw.get("layers"), f"{where}.layers")]
    if name == "Residual":
        return [(kw.get("body"), f"{where}.body")] + (
            [(kw["shortcut"], f"{where}.shortcut")] if kw.get("shortcut") is not None else [])
    branches = kw.get("branches")
    if not isinstance(branches, list) or not branches:
        raise ValueError(f"{where} (Concat): branches must be a list of layer lists")
    return [(b, f"{where}.branches[{j}]") for j, b in enumerate(branches)]


def _tables(tables, where: str) -> list:
    if not isinstance(tables, list | tuple) or not tables:
        raise ValueError(f"{where}: expected a non-empty list of layer tables, got {tables!r}")
    return list(tables)


def _deeper(where: str, depth: int) -> int:
    if depth >= MAX_DEPTH:
        raise ValueError(f"{where}: containers nested more than {MAX_DEPTH} deep")
    return depth + 1


def check(layers, where: str = "model.layers", depth: int = 0) -> None:
    """ValueError naming the first table with an unknown layer or keyword, a keyword value of the wrong type,
    or containers nested too deep: everything that can be said before the image size is known."""
    for i, table in enumerate(_tables(layers, where)):
        here = f"{where}[{i}]"
        name = _class(table, here)
        kw = _keywords(name, table, here)
        if name in CONTAINERS:
            for sub, at in _sublists(name, kw, here):
                check(sub, at, _deeper(here, depth))


class _Builder:
    def __init__(self, num_classes: int, rng: np.random.Generator):
        self.num_classes, self.rng = num_classes, rng

    def sequence(self, tables, shape: tuple, where: str, last: bool, depth: int = 0) -> tuple[list[Module], tuple]:
        tables = _tables(tables, where)
        layers = []
        for i, table in enumerate(tables):
            layer, shape = self.layer(table, shape, f"{where}[{i}]", last and i == len(tables) - 1, depth)
            layers.append(layer)
        return layers, shape

    def layer(self, table, shape: tuple, where: str, last: bool, depth: int) -> tuple[Module, tuple]:
        name = _class(table, where)
        kw = _keywords(name, table, where)
        if name in CONTAINERS:
            layer = self.container(name, kw, shape, where, last, _deeper(where, depth))
        else:
            layer = self.leaf(name, kw, shape, where, last)
        try:
            return layer, layer.output_shape(shape)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise ValueError(f"{where} ({name}): {e}") from None

    def container(self, name: str, kw: dict, shape: tuple, where: str, last: bool, depth: int) -> Module:
        lists = _sublists(name, kw, where)
        if name == "Sequential":
            (tables, at), = lists
            return nn.Sequential(*self.sequence(tables, shape, at, last, depth)[0])
        if name == "Concat":
            return nn.Concat(*(nn.Sequential(*self.sequence(b, shape, at, False, depth)[0]) for b, at in lists))
        body, *shortcut = (nn.Sequential(*self.sequence(b, shape, at, False, depth)[0]) for b, at in lists)
        try:
            return nn.Residual(body, shortcut[0] if shortcut else None, survival=kw.get("survival", 1.0),
                               rng=self.rng)
        except ValueError as e:
            raise ValueError(f"{where} (Residual): {e}") from None

    def leaf(self, name: str, kw: dict, shape: tuple, where: str, last: bool) -> Module:
        cls = _LAYERS[name]
        params = _params(cls)
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
        except (TypeError, ValueError, ArithmeticError) as e:  # a value the constructor refuses
            raise ValueError(f"{where} ({name}): {e}") from None

    @staticmethod
    def _initialisers(name: str, kw: dict, params, where: str) -> None:
        """`init`/`bias_init` as initialisers, except PReLU's `init`: its initial slope, a number."""
        for key in ("init", "bias_init"):
            if key in kw and key in params and not (name == "PReLU" and key == "init"):
                kw[key] = _initialiser(kw[key], f"{where} ({name}): {key}")


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
