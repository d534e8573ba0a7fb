"""Diagnostics: gradient checking and the training doctor (its root-cause vocabulary: `causes.py`)."""

from .gradcheck import GradcheckReport, LayerCheck, TensorCheck, gradcheck

__all__ = ["GradcheckReport", "LayerCheck", "TensorCheck", "gradcheck"]

# ----- the training doctor (numpy only; the Trainer callbacks load striate.train on first use) -----
from .activations import check_activations, diagnose_activations  # noqa: E402
from .causes import CAUSES, HEALTHY, PRIORITY  # noqa: E402
from .curves import diagnose_curves, load_history  # noqa: E402
from .data_check import check_inputs  # noqa: E402
from .diagnosis import Diagnosis, diagnose  # noqa: E402
from .doctor import ALL_CHECKS, doctor  # noqa: E402
from .doctor_report import DoctorReport  # noqa: E402
from .gradient_check import check_gradients  # noqa: E402
from .gradient_stats import check_gradient_stats, diagnose_gradients  # noqa: E402
from .init_experiment import deep_net, format_init_experiment, init_experiment  # noqa: E402
from .initial_loss import check_initial_loss  # noqa: E402
from .lr_finder import LRFinderResult, check_learning_rate, lr_range_test  # noqa: E402
from .model_check import check_model  # noqa: E402
from .overfit import check_overfit  # noqa: E402
from .regularization import check_regularization  # noqa: E402
from .stats import LayerStats, layer_statistics  # noqa: E402
from .update_ratio import diagnose_update_ratio, update_ratios  # noqa: E402
from .verdict import FAIL, PASS, SKIP, WARN, Verdict, format_table  # noqa: E402

_CALLBACKS = ("Diagnostics", "LayerStatsMonitor", "UpdateRatioMonitor")

__all__ += [
    "ALL_CHECKS", "CAUSES", "FAIL", "HEALTHY", "PASS", "PRIORITY", "SKIP", "WARN", "Diagnosis", "DoctorReport",
    "LRFinderResult", "LayerStats", "Verdict", "check_activations", "check_gradient_stats", "check_gradients",
    "check_initial_loss", "check_inputs", "check_learning_rate", "check_model", "check_overfit",
    "check_regularization", "deep_net", "diagnose", "diagnose_activations", "diagnose_curves", "diagnose_gradients",
    "diagnose_update_ratio", "doctor", "format_init_experiment", "format_table", "init_experiment",
    "layer_statistics", "load_history", "lr_range_test", "update_ratios", *_CALLBACKS,
]


def __getattr__(name):
    if name in _CALLBACKS:
        from . import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'striate.diagnose' has no attribute {name!r}")
