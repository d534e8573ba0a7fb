"""The README's Python example runs as written and its gradient check passes."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["report"].ok
    assert namespace["net"][0].weight.grad.shape == (3, 3, 3, 16)
    assert "gradcheck: ok" in capsys.readouterr().out
