"""Compiled kernels from numba, for the passes where a single compiled loop measurably beats NumPy's several
array passes. Each family lives in its own module, loaded by `compiled("<family>")`: `numba_pool.py` (max and
average pooling), `numba_norm.py` (batch normalisation), `numba_act.py` (activations, dropout), `numba_conv.py`
(col2im of few-channel convolutions).

Enabled when numba is installed (the `train` extra installs it), unless `STRIATE_NUMBA=0`. `import striate`
never imports numba: the first pass that has a compiled kernel does (and compiles it, cached on disk). Each
module's docstring says how its results relate to the NumPy fallback's: bit-identical where the same operations
run in the same order (pooling, ReLU, dropout, col2im), within float32 rounding where a sum's order or a
library function changes (batch norm's sums, sigmoid, GELU). Parallel work is split by striate's own threads
(`parallel.for_parts`), so results are reproducible for a given thread count; the tests run both paths.
"""

from __future__ import annotations

import importlib.util
import os

_modules: dict[str, object] = {}  # family → its loaded module numba_<family>
_enabled: bool | None = None


def numba_enabled() -> bool:
    """Whether compiled kernels are used: numba is installed and STRIATE_NUMBA is not 0/off/false/no."""
    global _enabled
    if _enabled is None:
        off = os.environ.get("STRIATE_NUMBA", "").strip().lower() in ("0", "off", "false", "no")
        _enabled = not off and importlib.util.find_spec("numba") is not None
    return _enabled


def set_numba(enabled: bool) -> None:
    """Use the compiled kernels (if numba is installed) or the NumPy ones from now on."""
    global _enabled
    _enabled = bool(enabled) and importlib.util.find_spec("numba") is not None


def _load(family: str):
    """Import the module of one family (explicit imports: nothing is imported from a string)."""
    if family == "pool":
        from . import numba_pool as module
    elif family == "norm":
        from . import numba_norm as module
    elif family == "act":
        from . import numba_act as module
    elif family == "conv":
        from . import numba_conv as module
    else:
        raise ValueError(f"no compiled kernel family {family!r}")
    return module


def compiled(family: str):
    """The module `striate.kernels.numba_<family>`, or None when compiled kernels are off."""
    if not numba_enabled():
        return None
    module = _modules.get(family)
    if module is None:
        module = _modules[family] = _import_cached(family)
    return module


def _import_cached(family: str):
    """Import a numba_<family> module, whose kernels are `cache=True`. numba keeps its cache beside the source
    (`__pycache__`), or where that is read-only (a system-wide install) in ~/.cache/numba; where neither is
    writable it refuses to define the kernels ("no locator available"). Then the cache goes to a fresh
    private temporary directory (NUMBA_CACHE_DIR's setting, not a shared predictable path: numba's index
    files are pickles): the kernels compile in every process instead of once."""
    try:
        return _load(family)
    except RuntimeError as e:
        if "no locator available" not in str(e):
            raise
    import tempfile

    import numba

    numba.config.CACHE_DIR = tempfile.mkdtemp(prefix="striate-numba-")
    return _load(family)


def kernels():
    """The max-pooling kernels (`compiled("pool")`), or None when compiled kernels are off."""
    return compiled("pool")
