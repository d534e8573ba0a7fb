"""Training: the Trainer loop, its callbacks, crash-safe checkpoints and classification metrics."""

from .callbacks import Callback, EarlyStopping, ExplosionGuard, History, ModelCheckpoint, Progress
from .checkpoint import Checkpoint, CheckpointError, CheckpointStore, write_atomic
from .metrics import accuracy, confusion_matrix, format_confusion, per_class_accuracy, top_k
from .trainer import Trainer

__all__ = [
    "Callback", "Checkpoint", "CheckpointError", "CheckpointStore", "EarlyStopping", "ExplosionGuard", "History",
    "ModelCheckpoint", "Progress", "Trainer", "accuracy", "confusion_matrix", "format_confusion",
    "per_class_accuracy", "top_k", "write_atomic",
]
