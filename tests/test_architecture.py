"""The package's shape: dependencies point one way (kernels ← nn/distributed ← optim/data ← train ←
models/diagnose/complexity ← report ← run ← search ← cli), checked over every import in src/, function-local
ones included; no package imports a package of its own rank (so there are no cycles); no import is made from
a string; no file grows past the house limit."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "striate"
# rank of each top-level package or module: a module may import only lower ranks (and its own package)
RANK = {
    "atomic": 0, "version": 0, "console": 0, "markup": 0, "kernels": 0,
    "nn": 1, "distributed": 1,
    "optim": 2, "data": 2,
    "train": 3,
    "models": 4, "diagnose": 4, "complexity": 4,
    "report": 5,
    "run": 6,
    "search": 7,
    "cli": 8, "__main__": 9, "__init__": 9,
}
MAX_LINES = 420


def _unit(path: Path) -> str:
    """The top-level package (or root module) a source file belongs to."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path):
    """(line, imported top-level unit) for every striate import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]  # e.g. ('striate', 'run')
    if path.name == "__init__.py":
        package = path.relative_to(SRC.parent).parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target] if node.module else [[*base, a.name] for a in node.names]
            elif node.module and node.module.split(".")[0] == "striate":
                names = [node.module.split(".")]
            else:
                continue
            for t in names:
                if len(t) > 1:
                    yield node.lineno, t[1]
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "striate" and len(parts) > 1:
                    yield node.lineno, parts[1]


def _sources():
    return sorted(SRC.rglob("*.py"))


def test_every_unit_has_a_rank():
    units = {_unit(p) for p in _sources()}
    assert units <= set(RANK), sorted(units - set(RANK))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path):
    unit = _unit(path)
    for line, target in _imports(path):
        if target == unit:
            continue
        assert target in RANK, f"{path}:{line} imports striate.{target}, which has no rank"
        assert RANK[target] < RANK[unit], (f"{path.relative_to(SRC)}:{line}: {unit} (rank {RANK[unit]}) imports "
                                          f"{target} (rank {RANK[target]}): dependencies must point down")


def test_no_import_from_a_string():
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                assert name not in ("import_module", "__import__"), f"{path}:{node.lineno} imports from a string"


def test_files_stay_small():
    big = {str(p.relative_to(SRC)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"files over {MAX_LINES} lines: {big}"


def test_import_striate_is_light():
    """`import striate` loads the layers and optimizers only; the rest loads on first use."""
    import subprocess
    import sys

    code = ("import sys, striate; mods = [m for m in sys.modules if m.startswith('striate')]; "
            "heavy = [m for m in ('striate.data', 'striate.train', 'striate.models', 'striate.run', 'PIL', "
            "'matplotlib', 'optuna', 'safetensors', 'tqdm') if m in sys.modules]; print(len(mods), heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) < 45 and out[1].strip() == "[]", out
