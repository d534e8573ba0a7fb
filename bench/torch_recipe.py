"""The PyTorch side of a striate run configuration, for bench/time_to_accuracy.py: the optimizer with the run's
parameter groups, the loss, the per-step hyperparameters, the bias-epochs freeze and the Lookahead average,
each computed by the same striate code that drives the striate side (so the two cannot drift apart), and
applied to the PyTorch twin of the run's model (`models.to_torch`)."""

from __future__ import annotations

import numpy as np


def paired_parameters(s_model, t_net) -> list[tuple[object, object]]:
    """(striate Parameter, torch Parameter) pairs, in declaration order (to_torch keeps it: Conv2d's weight and
    bias, BatchNorm's γ/β as weight/bias, Linear's weight and bias)."""
    s_params, t_params = list(s_model.parameters()), list(t_net.parameters())
    if len(s_params) != len(t_params) or any(s.data.size != t.numel() for s, t in zip(s_params, t_params, strict=True)):
        raise SystemExit("time_to_accuracy.py: the PyTorch twin's parameters do not pair with striate's")
    return list(zip(s_params, t_params, strict=True))


class TorchRecipe:
    """The run's optimizer hyperparameters applied to a torch.optim.SGD over the twin's parameters, step by step."""

    def __init__(self, torch, run, t_net):
        config = run.config
        if config["optimizer"] not in ("nesterov", "momentum"):
            raise SystemExit(f"time_to_accuracy.py --framework torch: optimizer {config['optimizer']!r} not wired up")
        self.torch, self.run, self.net, self.config = torch, run, t_net, config
        self.pairs = paired_parameters(run.model, t_net)
        self.s_opt = run.trainer.optimizer  # striate's: its groups and per-step (lr, L2) are the reference
        twin = {id(s): t for s, t in self.pairs}
        groups = [[] for _ in self.s_opt.groups]
        for i, p in enumerate(self.s_opt.params):
            groups[self.s_opt.group_of[i]].append(twin[id(p)])
        self.opt = torch.optim.SGD([{"params": g} for g in groups], lr=config["lr"], momentum=config["momentum"],
                                   nesterov=config["optimizer"] == "nesterov")
        self.loss = torch.nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"],
                                              reduction=config.get("loss_reduction", "mean"))
        self.lookahead = None
        if config.get("lookahead"):
            self.lookahead = {k: v.detach().clone() for k, v in t_net.state_dict().items() if v.is_floating_point()}
        self.total = config["epochs"] * len(run.train_loader)

    def begin_epoch(self, epoch: int) -> None:
        """The run's epoch-start callbacks on striate's model (BiasEpochs), their frozen flags mirrored."""
        from striate.train.callbacks import BiasEpochs

        for cb in self.run.trainer.callbacks:
            if isinstance(cb, BiasEpochs):
                cb.on_epoch_begin(epoch)
        for s, t in self.pairs:
            t.requires_grad_(s.requires_grad)

    def set_step(self, t: int) -> None:
        """Each group's learning rate and L2 coefficient for step `t` (0-based), as striate's optimizer has them."""
        self.s_opt.lr = float(self.run.trainer.schedule(t))
        for g, (lr, wd) in zip(self.opt.param_groups, self.s_opt.group_hyperparameters(), strict=True):
            g["lr"], g["weight_decay"] = lr, wd

    def after_step(self, t: int) -> None:
        """The Lookahead update after optimizer step `t` (1-based): lerp every float entry, copy it back."""
        from striate.optim.lookahead import lookahead_decay

        c = self.config
        if self.lookahead is None or t % c["lookahead"]:
            return
        decay = lookahead_decay(t, self.total, c["lookahead_decay"], c["lookahead"], c["lookahead_power"])
        self._blend(decay)

    def finish(self) -> None:
        if self.lookahead is not None:
            self._blend(1.0)

    def _blend(self, decay: float) -> None:
        with self.torch.no_grad():
            state = self.net.state_dict()
            for k, avg in self.lookahead.items():
                avg.lerp_(state[k], 1 - decay)
                state[k].copy_(avg)

    def batch_loss(self, scores, labels) -> tuple[object, float]:
        """(the loss to differentiate, the batch's summed per-sample loss for the log)."""
        loss = self.loss(scores, labels)
        summed = loss.item() if self.config.get("loss_reduction", "mean") == "sum" else loss.item() * len(labels)
        return loss, summed


def as_labels(torch, y) -> object:
    return torch.from_numpy(np.asarray(y, np.int64))
