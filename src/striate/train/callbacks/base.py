"""The trainer callback interface (Keras `Callback`, Chainer extensions): everything optional about training.

Hooks: `on_train_begin()`, `on_epoch_begin(epoch)`, `on_batch_end(batch, logs)`, `on_epoch_end(epoch, logs)`,
`on_interrupt(logs)` (Ctrl-C / SIGTERM, after the current step) and `on_train_end(logs)`. Epochs and batches
are 0-based. A callback may set `trainer.stop_training`; it runs in ascending `order` (the explosion guard
first, checkpointing last so it saves what the others decided). `state_dict()` is saved with checkpoints.

Batch logs: loss, accuracy (of the batch), lr, size, iteration. Epoch logs: loss, accuracy, lr, time and,
with validation data, val_loss and val_accuracy.
"""

from __future__ import annotations


class Callback:
    order = 0

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self) -> None: ...
    def on_epoch_begin(self, epoch: int) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_interrupt(self, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self):
        return f"{type(self).__name__}()"
