"""A search space: named dimensions over run-configuration keys, sampled through an Optuna trial.

In search.toml (one line per dimension under `[space]`):

    lr = {log_uniform = [1e-5, 1e-1]}          # float, uniform in log10 (the notes: search lr/reg on a log scale)
    reg = {log_uniform = [1e-6, 1e-2]}         # `reg` is the config's weight_decay
    momentum = {uniform = [0.5, 0.99]}
    batch_size = {choice = [32, 64, 128]}      # any values, sampled uniformly (categorical)
    optimizer = {choice = ["sgd", "adam"]}
    model = {choice = ["three_layer", "reference"]}
    warmup = {grid = [0, 1]}                   # explicit values; the same as choice
    "model.hidden" = {int_uniform = [32, 256], log = true}   # a keyword of the model builder
    "model.layers.1.negative_slope" = {uniform = [0.01, 0.3]}       # a keyword of layer 1 of a layer list
    "model.layers.1.layer" = {choice = ["ReLU", "ELU", "LeakyReLU"]}  # the class of layer 1
    dropout = {uniform = [0.2, 0.7]}           # `dropout` is "model.dropout"

A dimension's name is what the tables and plots show; it targets a configuration key (`run/config.py`)
or, written `model.<keyword>`, a keyword argument of the model builder (the run's `model_options`). Every
bound and choice is checked against the key's own rules when the space is read, so a bad value is
reported before any trial runs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from ..run import config as cfg


class SearchError(cfg.ConfigError):
    """A bad search specification (the message quotes the bad value and where it came from)."""


ALIASES = {"reg": "weight_decay", "dropout": "model.dropout"}
KINDS = ("log_uniform", "uniform", "int_uniform", "choice", "grid")
NOT_SEARCHABLE = ("data", "out", "epochs", "val_fraction", "limit", "seed", "model_options")


@dataclass(frozen=True)
class Dim:
    """One dimension. `kind`: 'float' (low/high, `log`), 'int' (low/high, `log`) or 'choice' (`choices`).
    `key`: the configuration key or 'model.<keyword>' it sets."""

    name: str
    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    @property
    def numeric(self) -> bool:
        """True when values are ordered numbers (a float/int range, or numeric choices)."""
        if self.kind != "choice":
            return True
        return all(isinstance(c, int | float) and not isinstance(c, bool) for c in self.choices)

    def suggest(self, trial):
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))

    def grid_values(self, points: int) -> list:
        """`points` values spread evenly (in log10 for log dimensions) over a range; all choices."""
        if self.kind == "choice":
            return list(self.choices)
        lo, hi = (math.log10(self.low), math.log10(self.high)) if self.log else (self.low, self.high)
        n = max(1, int(points))
        ts = [lo + (hi - lo) * i / (n - 1) for i in range(n)] if n > 1 else [(lo + hi) / 2]
        vals = [10 ** t if self.log else t for t in ts]
        if self.kind == "int":
            return sorted({int(round(v)) for v in vals})
        # round to 6 significant digits so the grid reads well in tables, staying inside the range
        return [min(max(float(f"{v:.6g}"), self.low), self.high) for v in vals]

    def describe(self) -> dict:
        if self.kind == "choice":
            return {"name": self.name, "key": self.key, "kind": "choice", "choices": list(self.choices)}
        return {"name": self.name, "key": self.key, "kind": self.kind, "low": self.low, "high": self.high,
                "log": self.log}

    def __str__(self):
        if self.kind == "choice":
            return f"{self.name} ∈ {list(self.choices)}"
        scale = ", log" if self.log else ""
        return f"{self.name} ∈ [{self.low:.4g}, {self.high:.4g}]{scale}"


def _check_value(key: str, value, where: str):
    """`value` converted by the configuration's own rules for `key` (model keywords pass as they are)."""
    if key.startswith("model."):
        if isinstance(value, str | int | float | bool):
            return value
        raise SearchError(f"{where}: {value!r} is not a string or a number")
    try:
        return cfg.resolve({key: value}, where=where, base={}, command="search")[key]
    except cfg.ConfigError as e:
        raise SearchError(str(e)) from None


def parse_dim(name: str, spec, where: str = "space") -> Dim:
    """A dimension from its TOML table (see the module docstring)."""
    at = f"{where}: {name} = {spec!r}"
    key = ALIASES.get(name, name.replace("-", "_"))
    searchable = [o.name for o in cfg.options("search") if o.name not in NOT_SEARCHABLE]
    if not key.startswith("model.") and key not in searchable and key not in NOT_SEARCHABLE:
        raise SearchError(str(cfg.unknown_key(name, [*searchable, "reg", "dropout", "model.<keyword>"], at)))
    if key in NOT_SEARCHABLE:
        raise SearchError(f"{at}: {key} cannot be searched (set it under [train]; stages set the epochs)")
    if not isinstance(spec, dict):
        raise SearchError(f"{at}: expected a table such as {{log_uniform = [1e-5, 1e-1]}}")
    kinds = [k for k in spec if k in KINDS]
    extra = sorted(set(spec) - set(KINDS) - {"log"})
    if len(kinds) != 1 or extra:
        raise SearchError(f"{at}: give exactly one of {', '.join(KINDS)} (and `log = true` for int_uniform)")
    kind = kinds[0]
    arg = spec[kind]
    if kind in ("choice", "grid"):
        if not isinstance(arg, list) or not arg:
            raise SearchError(f"{at}: {kind} needs a non-empty list of values")
        values = tuple(_check_value(key, v, at) for v in arg)
        if len(set(values)) != len(values):
            raise SearchError(f"{at}: {kind} lists a value twice")
        return Dim(name, key, "choice", choices=values)
    if (not isinstance(arg, list) or len(arg) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in arg)):
        raise SearchError(f"{at}: {kind} needs [low, high] numbers")
    low, high = arg
    if not low < high:
        raise SearchError(f"{at}: low must be < high")
    log = kind == "log_uniform" or bool(spec.get("log", False))
    if log and low <= 0:
        raise SearchError(f"{at}: a log scale needs low > 0")
    if kind == "int_uniform":
        if low != int(low) or high != int(high):
            raise SearchError(f"{at}: int_uniform needs integer bounds")
        low, high = int(low), int(high)
    for v in (low, high):
        _check_value(key, v, at)
    return Dim(name, key, "int" if kind == "int_uniform" else "float", float(low), float(high), log)


def set_model_option(options: dict, path: str, value, where: str = "space") -> None:
    """Set a model keyword, or with `layers.<i>.<keyword>` a keyword of layer i of a layer list. Setting
    `layers.<i>.layer` swaps the layer's class and keeps the keywords the new class takes."""
    parts = path.split(".")
    if parts[0] != "layers" or len(parts) == 1:
        options[path] = value
        return
    layers = options.get("layers")
    if len(parts) != 3 or not parts[1].isdigit() or not isinstance(layers, list) or int(parts[1]) >= len(layers):
        size = len(layers) if isinstance(layers, list) else 0
        raise SearchError(f"{where}: model.{path}: expected model.layers.<index>.<keyword> with an index below "
                          f"{size} (the [model] layers list of [train] has {size} layers)")
    from ..models.layers import takes

    table = layers[int(parts[1])]
    if not isinstance(table, dict):
        raise SearchError(f"{where}: model.{path}: layer {parts[1]} of the [model] layers list is {table!r}, not a "
                          "table such as {layer = \"ReLU\"}")
    if parts[2] == "layer":
        table = {k: v for k, v in table.items() if k == "layer" or k in takes(str(value))}
        layers[int(parts[1])] = table
    elif parts[2] not in takes(str(table.get("layer"))):
        return  # the class sampled for this layer has no such keyword (ReLU has no negative_slope)
    table[parts[2]] = value


def check_model_keys(space: Space, base: dict, where: str = "space") -> None:
    """Every `model.<keyword>` dimension names a keyword of the builder of each model a trial may use (the
    `model` dimension's choices, else the base configuration's model), and every
    `model.layers.<i>.<keyword>` a keyword of layer i's class (or of a class its `.layer` dimension
    samples): a SearchError naming the key and the valid keywords otherwise, before any trial runs."""
    from ..models import layers, registry
    from ..run.data import default_model

    by_key = {d.key: d for d in space.dims}
    models = by_key["model"].choices if "model" in by_key else (base["model"] or default_model(base["data"]),)
    for d in space.dims:
        if not d.key.startswith("model."):
            continue
        at = f"{where} {d.name}"
        path = d.key.removeprefix("model.")
        if path.startswith("layers."):  # a keyword of one layer of a layer list
            set_model_option(copy.deepcopy(base["model_options"]), path, d.choices[0] if d.choices else d.low, at)
            _, index, keyword = path.split(".")
            table = base["model_options"]["layers"][int(index)]
            sampled = by_key.get(f"model.layers.{index}.layer")
            classes = [str(c) for c in sampled.choices] if sampled is not None else [str(table.get("layer"))]
            if keyword == "layer":
                bad = next((c for c in classes if c not in layers.layer_names()), None)
                if bad is not None:
                    raise SearchError(f"{at}: unknown layer {bad!r}; choose from {', '.join(layers.layer_names())}")
                continue
            valid = set().union(*(layers.takes(c) for c in classes)) - set(layers.INFERRED)
            if keyword not in valid:
                raise SearchError(f"{at}: layer {index} ({' or '.join(classes)}) takes no keyword {keyword!r}; "
                                  f"its keywords: {', '.join(sorted(valid)) or 'none'}")
            continue
        for name in models:
            if name == "layers":
                raise SearchError(f"{at}: a layer-list model takes no keyword {path!r}; search a layer's keyword "
                                  "as model.layers.<index>.<keyword> (e.g. model.layers.1.negative_slope)")
            own = registry.keywords(str(name))
            if own is None:  # a builder of any keyword checks its own
                continue
            if path not in own:
                valid = ", ".join(own) or "none"
                raise SearchError(f"{at}: model {name!r} takes no keyword {path!r}; its keywords: {valid}")
            wrong = _type_mismatch(own[path], d)
            if wrong:
                raise SearchError(f"{at}: model {name!r} keyword {path!r} takes {wrong} (its default is "
                                  f"{own[path]!r})")


def _type_mismatch(default, dim: Dim) -> str | None:
    """What a model keyword with this `default` takes, when the dimension's values are not of that type."""
    values = dim.choices if dim.kind == "choice" else ()
    if isinstance(default, bool):
        ok, what = dim.kind == "choice" and all(isinstance(v, bool) for v in values), "true or false"
    elif isinstance(default, int):
        ok, what = dim.kind == "int" or (dim.kind == "choice" and all(
            isinstance(v, int) and not isinstance(v, bool) for v in values)), "an integer (use int_uniform)"
    elif isinstance(default, float):
        ok, what = dim.kind != "choice" or all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values), "a number"
    elif isinstance(default, str):
        ok, what = dim.kind == "choice" and all(isinstance(v, str) for v in values), "a string"
    elif isinstance(default, tuple | list):
        ok, what = False, "a list, which a dimension cannot sample"
    else:  # no default to go by: the builder checks the value
        ok, what = True, ""
    return None if ok else what


@dataclass(frozen=True)
class Space:
    dims: tuple[Dim, ...] = field(default_factory=tuple)

    @classmethod
    def from_toml(cls, table: dict, where: str = "[space]") -> Space:
        if not isinstance(table, dict) or not table:
            raise SearchError(f"{where}: the search space is empty; add e.g. lr = {{log_uniform = [1e-5, 1e-1]}}")
        dims = tuple(parse_dim(name, spec, where) for name, spec in table.items())
        keys = [d.key for d in dims]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise SearchError(f"{where}: two dimensions set {dup!r} (reg is weight_decay, dropout is model.dropout)")
        return cls(dims)

    @classmethod
    def from_description(cls, items: list[dict]) -> Space:
        dims = []
        for d in items:
            if d["kind"] == "choice":
                dims.append(Dim(d["name"], d["key"], "choice", choices=tuple(d["choices"])))
            else:
                dims.append(Dim(d["name"], d["key"], d["kind"], d["low"], d["high"], d["log"]))
        return cls(tuple(dims))

    def describe(self) -> list[dict]:
        return [d.describe() for d in self.dims]

    def __getitem__(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def suggest(self, trial) -> dict:
        """Sample every dimension through an Optuna trial: {name: value}."""
        return {d.name: d.suggest(trial) for d in self.dims}

    def grid(self, points: int) -> dict[str, list]:
        """The grid for Optuna's GridSampler: every choice, `points` values per range."""
        return {d.name: d.grid_values(points) for d in self.dims}

    def grid_size(self, points: int) -> int:
        return math.prod(len(v) for v in self.grid(points).values())

    def apply(self, params: dict, base: dict, where: str = "trial") -> dict:
        """The run configuration for sampled `params` on top of the resolved `base` (model keywords go to
        its `model_options`; `model.layers.<i>.<keyword>` into a layer list)."""
        overrides, model_kw = {}, copy.deepcopy(base.get("model_options") or {})
        # a layer's class first, so that its other sampled keywords land on the class they are for
        for d in sorted(self.dims, key=lambda d: not d.key.endswith(".layer")):
            if d.name not in params:
                continue
            if d.key.startswith("model."):
                set_model_option(model_kw, d.key.removeprefix("model."), params[d.name], where)
            else:
                overrides[d.key] = params[d.name]
        config = cfg.resolve(overrides, where=where, base=base, command="search")
        config["model_options"] = model_kw
        return config

    def __str__(self):
        return "; ".join(str(d) for d in self.dims)
