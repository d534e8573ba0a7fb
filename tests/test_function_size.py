"""Functions stay small, beside test_architecture.py's file limit: no function in src/ over 60 lines, and in
diagnose/ none with more than 8 parameters except the public entry points (`doctor`, `gradcheck`,
`lr_range_test`), whose options are keyword-only. A check that needs more takes the doctor's `Context`."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "striate"
MAX_LINES, MAX_PARAMS = 60, 8
ENTRY_POINTS = {"doctor", "gradcheck", "lr_range_test"}


def _functions():
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(SRC), node


def _params(node) -> int:
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    return len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg) + bool(a.kwarg)


def test_no_function_is_over_60_lines():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node in _functions() if node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, "split these functions:\n" + "\n".join(long)


def test_diagnose_functions_take_at_most_8_parameters():
    many = [f"{path}:{node.lineno} {node.name} ({_params(node)} parameters)" for path, node in _functions()
            if path.parts[0] == "diagnose" and node.name not in ENTRY_POINTS and _params(node) > MAX_PARAMS]
    assert not many, "give these a context or a record instead of a parameter list:\n" + "\n".join(many)


def test_the_entry_points_take_their_options_by_keyword():
    found = {node.name: node for path, node in _functions() if path.parts[0] == "diagnose"
             and node.name in ENTRY_POINTS and path.stem in ("doctor", "gradcheck", "lr_finder")}
    assert set(found) == ENTRY_POINTS
    for name, node in found.items():
        positional = [p.arg for p in node.args.posonlyargs + node.args.args]
        assert len(positional) <= 4 and not any(p.arg in positional for p in node.args.kwonlyargs), name
        assert node.args.kwonlyargs, f"{name}: its options must be keyword-only"
