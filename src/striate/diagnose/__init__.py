"""Diagnostics: gradient checking and (later) the training doctor."""

from .gradcheck import GradcheckReport, TensorCheck, gradcheck

__all__ = ["GradcheckReport", "TensorCheck", "gradcheck"]

# ----- the training doctor (numpy only; the Trainer callbacks load striate.train on first use) -----
from .curves import diagnose_curves, load_history  # noqa: E402
from .doctor import ALL_CHECKS, DoctorReport, doctor  # noqa: E402
from .gradient_check import check_gradients  # noqa: E402
from .gradient_stats import check_gradient_stats, diagnose_gradients  # noqa: E402
from .init_experiment import deep_net, format_init_experiment, init_experiment  # noqa: E402
from .initial_loss import check_initial_loss  # noqa: E402
from .lr_finder import LRFinderResult, check_learning_rate, lr_range_test  # noqa: E402
from .overfit import check_overfit  # noqa: E402
from .regularization import check_regularization  # noqa: E402
from .stats import LayerStats, check_activations, diagnose_activations, layer_statistics  # noqa: E402
from .update_ratio import diagnose_update_ratio, update_ratios  # noqa: E402
from .verdict import FAIL, PASS, SKIP, WARN, Verdict, format_table  # noqa: E402

_CALLBACKS = ("Diagnostics", "LayerStatsMonitor", "UpdateRatioMonitor")

__all__ += [
    "ALL_CHECKS", "FAIL", "PASS", "SKIP", "WARN", "DoctorReport", "LRFinderResult", "LayerStats", "Verdict",
    "check_activations", "check_gradient_stats", "check_gradients", "check_initial_loss", "check_learning_rate",
    "check_overfit", "check_regularization", "deep_net", "diagnose_activations", "diagnose_curves",
    "diagnose_gradients", "diagnose_update_ratio", "doctor", "format_init_experiment", "format_table",
    "init_experiment", "layer_statistics", "load_history", "lr_range_test", "update_ratios", *_CALLBACKS,
]


def __getattr__(name):
    if name in _CALLBACKS:
        from . import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'striate.diagnose' has no attribute {name!r}")
