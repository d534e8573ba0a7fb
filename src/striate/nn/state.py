"""Checking an array before it is loaded into a parameter or buffer: no silent lossy casts.

The rule (`Module.load_state_dict`, `models.transfer.load_pretrained` / `load_torch_weights`):
- floating target (weights, BatchNorm statistics): a floating source loads when the target dtype holds
  every value exactly (float16 → float32 always; float64 → float32 when each value round-trips). Other
  values are refused unless `cast=True` asks for rounding; values beyond the target's range are refused
  even then. Integer and bool sources are always refused: they are not weights.
- integer target (`num_batches_tracked`, int64): integer sources, and floats holding whole numbers, that
  fit the target's range. Bool and fractional values are refused.
NaN and ±inf load as they are (a diverged checkpoint is refused elsewhere). Errors are ValueErrors that
name the key, the source dtype and the target dtype.
"""

from __future__ import annotations

import numpy as np


def _first(values: np.ndarray, where: np.ndarray):
    """The first element of `values` where `where` holds, as a Python scalar (for messages)."""
    return values.reshape(-1)[int(np.flatnonzero(where.reshape(-1))[0])].item()


def convert_for_load(key: str, value, target: np.ndarray, *, cast: bool = False, what: str = "load") -> np.ndarray:
    """`value` in `target`'s dtype and shape, ready for `target[...] = result`, or a ValueError
    (`what: 'key': …`) when that would lose information. `cast=True` allows rounding floats."""
    value = np.asarray(value)
    src, dst = value.dtype, np.asarray(target).dtype
    shape = np.shape(target)

    def refuse(reason: str) -> ValueError:
        return ValueError(f"{what}: '{key}' is {src}, the model stores {dst}: {reason}")

    if value.shape != shape:
        raise ValueError(f"{what}: '{key}' has shape {value.shape}, expected {shape}")
    if src == dst:
        return value
    if np.issubdtype(dst, np.floating):
        if not np.issubdtype(src, np.floating):
            raise refuse("integer, bool and other non-floating arrays are never loaded into floating "
                         "parameters or statistics (is this the right array for the key?)")
        if np.can_cast(src, dst, "safe"):
            return value.astype(dst)
        with np.errstate(over="ignore", invalid="ignore"):
            converted = value.astype(dst)
            overflow = np.isinf(converted) & np.isfinite(value)
            if overflow.any():
                raise refuse(f"value {_first(value, overflow)!r} is beyond {dst}'s range "
                             f"(±{np.finfo(dst).max:.4g}), even with cast=True")
            inexact = ~((converted.astype(src) == value) | np.isnan(value))
        if inexact.any() and not cast:
            v = _first(value, inexact)
            raise refuse(f"{int(inexact.sum())} of {value.size} values are not exactly representable "
                         f"(e.g. {v!r} would become {dst.type(v).item()!r}); pass cast=True to round them")
        return converted
    if np.issubdtype(dst, np.integer):
        if np.issubdtype(src, np.floating):
            bad = ~np.isfinite(value) | (value != np.round(value))
            if bad.any():
                raise refuse(f"value {_first(value, bad)!r} is not a whole number")
        elif not np.issubdtype(src, np.integer):
            raise refuse("an integer buffer takes integers (or floats holding whole numbers) only")
        info = np.iinfo(dst)
        out_of_range = (value < info.min) | (value > info.max)
        if out_of_range.any():
            raise refuse(f"value {_first(value, out_of_range)!r} is outside {dst}'s range")
        return value.astype(dst)
    raise refuse(f"arrays load into {dst} only from {dst}")
