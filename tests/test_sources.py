"""Every Python source and every notebook code cell compiles with warnings as errors.

A newcomer on Python 3.12+ should not meet a `SyntaxWarning: invalid escape sequence` (3.12
made those visible; a later Python makes them errors) before the first experiment. Compiling is
enough to see them: they are raised by the compiler, not at run time. No root, no kernel.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TREES = ("mini_runtime", "exercises", "scripts", "tests", "bench")
# IPython syntax in a notebook cell: a shell escape or a line magic (`!ls`, `%time f()`,
# `files = !ls`), replaced by `pass` at the same indent; a cell magic (`%%bash`) makes the whole
# cell not Python.
_IPYTHON_LINE = re.compile(r"^(\s*)(?:[!%]|\w+\s*=\s*[!%])")


def python_files() -> list[Path]:
    return sorted(p for tree in TREES for p in (REPO / tree).rglob("*.py")
                  if "__pycache__" not in p.parts)


def notebook_cells() -> list[tuple[str, str]]:
    """(a name for the cell, its source as plain Python)."""
    cells = []
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        for number, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or source.lstrip().startswith("%%"):
                continue
            python = "\n".join(_IPYTHON_LINE.sub(r"\1pass  # ", line) if _IPYTHON_LINE.match(line) else line
                               for line in source.splitlines())
            cells.append((f"{notebook.name} cell {number}", python))
    return cells


def _compile(source: str, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(source, name, "exec", dont_inherit=True)


def test_there_is_something_to_compile():
    assert len(python_files()) > 50 and len(notebook_cells()) > 50


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_compiles_without_warnings(path: Path):
    _compile(path.read_text(), str(path))


@pytest.mark.parametrize("name, source", notebook_cells(), ids=[n for n, _ in notebook_cells()])
def test_notebook_cell_compiles_without_warnings(name: str, source: str):
    _compile(source, name)


def test_ipython_syntax_is_skipped_and_nothing_else():
    assert _IPYTHON_LINE.sub(r"\1pass  # ", "    !ls /") == "    pass  # ls /"
    assert _IPYTHON_LINE.match("files = !ls") and _IPYTHON_LINE.match("%time f()")
    assert not _IPYTHON_LINE.match("x = a % b") and not _IPYTHON_LINE.match("y != 3")
    with pytest.raises(SyntaxError):  # (the warning, made an error)
        _compile("s = '\\$'", "an invalid escape")


def test_each_demo_narration_is_whole_sentences():
    """`say()` starts a new paragraph: a sentence split over two calls is cut by a blank line."""
    import ast

    tree = ast.parse((REPO / "scripts" / "demo.py").read_text())
    cut = [call.lineno for call in ast.walk(tree)
           if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "say"
           and isinstance(call.args[0], ast.Constant) and not call.args[0].value.rstrip().endswith(
               (".", ":", "!", "?", ")", "..."))]
    assert not cut, f"scripts/demo.py: say() ends mid-sentence on line(s) {cut}"


def test_the_newcomer_path_needs_neither_make_nor_a_future_setuptools():
    """provision.sh is the first step (bash only: make may be missing), and the deprecated
    "compat" editable mode it uses is only asked of setuptools versions tested with it."""
    import tomllib

    readme = (REPO / "README.md").read_text()
    assert readme.index("bash scripts/provision.sh") < readme.index("make demo")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    setuptools = next(r for r in requires if r.startswith("setuptools"))
    if "editable_mode=compat" in (REPO / "scripts" / "provision.sh").read_text():
        assert "<" in setuptools, f"{setuptools!r}: compat mode needs an upper bound"
