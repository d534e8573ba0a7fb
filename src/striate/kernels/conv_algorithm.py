"""Which algorithm computes each pass of each convolution: im2col + GEMM (`conv.py`, any shape; a plain GEMM
for 1×1) or Winograd F(2×2, 3×3) / F(4×4, 3×3) (`winograd.py`, 3×3 stride 1, padding ≤ 2).

The choice is per shape and per pass — forward ("fwd"), input gradient ("dx"), weight gradient ("dw") —
and is made by the mode (`STRIATE_CONV_ALGO`, or `set_conv_algorithm`):

- "rule" (default): the deterministic rule `winograd.choose`, written down there with the measurements it
  rests on. It depends on the shape only, so two runs of one configuration compute with the same algorithms.
- "autotune" (opt-in, like `torch.backends.cudnn.benchmark`): the first pass of each shape times every
  candidate that is accurate there (F(4×4) only where the rule allows it) on the real data and keeps the
  fastest. Timings vary between runs, so two runs may pick differently; the checkpoint records the picks.
- "im2col", "winograd" (F(4×4) where accurate, else F(2×2); im2col where Winograd cannot apply),
  "winograd2", "winograd4": forced.

Every choice made is kept in a process-wide table {key: algorithm}, key = `conv_key(...)`. The table (with
the mode) is exported by `conv_algorithms()` and imported by `load_conv_algorithms(state)`: the Trainer
saves it in every checkpoint and loads it on resume, so a resumed run computes each shape with exactly the
algorithm of the original, whatever the resuming process's own setting; a distributed run can broadcast
rank 0's table to every rank the same way. Imported choices are pinned: they win over the mode.

Convolutions with few input channels (1–8, where im2col moves runs of 1–8 floats) have no algorithm of their
own: the compiled col2im (`numba_conv.py`) is a transparent fast path inside "im2col", bit-identical to the
NumPy one, so the table, its keys and old checkpoints' tables are unchanged. (A direct compiled convolution was
measured 1.5–10× slower than im2col + GEMM on every few-channel shape of the zoo, so it is not a candidate.)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from .winograd import applicable, choose

PASSES = ("fwd", "dx", "dw")
ALGORITHMS = ("im2col", "winograd2", "winograd4")
MODES = ("rule", "autotune", "im2col", "winograd", "winograd2", "winograd4")

_lock = threading.Lock()
_mode: str | None = None
_table: dict[str, str] = {}


def _check_mode(mode) -> str:
    if mode not in MODES:
        raise ValueError(f"convolution algorithm must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def get_conv_algorithm() -> str:
    """The mode: `set_conv_algorithm`'s, else env STRIATE_CONV_ALGO, else "rule"."""
    global _mode
    if _mode is None:
        env = os.environ.get("STRIATE_CONV_ALGO", "").strip().lower() or "rule"
        try:
            _mode = _check_mode(env)
        except ValueError as e:
            raise ValueError(f"STRIATE_CONV_ALGO: {e}") from None
    return _mode


def set_conv_algorithm(mode: str) -> None:
    """Choose how convolutions pick their algorithm from now on: "rule" (default), "autotune", or one forced
    ("im2col", "winograd", "winograd2", "winograd4"). Forgets the choices made so far."""
    global _mode
    with _lock:
        _mode = _check_mode(mode)
        _table.clear()


def conv_key(which: str, x_shape, w_shape, stride: int, pad: int, dtype) -> str:
    """The table key of one pass of one convolution shape, e.g. 'fwd 128x32x32x64 k3x3x64 s1 p1 float32'."""
    n, h, w, c = x_shape
    kh, kw, _, f = w_shape
    return f"{which} {n}x{h}x{w}x{c} k{kh}x{kw}x{f} s{stride} p{pad} {dtype}"


def _parse(key: str):
    """(which, n, h, w, c, kh, kw, f, stride, pad) of a key, or ValueError."""
    which, x, k, s, p, _ = key.split(" ")
    n, h, w, c = (int(v) for v in x.split("x"))
    kh, kw, f = (int(v) for v in k[1:].split("x"))
    if which not in PASSES or s[0] != "s" or p[0] != "p":
        raise ValueError(key)
    return which, n, h, w, c, kh, kw, f, int(s[1:]), int(p[1:])


def _forced(mode: str, which: str, n, h, w, c, f, kh, kw, stride, pad) -> str:
    if mode == "im2col" or not applicable(kh, kw, stride, pad, h, w):
        return "im2col"
    if mode == "winograd":
        return choose(n, h, w, c, f, kernel=kh, stride=stride, pad=pad, which=which, force=True)
    return mode


def candidates(which: str, n, h, w, c, f, kh, kw, stride, pad) -> list[str]:
    """The algorithms autotune may time for a pass: im2col, and the Winograd variants accurate there."""
    if not applicable(kh, kw, stride, pad, h, w):
        return ["im2col"]
    best = choose(n, h, w, c, f, kernel=kh, stride=stride, pad=pad, which=which, force=True)
    return ["im2col", "winograd2"] + (["winograd4"] if best == "winograd4" else [])


def select(which: str, x_shape, w_shape, stride: int, pad: int, dtype,
           run: Callable[[str], object] | None = None):
    """(algorithm, result or None) for a pass. In autotune mode, a shape met for the first time is timed by
    calling `run(algorithm)` for each candidate (twice each, the faster counts), and the winner's result is
    returned so the caller need not compute it again; otherwise the result is None."""
    key = conv_key(which, x_shape, w_shape, stride, pad, dtype)
    algo = _table.get(key)
    if algo is not None:
        return algo, None
    mode = get_conv_algorithm()
    n, h, w, c = x_shape
    kh, kw, _, f = w_shape
    result = None
    if mode == "rule":
        algo = choose(n, h, w, c, f, kernel=kh, stride=stride, pad=pad, which=which)
        if kh != 3 or kw != 3:
            algo = "im2col"
    elif mode == "autotune" and run is not None:
        algo, result = _autotune(candidates(which, n, h, w, c, f, kh, kw, stride, pad), run)
    elif mode == "autotune":
        algo = choose(n, h, w, c, f, kernel=kh, stride=stride, pad=pad, which=which)
    else:
        algo = _forced(mode, which, n, h, w, c, f, kh, kw, stride, pad)
    with _lock:
        algo = _table.setdefault(key, algo)
    return algo, result


def _autotune(algos: list[str], run: Callable[[str], object]):
    if len(algos) == 1:
        return algos[0], None
    best, best_time, best_result = None, float("inf"), None
    for algo in algos:
        for _ in range(2):
            t = time.perf_counter()
            result = run(algo)
            elapsed = time.perf_counter() - t
            if elapsed < best_time:
                best, best_time, best_result = algo, elapsed, result
    return best, best_result


def conv_algorithms() -> dict:
    """The mode and every choice made so far, {"mode": str, "choices": {key: algorithm}}: JSON-able, for a
    checkpoint (or to send to other processes)."""
    with _lock:
        return {"mode": get_conv_algorithm(), "choices": dict(sorted(_table.items()))}


def load_conv_algorithms(state: dict) -> None:
    """Adopt an exported table: its mode from now on, and its choices pinned (they win over any mode). Every
    entry is checked first (ValueError naming it), so a refused table changes nothing."""
    mode = check_conv_algorithms(state)
    global _mode
    with _lock:
        _mode = mode
        _table.clear()
        _table.update(state["choices"])


def check_conv_algorithms(state: dict) -> str:
    """ValueError naming the first bad entry of an exported table; returns its mode."""
    if not isinstance(state, dict) or not isinstance(state.get("choices"), dict):
        raise ValueError("convolution algorithms: expected {'mode': …, 'choices': {key: algorithm}}, "
                         f"got {state!r}")
    mode = _check_mode(state.get("mode", "rule"))
    for key, algo in state["choices"].items():
        try:
            which, n, h, w, c, kh, kw, f, stride, pad = _parse(key)
        except (ValueError, AttributeError):
            raise ValueError(f"convolution algorithms: malformed key {key!r} (expected e.g. "
                             "'fwd 128x32x32x64 k3x3x64 s1 p1 float32')") from None
        if algo not in ALGORITHMS:
            raise ValueError(f"convolution algorithms: {key!r} has algorithm {algo!r}, expected one of "
                             f"{', '.join(ALGORITHMS)}")
        if algo != "im2col" and not applicable(kh, kw, stride, pad, h, w):
            raise ValueError(f"convolution algorithms: {key!r} cannot be computed by {algo} "
                             "(Winograd needs a 3×3 kernel, stride 1 and padding ≤ 2)")
    return mode
