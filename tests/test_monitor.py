"""Monitor: which way a monitored metric improves (inferred from its name, refused when unknown), and
EarlyStopping / ModelCheckpoint following it — monitoring a loss keeps the lowest loss."""

import numpy as np
import pytest

from striate.data import DataLoader, load
from striate.nn.containers import Sequential
from striate.nn.linear import Linear
from striate.nn.losses import SoftmaxCrossEntropy
from striate.nn.shape import Flatten
from striate.optim import SGD
from striate.train import Callback, CheckpointStore, EarlyStopping, ModelCheckpoint, Trainer
from striate.train.callbacks import Monitor
from striate.train.callbacks.monitor import infer_mode


@pytest.mark.parametrize("name, mode", [
    ("val_accuracy", "max"), ("accuracy", "max"), ("val_acc", "max"), ("top5_accuracy", "max"),
    ("val_top_k", "max"), ("auc", "max"), ("val_precision", "max"), ("recall", "max"), ("val_f1", "max"),
    ("val_loss", "min"), ("loss", "min"), ("val_error", "min"), ("top1_err", "min"), ("mse", "min"),
    ("val_mae", "min"), ("perplexity", "min"),
    ("lr", None), ("time", None), ("val_something", None), ("accuracy_loss", None),
])
def test_mode_is_inferred_from_the_name(name, mode):
    assert infer_mode(name) == mode


def test_an_unknown_metric_without_a_mode_is_refused():
    for make in (lambda: Monitor("val_dice"), lambda: EarlyStopping(monitor="val_dice"),
                 lambda: ModelCheckpoint("unused", monitor="val_dice")):
        with pytest.raises(ValueError, match=r"'val_dice'.*mode='max' or mode='min'"):
            make()
    with pytest.raises(ValueError, match="mode must be one of"):
        Monitor("val_loss", mode="lowest")
    with pytest.raises(ValueError, match="min_delta"):
        Monitor("val_loss", min_delta=-0.1)


def test_an_explicit_mode_works_for_an_unknown_metric():
    up, down = Monitor("val_dice", mode="max"), Monitor("val_dice", mode="min")
    for value, epoch in [(0.5, 0), (0.7, 1), (0.3, 2)]:
        up.update(value, epoch), down.update(value, epoch)
    assert (up.best, up.best_epoch) == (0.7, 1) and (down.best, down.best_epoch) == (0.3, 2)
    assert Monitor("val_loss", mode="max").mode == "max"  # an explicit mode wins over the name


def test_min_delta_is_absolute_as_in_keras():
    m = Monitor("val_loss", min_delta=0.1)
    assert m.update(1.0, 0)
    assert not m.improved(0.95) and not m.improved(0.9) and m.improved(0.89)
    m = Monitor("val_accuracy", min_delta=0.1)
    assert m.update(0.5, 0)
    assert not m.improved(0.6) and m.improved(0.61)


class Scripted(Callback):
    """A scripted metric curve, written into the epoch logs before the monitors read them."""

    order = 10

    def __init__(self, name, curve):
        self.name, self.curve, self.weights = name, curve, []

    def on_epoch_end(self, epoch, logs):
        logs[self.name] = self.curve[epoch]
        self.weights.append(self.trainer.model.state_dict())


def fit(tmp_path, name, curve, extra=()):
    ds = load("digits", "train")
    x, y = ds.images[:64].astype(np.float32) / 255, ds.labels[:64]
    model = Sequential(Flatten(), Linear(64, 10, rng=np.random.default_rng(0)))
    script = Scripted(name, curve)
    ckpt = ModelCheckpoint(tmp_path / "ck", monitor=name)
    trainer = Trainer(model, SoftmaxCrossEntropy(), SGD(model, lr=0.01), callbacks=[script, ckpt, *extra])
    trainer.fit(DataLoader(x, y, 32, rng=np.random.default_rng(1)), None, epochs=len(curve))
    return trainer, script, ckpt


def test_monitoring_a_loss_keeps_the_lowest_and_stops_after_it_stops_falling(tmp_path):
    curve = [2.0, 1.0, 1.5, 0.8, 0.9, 0.85, 0.95, 3.0]
    stop = EarlyStopping(patience=3, monitor="val_loss")
    trainer, script, ckpt = fit(tmp_path, "val_loss", curve, [stop])
    assert trainer.epoch == 7 and "early stopping after epoch 7" in trainer.stop_reason  # 3 epochs after 0.8
    assert (stop.best, stop.best_epoch) == (0.8, 3) and (ckpt.best, ckpt.best_epoch) == (0.8, 3)
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(v, script.weights[3][k])  # the lowest loss's weights put back
    assert CheckpointStore(tmp_path / "ck").load("best").state["progress"]["epoch"] == 4


def test_a_falling_loss_is_not_a_reason_to_stop(tmp_path):
    stop = EarlyStopping(patience=2, monitor="val_loss")
    trainer, _, ckpt = fit(tmp_path, "val_loss", [2.0, 1.5, 1.2, 1.0, 0.9], [stop])
    assert trainer.stop_reason is None and trainer.epoch == 5
    assert ckpt.best_epoch == 4 and stop.best == 0.9


def test_monitoring_accuracy_keeps_the_highest(tmp_path):
    stop = EarlyStopping(patience=2, monitor="val_accuracy")
    trainer, _, ckpt = fit(tmp_path, "val_accuracy", [0.5, 0.7, 0.6, 0.65, 0.9], [stop])
    assert trainer.epoch == 4 and (stop.best, stop.best_epoch) == (0.7, 1) and ckpt.best == 0.7


def test_the_saved_state_keeps_its_keys():  # checkpoints of earlier runs resume
    stop, ckpt = EarlyStopping(), ModelCheckpoint("unused")
    assert set(stop.state_dict()) == {"best", "best_epoch", "wait", "stopped_epoch", "best_weights"}
    assert set(ckpt.state_dict()) == {"best", "best_epoch"}
    ckpt.load_state_dict({"best": 0.75, "best_epoch": 4})
    assert (ckpt.best, ckpt.best_epoch) == (0.75, 4)
