"""BiasEpochs: the bias of each `nn.PatchWhitening` with `bias_epochs = k` trains during epochs 0..k−1 only
(airbench trains its whitening layer's bias for the first 3 epochs, then freezes it)."""

from __future__ import annotations

from ...nn.whitening import PatchWhitening
from .base import Callback


class BiasEpochs(Callback):
    """At the start of each epoch e, `bias.requires_grad = e < k` for every PatchWhitening of the model whose
    `bias_epochs` is k (None: left alone). A function of the epoch only, so a resumed run (which calls
    `on_epoch_begin` with the epoch it resumes in) continues exactly; the optimizer skips a frozen parameter
    (its momentum is kept, unused) and the layer's backward computes no bias gradient for it."""

    order = -200  # before anything else looks at the parameters this epoch

    @staticmethod
    def applies(model) -> bool:
        """Whether `model` has a layer this callback steers."""
        return any(isinstance(m, PatchWhitening) and m.bias_epochs is not None for m in model.modules())

    def on_epoch_begin(self, epoch: int) -> None:
        for m in self.trainer.model.modules():
            if isinstance(m, PatchWhitening) and m.bias_epochs is not None and m.bias is not None:
                m.bias.requires_grad = epoch < m.bias_epochs
