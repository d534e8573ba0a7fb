"""The README is true: every Python block runs as written, and every `st.` name it mentions resolves."""

import re
from pathlib import Path

import pytest

import striate as st

README = Path(__file__).resolve().parents[1] / "README.md"
NOTEBOOK_SECTION = "In a notebook"  # its blocks are cells of one notebook, run in a kernel by test_notebooks.py
BLOCKS = [block for section in re.split(r"\n(?=## )", README.read_text())
          if not section.startswith(f"## {NOTEBOOK_SECTION}\n")
          for block in re.findall(r"```python\n(.*?)```", section, re.S)]


def test_the_first_example_runs(capsys):
    assert BLOCKS, "README has no python example"
    namespace: dict = {}
    exec(compile(BLOCKS[0], str(README), "exec"), namespace)
    assert namespace["report"].ok
    assert namespace["net"][0].weight.grad.shape == (3, 3, 3, 16)
    assert "gradcheck: ok" in capsys.readouterr().out


@pytest.mark.parametrize("index", range(1, len(BLOCKS)))
def test_every_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks that write a run directory write it here
    exec(compile(BLOCKS[index], f"{README}, python block {index + 1}", "exec"), {})


def test_every_st_name_resolves():
    names = sorted(set(re.findall(r"(?<![\w/.])st\.([A-Za-z_][\w.]*[A-Za-z_\d])", README.read_text())))
    assert len(names) > 15
    for dotted in names:
        obj = st
        for part in dotted.split("."):
            assert hasattr(obj, part), f"st.{dotted}: {part!r} does not resolve"
            obj = getattr(obj, part)


def test_the_resumable_flags_are_the_option_tables():
    from striate.run import config as cfg

    sentence = re.search(r"Only (.*?) may change on a resume", README.read_text(), re.S)
    assert sentence, "README no longer says which flags may change on a resume"
    listed = re.findall(r"`(--[\w-]+)`", sentence.group(1))
    assert listed == [cfg.BY_NAME[name].flag_name for name in cfg.resumable()]
