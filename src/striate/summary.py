"""`summary(model, input_shape)`: per-layer output shape, parameters and multiply-accumulates,
computed from shapes alone (no data is run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .nn.containers import Sequential
from .nn.module import Module


@dataclass
class LayerRow:
    name: str
    layer: str
    output_shape: tuple[int, ...]
    params: int
    macs: int

    @property
    def activation_bytes(self) -> int:
        size = 1
        for d in self.output_shape:
            size *= d
        return 4 * size


@dataclass
class Summary:
    rows: list[LayerRow] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].output_shape if self.rows else self.input_shape

    def __str__(self) -> str:
        head = f"{'layer':<14}{'type':<34}{'output shape':<22}{'params':>12}{'MACs':>16}"
        lines = [head, "─" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name:<14}{r.layer[:33]:<34}{str(r.output_shape):<22}{r.params:>12,}{r.macs:>16,}")
        lines.append("─" * len(head))
        lines.append(f"{'total':<70}{self.total_params:>12,}{self.total_macs:>16,}")
        lines.append(f"input {self.input_shape}  →  output {self.output_shape}")
        return "\n".join(lines)


def _walk(module: Module, shape, prefix: str, rows: list[LayerRow]):
    if isinstance(module, Sequential):
        for name, child in module.named_children():
            shape = _walk(child, shape, f"{prefix}.{name}" if prefix else name, rows)
        return shape
    out = module.output_shape(shape)
    rows.append(LayerRow(prefix or type(module).__name__, module.describe(), tuple(out),
                         module.num_parameters(), int(module.macs(shape))))
    return out


def summary(model: Module, input_shape: tuple[int, ...], batch_size: int = 1) -> Summary:
    """Table of the layers of `model` for one input of `input_shape` (no batch axis, e.g. (32, 32, 3));
    shapes and MACs are for `batch_size` samples."""
    shape = (batch_size, *tuple(input_shape))
    s = Summary(input_shape=shape)
    _walk(model, shape, "", s.rows)
    return s
