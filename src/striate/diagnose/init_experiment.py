"""The notes' initialisation experiment: a 10-layer, 500-unit network on unit-Gaussian input, with
tanh and `0.01·randn` (activations collapse to 0), tanh and `1.0·randn` (saturate at ±1), tanh and
Xavier (healthy), ReLU and Xavier (halving variance per layer) and ReLU and He (healthy). For each: the
per-layer activation mean/std/histograms and the doctor's diagnosis of activations and gradients."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..nn import init as inits
from ..nn.activation import ReLU, Tanh
from ..nn.containers import Sequential
from ..nn.linear import Linear
from ..nn.losses import SoftmaxCrossEntropy
from .checks import activations, gradients
from .stats import LayerStats, layer_statistics
from .verdict import Verdict

CASES = (("tanh, 0.01·randn", "tanh", inits.normal(0.01)), ("tanh, 1.0·randn", "tanh", inits.normal(1.0)),
         ("tanh, Xavier", "tanh", inits.xavier), ("ReLU, Xavier", "relu", inits.xavier),
         ("ReLU, He", "relu", inits.he))


@dataclass
class InitCase:
    name: str
    activations: list[LayerStats]  # the non-linearity outputs, one per layer
    verdicts: list[Verdict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "activations": [s.to_dict() for s in self.activations],
                "verdicts": [v.to_dict() for v in self.verdicts]}


def deep_net(nonlinearity: str, init, depth: int = 10, width: int = 500, inputs: int = 500,
             classes: int = 10, rng: np.random.Generator | None = None) -> Sequential:
    """`depth` × (Linear(width) → tanh/ReLU) with zero biases, then a Linear classifier (Xavier)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    act = Tanh if nonlinearity == "tanh" else ReLU
    layers, fan = [], inputs
    for _ in range(depth):
        layers += [Linear(fan, width, init=init, rng=rng), act()]
        fan = width
    layers.append(Linear(fan, classes, init="xavier", rng=rng))
    return Sequential(*layers)


def init_experiment(depth: int = 10, width: int = 500, samples: int = 1000, seed: int = 0,
                    bins: int = 40) -> list[InitCase]:
    """Run every case of `CASES` on the same unit-Gaussian batch (samples × width) with random labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, width)).astype(np.float32)
    y = rng.integers(0, 10, samples)
    out = []
    for name, nonlinearity, init in CASES:
        net = deep_net(nonlinearity, init, depth, width, width, rng=np.random.default_rng(seed + 1))
        stats, params = layer_statistics(net, x, SoftmaxCrossEntropy(), y, bins=bins)
        acts = [s for s in stats if s.kind in ("tanh", "relu")]
        case = InitCase(name, acts)
        a = activations.judge(stats, activations.input_rms(x))
        case.verdicts = [a, gradients.judge(stats, params, activations=a)]
        out.append(case)
    return out


def format_init_experiment(cases: list[InitCase]) -> str:
    lines = []
    for c in cases:
        lines.append(f"{c.name}")
        lines.append("  layer   " + " ".join(f"{i + 1:>7d}" for i in range(len(c.activations))))
        lines.append("  mean    " + " ".join(f"{s.mean:>7.3f}" for s in c.activations))
        lines.append("  std     " + " ".join(f"{s.std:>7.3g}" for s in c.activations))
        for v in c.verdicts:
            lines.append(f"  {v}")
    return "\n".join(lines)
