"""The notebooks run: examples/notebooks/babysitting.ipynb, and the README's "In a notebook" section as cells,
each executed in a real kernel (nbclient + ipykernel) of this interpreter, so neither can rot.

Bar (issue 27): no error, HTML and PNG outputs, no cell with more than 40 outputs however long the training.
The kernel is this interpreter's, from a kernel spec written into a temporary JUPYTER_PATH: no spec
installed on the machine is needed, and none found there is used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebooks" / "babysitting.ipynb"
MAX_OUTPUTS = 40


def readme_cells() -> list[str]:
    """The ```python blocks of the README's "## In a notebook" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## In a notebook\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run(nb, kernel_name: str, where: Path):
    """Execute `nb` in `where` (its working directory); raises on the first failing cell."""
    client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=180, allow_errors=False,
                                     resources={"metadata": {"path": str(where)}})
    client.execute()
    return nb


def check_outputs(nb) -> None:
    """HTML and PNG outputs somewhere; no cell with more than MAX_OUTPUTS outputs; no error output."""
    kinds = set()
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        assert len(cell.outputs) <= MAX_OUTPUTS, f"code cell {i} has {len(cell.outputs)} outputs"
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i}: {out.get('ename')}: {out.get('evalue')}"
            kinds.update(out.get("data", {}))
    assert "text/html" in kinds, sorted(kinds)
    assert "image/png" in kinds, sorted(kinds)


def test_readme_section_parses():
    cells = readme_cells()
    assert len(cells) >= 4
    for code in cells:
        compile(code, "README.md", "exec")


def test_example_notebook_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and any(c.cell_type == "markdown" for c in nb.cells)
    for i, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, f"code cell {i} was committed with outputs"


def test_readme_section_runs_in_a_kernel(jupyter_kernel, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in readme_cells()]
    check_outputs(run(nb, jupyter_kernel, tmp_path))
    assert list((tmp_path / "runs").glob("*/report.html"))


def test_example_notebook_runs_in_a_kernel(jupyter_kernel, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    check_outputs(run(nb, jupyter_kernel, tmp_path))
