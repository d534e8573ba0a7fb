"""search.toml: the base training configuration, the space, the stages and the search's own settings.

    [search]
    name = "cifar-lr-reg"      # study name (default: the file's stem)
    sampler = "random"         # random (default) | grid | tpe
    trials = 20                # when there are no stages
    grid_points = 4            # values per range under the grid sampler
    pruner = "median"          # median (Optuna's MedianPruner, at epoch boundaries) | none
    seed = 0                   # trial k of stage s samples with a seed derived from (seed, s, k)
    heartbeat = 10             # seconds between a running trial's heartbeats
    grace = 60                 # a running trial without a heartbeat for this long is marked failed
    retrain_epochs = 20        # --retrain-best trains the best configuration this long (default: [train] epochs)
    out = "searches/cifar"     # search directory (default: searches/<name>)
    stages = [{trials = 40, epochs = 1}, {trials = 10, epochs = 5, narrow = "top 20%"}]

    [train]                    # the base run configuration: any `striate train` key
    data = "cifar10"
    limit = 10000

    [space]
    lr = {log_uniform = [1e-5, 1e-1]}
    reg = {log_uniform = [1e-6, 1e-2]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..train import config as cfg
from .space import SearchError, Space
from .stages import SAMPLERS, Stage, parse_stages

PRUNERS = ("median", "none")
_SEARCH_KEYS = {"name": str, "sampler": str, "trials": int, "grid_points": int, "pruner": str, "seed": int,
                "heartbeat": int, "grace": int, "retrain_epochs": int, "out": str, "stages": list}


@dataclass(frozen=True)
class SearchSpec:
    name: str
    base: dict  # the resolved base run configuration
    space: Space
    stages: tuple[Stage, ...]
    sampler: str = "random"
    grid_points: int = 4
    pruner: str = "median"
    seed: int = 0
    heartbeat: int = 10
    grace: int = 60
    retrain_epochs: int = 0
    out: str = ""

    def stage_sampler(self, i: int) -> str:
        return self.stages[i].sampler or self.sampler

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "base": self.base, "space": self.space.describe(),
                           "stages": [s.describe() for s in self.stages], "sampler": self.sampler,
                           "grid_points": self.grid_points, "pruner": self.pruner, "seed": self.seed,
                           "heartbeat": self.heartbeat, "grace": self.grace, "retrain_epochs": self.retrain_epochs,
                           "out": self.out}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> SearchSpec:
        d = json.loads(text)
        return cls(d["name"], cfg.resolve(d["base"], where="search.json"), Space.from_description(d["space"]),
                   tuple(Stage(**s) for s in d["stages"]), d["sampler"], d["grid_points"], d["pruner"], d["seed"],
                   d["heartbeat"], d["grace"], d["retrain_epochs"], d["out"])


def from_dict(doc: dict, where: str = "search.toml", default_name: str = "search") -> SearchSpec:
    unknown = sorted(set(doc) - {"search", "train", "space"})
    if unknown:
        raise SearchError(f"{where}: unknown table [{unknown[0]}]; known: [search], [train], [space]")
    search = doc.get("search", {})
    for key, value in search.items():
        if key not in _SEARCH_KEYS:
            raise SearchError(f"{where}: [search] {key} = {value!r}: unknown key; known: {', '.join(_SEARCH_KEYS)}")
        want = _SEARCH_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, want):
            raise SearchError(f"{where}: [search] {key} = {value!r}: expected {want.__name__}")
        if want is int and key != "seed" and value < (0 if key == "retrain_epochs" else 1):
            raise SearchError(f"{where}: [search] {key} = {value!r}: must be ≥ 1")
    # trials are many and short: no per-trial report.html or diagnostics unless [train] asks for them
    base = cfg.resolve({"report": "off", "diagnostics": 0, **doc.get("train", {})}, where=f"{where} [train]")
    if not base["val_fraction"] > 0:
        raise SearchError(f"{where}: [train] val_fraction = {base['val_fraction']!r}: a search ranks trials by "
                          "validation accuracy, so it needs val_fraction > 0")
    space = Space.from_toml(doc.get("space", {}), where=f"{where} [space]")
    sampler = search.get("sampler", "random")
    if sampler not in SAMPLERS:
        raise SearchError(f"{where}: [search] sampler = {sampler!r}: choose from {list(SAMPLERS)}")
    pruner = search.get("pruner", "median")
    if pruner not in PRUNERS:
        raise SearchError(f"{where}: [search] pruner = {pruner!r}: choose from {list(PRUNERS)}")
    grid_points = search.get("grid_points", 4)
    default_trials = space.grid_size(grid_points) if sampler == "grid" else 20
    stages = parse_stages(search.get("stages"), search.get("trials", default_trials), base["epochs"],
                          where=f"{where}: [search] stages")
    spec = SearchSpec(search.get("name", default_name), base, space, tuple(stages), sampler, grid_points, pruner,
                      search.get("seed", 0), search.get("heartbeat", 10), search.get("grace", 60),
                      search.get("retrain_epochs", 0), search.get("out", ""))
    if spec.grace <= spec.heartbeat:
        raise SearchError(f"{where}: [search] grace = {spec.grace} must exceed heartbeat = {spec.heartbeat}")
    return spec


def load(path: str | Path) -> SearchSpec:
    path = Path(path)
    doc = cfg.read_toml(path, SearchError, "search file")
    return from_dict(doc, where=str(path), default_name=path.stem)
