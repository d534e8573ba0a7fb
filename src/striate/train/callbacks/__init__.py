"""Trainer callbacks, one per file (Keras's `callbacks/`): the `Callback` interface in base.py (hooks,
order, logs) and the standard ones."""

from .averaging import WeightAveraging
from .base import Callback
from .bias_epochs import BiasEpochs
from .early_stopping import EarlyStopping
from .explosion_guard import ExplosionGuard
from .history import History
from .lookahead import LookaheadAveraging
from .max_norm import MaxNormConstraint
from .model_checkpoint import ModelCheckpoint
from .monitor import Monitor
from .progress import Progress

__all__ = ["BiasEpochs", "Callback", "EarlyStopping", "ExplosionGuard", "History", "LookaheadAveraging",
           "MaxNormConstraint", "ModelCheckpoint", "Monitor", "Progress", "WeightAveraging"]
