"""A builder's or a layer's keywords as a run file gives them, checked against its signature before it is
called: the value's type from the annotation (`int`, `float`, `bool`, `str`, `tuple[int, ...]`, unions of
these) or, without one, from the default. A value of the wrong type, or a number that is not finite, is a
ValueError naming it (`model.layers[2].survival = 'x': expected a number`), so a mistake in a run file never
reaches the constructor as a TypeError. A keyword whose type says nothing TOML can write (a Generator, a
callable) is left to the constructor.
"""

from __future__ import annotations

import inspect
import math

_SCALARS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _is(value, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "bool"
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int | float)
    return kind == "str" and isinstance(value, str)


def _alternative(text: str) -> tuple[str, int | None] | None:
    """('int', None) for 'int'; ('int', 2) for 'tuple[int, int]'; ('int', 0) for 'tuple[int, ...]' (any
    length); None for a type a run file cannot write."""
    text = text.strip()
    if text in _SCALARS:
        return text, None
    if text.startswith("tuple[") and text.endswith("]"):
        items = [t.strip() for t in text[6:-1].split(",")]
        if len(items) == 2 and items[1] == "...":
            return (items[0], 0) if items[0] in ("int", "float") else None
        if items and all(t == items[0] for t in items) and items[0] in ("int", "float"):
            return items[0], len(items)
    return None


def expected(param: inspect.Parameter) -> list[tuple[str, int | None]] | None:
    """The values `param` takes, as alternatives (kind, length): length None for a scalar, 0 for a list of any
    length, n for a list of n; None when nothing can be said (the constructor checks it)."""
    note = param.annotation
    if isinstance(note, type):
        note = note.__name__
    if isinstance(note, str) and note:
        parts = [p for p in note.split("|") if p.strip() != "None"]  # None: TOML cannot write it
        alternatives = [_alternative(p) for p in parts]
        return None if not alternatives or None in alternatives else alternatives
    default = param.default
    if isinstance(default, bool):
        return [("bool", None)]
    for kind in (int, float, str):
        if isinstance(default, kind):
            return [(kind.__name__, None)]
    return None


def _describe(alternatives) -> str:
    words = []
    for kind, length in alternatives:
        if length is None:
            words.append(_SCALARS[kind])
        else:
            of = "integers" if kind == "int" else "numbers"
            words.append(f"a list of {length} {of}" if length else f"a list of {of}")
    return " or ".join(words)


FLOAT32_MAX = 3.4028234663852886e38  # a larger number is inf once the layer casts it to float32


def _finite(value) -> bool:
    return not isinstance(value, float) or (math.isfinite(value) and abs(value) <= FLOAT32_MAX)


def check_value(value, param: inspect.Parameter, where: str) -> None:
    """ValueError `where = value: expected …` when `value` is not what `param` takes, or a number that is not
    finite (in float32, the layers' type)."""
    alternatives = expected(param)
    if isinstance(value, float) and not _finite(value):
        raise ValueError(f"{where} = {value!r}: not a finite number" + (
            f" in float32 (at most ±{FLOAT32_MAX:.3g})" if math.isfinite(value) else ""))
    if alternatives is None:
        return
    for kind, length in alternatives:
        if length is None and _is(value, kind):
            return
        if length is not None and isinstance(value, list | tuple) and (not length or len(value) == length) \
                and all(_is(v, kind) and _finite(v) for v in value):
            return
    raise ValueError(f"{where} = {value!r}: expected {_describe(alternatives)}")


def describe(params, skip=()) -> str:
    """'out_channels, kernel_size, stride=1, padding=0': the keywords a user may give, required ones by name,
    the rest with their defaults."""
    shown = []
    for name, p in params.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            shown.append(name)
        elif callable(p.default):  # a class or function (dtype=np.float32): its name, not its repr
            shown.append(f"{name}={getattr(p.default, '__name__', p.default)}")
        else:
            default = list(p.default) if isinstance(p.default, tuple) else p.default
            shown.append(f"{name}={default!r}")
    return ", ".join(shown) or "none"


MAX_NESTING = 100  # lists and tables within one another in a [model] table (a layer list nests 2 per container)


def check_table(table: dict, prefix: str) -> None:
    """ValueError naming the path (`model.layers[1].init.normal = nan`) of the first number in `table` that
    is not finite, or of a value nested more than MAX_NESTING deep. A loop, not recursion: a table nested
    thousands deep must not exhaust the stack."""
    stack = [(v, f"{prefix}.{k}", 1) for k, v in table.items()]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ValueError(f"{path.split('[')[0]}: nested more than {MAX_NESTING} deep")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{path} = {item!r}: not a finite number")
        if isinstance(item, dict):
            stack += [(v, f"{path}.{k}", depth + 1) for k, v in item.items()]
        elif isinstance(item, list | tuple):
            stack += [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item)]
