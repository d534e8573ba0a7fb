"""Diagnostics: gradient checking and the training doctor.

The public surface: `doctor` (the checks and one diagnosis), `gradcheck` (the library's Jacobian test for your
own layers), `lr_range_test`, `check_inputs` (the data checks alone), `Verdict` and its statuses, `CAUSES`
(the vocabulary of root causes), `THRESHOLDS`, and what writing a check of your own takes: `Check`, `Finding`,
`Context`, `register` (see `check.py`). The Trainer callbacks (`Diagnostics`, ...) load striate.train on
first use. Each check's helpers live in its own file under `checks/`."""

# ----- the training doctor (numpy only; the Trainer callbacks load striate.train on first use) -----
from .causes import CAUSES  # noqa: E402
from .check import Check, Finding, register  # noqa: E402
from .context import Context  # noqa: E402
from .data_check import check_inputs  # noqa: E402
from .doctor import doctor  # noqa: E402
from .gradcheck import gradcheck
from .lr_finder import lr_range_test  # noqa: E402
from .thresholds import THRESHOLDS  # noqa: E402
from .verdict import FAIL, PASS, SKIP, WARN, Verdict  # noqa: E402

_CALLBACKS = ("Diagnostics", "LayerStatsMonitor", "UpdateRatioMonitor")

__all__ = [
    "CAUSES", "FAIL", "PASS", "SKIP", "THRESHOLDS", "WARN", "Check", "Context", "Finding", "Verdict", "check_inputs",
    "doctor", "gradcheck", "lr_range_test", "register", *_CALLBACKS,
]


def __getattr__(name):
    if name in _CALLBACKS:
        from . import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'striate.diagnose' has no attribute {name!r}")
