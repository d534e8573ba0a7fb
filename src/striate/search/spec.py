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

from ..run import config as cfg
from ..run import run_file
from ..run.option import Option
from .space import SearchError, Space, check_model_keys
from .stages import SAMPLERS, Stage, parse_stages

PRUNERS = ("median", "none")
SEARCH = ("search",)
# the [search] table's options: the same machinery as every other option (`run.config`)
SEARCH_OPTIONS = (
    Option("name", str, "", "study name (default: the search file's stem)", commands=SEARCH),
    Option("sampler", str, "random", "how trials are drawn: random, grid or tpe", SAMPLERS, commands=SEARCH),
    Option("trials", int, 20, "trials when there are no stages (grid: every grid point)", minimum=1, commands=SEARCH),
    Option("grid_points", int, 4, "values per range under the grid sampler", minimum=1, commands=SEARCH),
    Option("pruner", str, "median", "stop hopeless trials at epoch ends: median (Optuna's MedianPruner) or none",
           PRUNERS, commands=SEARCH),
    Option("seed", int, 0, "trial k of stage s samples with a seed derived from (seed, s, k)", minimum=0,
           commands=SEARCH),
    Option("heartbeat", int, 10, "seconds between a running trial's heartbeats", minimum=1, commands=SEARCH),
    Option("grace", int, 60, "a running trial without a heartbeat for this long is marked failed", minimum=1,
           commands=SEARCH),
    Option("retrain_epochs", int, 0, "--retrain-best trains the best configuration this long (0: [train] epochs)",
           minimum=0, commands=SEARCH),
    Option("out", str, "", "search directory (default: searches/<name>)", commands=SEARCH),
    Option("stages", list, [], "coarse-to-fine stages: [{trials, epochs, narrow, sampler}, ...]", item=dict,
           commands=SEARCH),
)


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
        return cls(d["name"], cfg.resolve(d["base"], where="search.json", command="search"),
                   Space.from_description(d["space"]),
                   tuple(Stage(**s) for s in d["stages"]), d["sampler"], d["grid_points"], d["pruner"], d["seed"],
                   d["heartbeat"], d["grace"], d["retrain_epochs"], d["out"])


def from_dict(doc: dict, where: str = "search.toml", default_name: str = "search") -> SearchSpec:
    unknown = sorted(set(doc) - {"search", "train", "model", "space"})
    if unknown:
        raise SearchError(f"{where}: unknown table [{unknown[0]}]; known: [search], [train], [model], [space]")
    defaults = {o.name: o.default_for("search") for o in SEARCH_OPTIONS}
    try:
        search = cfg.resolve_with(SEARCH_OPTIONS, doc.get("search", {}), f"{where}: [search]", defaults)
        # trials are many and short: no per-trial report.html or diagnostics unless [train] asks for them
        model = {"model": doc["model"]} if "model" in doc else {}
        train = run_file.run_values({"train": doc.get("train", {}), **model}, where)
        base = cfg.resolve({"report": "off", "diagnostics": 0, **train}, where=f"{where} [train]", command="search")
    except cfg.ConfigError as e:
        raise SearchError(str(e)) from None
    if not base["val_fraction"] > 0:
        raise SearchError(f"{where}: [train] val_fraction = {base['val_fraction']!r}: a search ranks trials by "
                          "validation accuracy, so it needs val_fraction > 0")
    space = Space.from_toml(doc.get("space", {}), where=f"{where} [space]")
    check_model_keys(space, base, where=f"{where} [space]")
    default_trials = space.grid_size(search["grid_points"]) if search["sampler"] == "grid" else 20
    trials = search["trials"] if "trials" in doc.get("search", {}) else default_trials
    stages = parse_stages(search["stages"] or None, trials, base["epochs"], where=f"{where}: [search] stages")
    spec = SearchSpec(search["name"] or default_name, base, space, tuple(stages), search["sampler"],
                      search["grid_points"], search["pruner"], search["seed"], search["heartbeat"], search["grace"],
                      search["retrain_epochs"], search["out"])
    if spec.grace <= spec.heartbeat:
        raise SearchError(f"{where}: [search] grace = {spec.grace} must exceed heartbeat = {spec.heartbeat}")
    return spec


def load(path: str | Path) -> SearchSpec:
    path = Path(path)
    doc = run_file.read_toml(path, SearchError, "search file")
    return from_dict(doc, where=str(path), default_name=path.stem)
