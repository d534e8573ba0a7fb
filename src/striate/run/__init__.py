"""The application layer: from a configuration to a trained run directory.

- `config`: the one option table (types, defaults, help, choices) of `train`, `finetune`, `doctor`, `search`
  and run files;
- `RunDir` (`directory`): the one place that knows a run's files, its checkpoints' meta data and its lock;
- `build(config, directory, *, model=None, callbacks=(), ...)`, `resume(directory, changes)` and
  `execute(run)`: data, model, trainer and callbacks from the configuration; training; the test split
  evaluated once; summary.json before the final report.
"""

from ..report import inline as _inline
from . import config
from .build import Run, build, make_model
from .config import ConfigError
from .data import Data, default_model, load_data
from .directory import RunDir, Trained
from .evaluation import evaluate
from .execute import execute
from .resume import resume
from .schedule import make_schedule

_inline.open_run_dir = lambda path: RunDir(path).require()  # st.report.show(path): a checked run directory

__all__ = ["ConfigError", "Data", "Run", "RunDir", "Trained", "build", "config", "default_model", "evaluate",
           "execute", "load_data", "make_model", "make_schedule", "resume"]
