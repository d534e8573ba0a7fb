"""Computational complexity of a network from shapes alone (no data is run): per layer the output shape,
parameters, multiply-accumulates and activation memory, and the memory a training step needs. One table,
`complexity(model, input_shape)`; `st.summary(model, input_shape)` is the same table under its short name.

One MAC is one multiply-add (the notes' "volume of the cube": a convolution costs Ho·Wo·F·KH·KW·C per
image, a fully connected layer in·out); pooling, ReLU, normalisation and additions are not counted, as in
the published figures (AlexNet 0.72 G, VGG-16 15.5 G, GoogLeNet 1.5 G). Activation memory of a layer is
the size of its output at `bytes_per_value` (4, float32).

Training-step memory at batch size B (`Complexity.training_memory`):
    activations  = B · (input + Σ every layer's output) · bytes — each output is kept once for backward,
                   which is what striate's caches hold to within the layers' small extras (pool switches,
                   ReLU masks) and savings (outputs consumed in place);
    parameters   = every parameter; gradients = every trainable parameter;
    optimizer    = slots · trainable parameters (SGD 0, momentum/Nesterov/AdaGrad/RMSProp 1, Adam/AdamW 2);
    workspace    = the im2col column matrix (the notes' X_col, "a lot of memory … repeated"): striate builds it
                   chunk by chunk (`kernels.conv.COLUMN_BYTES` of columns, at least one image) in one buffer per
                   thread that every convolution reuses, and a second for the columns' gradient in the backward
                   pass, so 2 · threads · the largest convolution's chunk (1×1 stride-1 convolutions need none).
`cache_bytes(model)` measures what the caches of a model really hold after a forward pass, to compare:
on CIFAR nets at batch 8 the formula is 0.33× the measured caches for VGG-11 with BN (BatchNorm and the
convolutions keep extra arrays: normalised inputs, padded inputs), 0.5× for the AlexNet variant, and 2.2×
for GoogLeNet at width 0.25 (padding, concatenation and pooling rows count outputs whose backward keeps
only shapes or small switches). It is the notes' textbook count, not an allocator trace.

Activations count every layer's output, an elementwise layer's (ReLU, dropout, Flatten) too: other frameworks
and the notes fold a ReLU into the convolution before it ("CONV3-64: [224x224x64]"; the table's footer says how
much the elementwise layers add). On VGG-16 the notes' rows add up to 15.2 M values (58 MiB; their stated total,
"24M * 4 bytes ~= 93MB", is more than their rows), striate's 110 MiB adds 13.6 M ReLU outputs (52 MiB).

Rows: leaf layers, plus one row for each `Concat` (the concatenated output is a new array) and each
`Residual` (the sum). Any other module with children (e.g. AlexNet's grouped convolution) is one row.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from .kernels.conv import COLUMN_BYTES
from .markup import Displayed, card, count, headline_row, table
from .nn.activation import _Elementwise
from .nn.containers import Concat, Residual, Sequential
from .nn.conv import Conv2d
from .nn.dropout import Dropout
from .nn.module import Module
from .nn.shape import Flatten
from .optim.registry import STATE_SLOTS


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def mib(b: float) -> str:
    """A byte count in the largest binary unit it reaches: '1.5 GiB'."""
    for div, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if b >= div:
            return f"{b / div:,.1f} {unit}"
    return f"{b:.0f} B"


@dataclass
class LayerCost:
    """One row: `name` is the dotted path in the model, `layer` its description; shapes include the batch."""
    name: str
    layer: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int
    trainable_params: int = 0
    column_bytes: int = 0  # per sample: the im2col column matrix of the layer's convolutions (the largest one)
    elementwise: bool = False  # an output the notes fold into the layer before (ReLU, dropout, Flatten)


@dataclass
class TrainingMemory:
    """Bytes a training step needs (see the module docstring)."""
    batch_size: int
    activations: int
    parameters: int
    gradients: int
    optimizer_state: int
    optimizer: str
    workspace: int = 0
    threads: int = 1

    @property
    def total(self) -> int:
        return self.activations + self.workspace + self.parameters + self.gradients + self.optimizer_state

    def __str__(self) -> str:
        return (f"training step at batch {self.batch_size} ({self.optimizer}): activations {mib(self.activations)} + "
                f"im2col workspace {mib(self.workspace)} ({self.threads} thread{'s' * (self.threads != 1)}) + "
                f"parameters {mib(self.parameters)} + gradients {mib(self.gradients)} + optimizer state "
                f"{mib(self.optimizer_state)} = {mib(self.total)}")


@dataclass(repr=False)
class Complexity(Displayed):
    rows: list[LayerCost] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    bytes_per_value: int = 4

    @property
    def batch_size(self) -> int:
        return int(self.input_shape[0])

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def input_bytes(self) -> int:
        return _size(self.input_shape) * self.bytes_per_value

    @property
    def activation_bytes(self) -> int:
        """Input plus every layer's output, for this batch."""
        return self.input_bytes + sum(r.activation_bytes for r in self.rows)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].output_shape if self.rows else self.input_shape

    def workspace_bytes(self, batch_size: int, threads: int) -> int:
        """The im2col buffers of a training step at `batch_size` on `threads` threads (module docstring)."""
        chunk = max((min(batch_size, max(1, COLUMN_BYTES // r.column_bytes)) * r.column_bytes
                     for r in self.rows if r.column_bytes), default=0)
        return 2 * max(1, min(threads, batch_size)) * chunk

    def training_memory(self, batch_size: int | None = None, optimizer: str | int = "sgd",
                        threads: int | None = None) -> TrainingMemory:
        """Memory of one training step at `batch_size` (default: this table's) with `optimizer` (a name in
        STATE_SLOTS or a number of per-parameter state arrays) on `threads` threads (default: striate's,
        `kernels.parallel.num_threads`)."""
        from .kernels.parallel import num_threads

        if isinstance(optimizer, str):
            if optimizer not in STATE_SLOTS:
                raise ValueError(f"unknown optimizer {optimizer!r}; choose from {sorted(STATE_SLOTS)} or give "
                                 "the number of state arrays per parameter")
            slots, label = STATE_SLOTS[optimizer], optimizer
        else:
            slots, label = int(optimizer), f"{int(optimizer)} state slots"
        b = self.batch_size if batch_size is None else int(batch_size)
        per_sample = self.activation_bytes // self.batch_size
        v = self.bytes_per_value
        threads = max(1, min(num_threads() if threads is None else int(threads), b))
        return TrainingMemory(b, b * per_sample, self.total_params * v, self.trainable_params * v,
                              slots * self.trainable_params * v, label, self.workspace_bytes(b, threads), threads)

    def __str__(self) -> str:
        """The table: names and layer descriptions whole (the columns as wide as the longest), then totals."""
        return "\n".join(self._lines(self.rows))

    def _lines(self, rows: list[LayerCost]) -> list[str]:
        """The table of `rows` (all of them, or a part with a line standing for the rest), totals and footer."""
        nw = max([17, *(len(r.name) for r in self.rows)]) + 1
        lw = max([39, *(len(r.layer) for r in self.rows)]) + 1
        head = f"{'layer':<{nw}}{'type':<{lw}}{'output shape':<22}{'params':>13}{'MACs':>17}{'activations':>14}"
        lines = [head, "─" * len(head)]
        for r in rows:
            if r is None:
                lines.append(f"… {len(self.rows) - len(rows) + 1} more layers (print the table for all of them)")
                continue
            lines.append(f"{r.name:<{nw}}{r.layer:<{lw}}{str(r.output_shape):<22}{r.params:>13,}{r.macs:>17,}"
                         f"{mib(r.activation_bytes):>14}")
        lines.append("─" * len(head))
        lines.append(f"{'total':<{nw + lw + 22}}{self.total_params:>13,}{self.total_macs:>17,}"
                     f"{mib(self.activation_bytes):>14}")
        lines.append(self._totals())
        folded = sum(r.activation_bytes for r in self.rows if r.elementwise)
        if folded:
            lines.append(f"activations count every layer's output: {mib(folded)} of them are ReLU, dropout and "
                         f"Flatten outputs, which the notes fold into the layer before "
                         f"({mib(self.activation_bytes - folded)} without them; the notes' VGG-16 table says ~93 MB)")
        return lines

    def _totals(self) -> str:
        return (f"input {self.input_shape} → output {self.output_shape}: {_human(self.total_params)} parameters, "
                f"{_human(self.total_macs)} MACs, {mib(self.activation_bytes)} of activations (input included)")

    # a notebook's displays (`markup.Displayed`): the table (cut to REPR_ROWS rows in the text), the totals
    REPR_ROWS = 16

    def _text(self) -> str:
        rows = self.rows
        if len(rows) > self.REPR_ROWS:
            k = self.REPR_ROWS - 4
            rows = [*rows[:k], None, *rows[-3:]]
        return "\n".join(self._lines(rows))

    def _html(self) -> list[str]:
        params, macs = self.total_params, self.total_macs
        cards = headline_row([card("parameters", "parameters", count(params), f"{params:,}"),
                              card("MACs", "MACs / batch", count(macs), f"{macs:,} multiply-adds"),
                              card("activations", "activations", mib(self.activation_bytes), "input included")])
        rows = [[r.name, r.layer, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}", mib(r.activation_bytes)]
                for r in self.rows]
        rows.append(["total", "", str(self.output_shape), f"{self.total_params:,}", f"{self.total_macs:,}",
                     mib(self.activation_bytes)])
        body = table(["layer", "type", "output shape", "params", "MACs", "activations"], rows, {3, 4, 5},
                     ["" for _ in self.rows] + ["best"])  # the totals shaded, as the report shades a best row
        return [cards, body, f"<p class='meta'>{html.escape(self._totals())}</p>"]


def _columns(module: Module, out) -> int:
    """Values per sample of the largest im2col column matrix among `module`'s convolutions (a grouped
    convolution's are per group), output `out` (N, Ho, Wo, F); 0 for a 1×1 stride-1 one (its input is its
    column matrix) and for other layers."""
    convs = [m for m in module.modules() if isinstance(m, Conv2d) and (m.kernel_size != (1, 1) or m.stride != 1)]
    return max((out[1] * out[2] * m.kernel_size[0] * m.kernel_size[1] * m.in_channels for m in convs), default=0)


def _leaf(module: Module, shape, name: str, rows: list[LayerCost], bytes_per_value: int):
    out = tuple(module.output_shape(shape))
    rows.append(LayerCost(name or type(module).__name__, module.describe(), out, module.num_parameters(),
                          int(module.macs(shape)), _size(out) * bytes_per_value,
                          sum(p.data.size for p in module.parameters() if p.requires_grad),
                          _columns(module, out) * bytes_per_value if len(out) == 4 else 0,
                          isinstance(module, _Elementwise | Dropout | Flatten) and not module.num_parameters()))
    return out


def _walk(module: Module, shape, name: str, rows: list[LayerCost], bpv: int):
    def child(n):
        return f"{name}.{n}" if name else n

    if isinstance(module, Sequential):
        for n, m in module.named_children():
            shape = _walk(m, shape, child(n), rows, bpv)
        return shape
    if isinstance(module, Concat | Residual):  # the branches' rows, then one for the joined output
        for n, m in module.named_children():
            _walk(m, shape, child(n), rows, bpv)
        out = tuple(module.output_shape(shape))
        layer = module.describe() if isinstance(module, Concat) else "Residual (sum)"
        rows.append(LayerCost(name or type(module).__name__, layer, out, 0, 0, _size(out) * bpv))
        return out
    return _leaf(module, shape, name, rows, bpv)


def complexity(model: Module, input_shape: tuple[int, ...], batch_size: int = 1,
               bytes_per_value: int = 4) -> Complexity:
    """The cost table of `model` on inputs of `input_shape` (no batch axis, e.g. (224, 224, 3)) for
    `batch_size` samples. Raises the layer's error (naming it) when the input does not fit."""
    shape = (int(batch_size), *(int(d) for d in input_shape))
    c = Complexity(input_shape=shape, bytes_per_value=bytes_per_value)
    _walk(model, shape, "", c.rows, bytes_per_value)
    return c


def summary(model: Module, input_shape: tuple[int, ...], batch_size: int = 1) -> Complexity:
    """`st.summary`: the complexity table of `model` for inputs of the per-sample `input_shape` (e.g.
    (32, 32, 3), no batch axis) — per-layer output shape, parameters, MACs, activation memory and the totals;
    `print` it for the table. Shapes and MACs are for `batch_size` samples."""
    return complexity(model, input_shape, batch_size)


def machine_memory() -> int | None:
    """Bytes of memory this process may use at most: the machine's physical memory, or a container's
    (cgroup) limit when lower; None when the system does not say."""
    import os

    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = None
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit) as f:
                value = int(f.read().strip())
        except (OSError, ValueError):  # absent, or "max": no limit
            continue
        total = value if total is None else min(total, value)
    return total


def heaviest(table: Complexity, batch_size: int) -> LayerCost | None:
    """The row that needs the most memory in a training step at `batch_size` (its weights and gradients, its
    output for the batch)."""
    if not table.rows:
        return None
    per_sample = max(1, table.batch_size)
    return max(table.rows, key=lambda r: 2 * r.params * table.bytes_per_value
               + r.activation_bytes // per_sample * batch_size)


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """'224x224x3' (or '224×224×3', '224,224,3') → (224, 224, 3)."""
    parts = text.replace("×", "x").replace(",", "x").lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"input shape {text!r}: expected HxWxC, e.g. 224x224x3")
    return dims


def cache_bytes(model: Module) -> int:
    """Bytes of the distinct arrays held in `model`'s caches right now (call after a training-mode forward);
    views are counted once, through their base array."""
    import numpy as np

    seen: set[int] = set()
    total = 0

    def visit(obj):
        nonlocal total
        if isinstance(obj, np.ndarray):
            base = obj
            while isinstance(base.base, np.ndarray):
                base = base.base
            if id(base) not in seen:
                seen.add(id(base))
                total += base.nbytes
        elif isinstance(obj, tuple | list):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)

    for m in model.modules():
        visit(m._cache)
    return total
