"""The course's figures: Mermaid blocks in the chapters, the same ones in the notebooks, each one
accepted by Mermaid's own parser (the one GitHub and JupyterLab render with), run by Node.js from
the copy scripts/provision.sh --test puts beside the virtualenv."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "chapters").glob("[0-9][0-9]-*.md"))
NOTEBOOKS = REPO / "notebooks"
PARSER = REPO / "tests" / "figures" / "parse.mjs"
MODULES = Path(sys.prefix) / "mermaid" / "node_modules"
_BLOCK = re.compile(r"^```mermaid\n(.*?)^```$", re.S | re.M)


def blocks(markdown: str) -> list[str]:
    """Every fenced mermaid block's text. An opening fence without its closing one is an error."""
    found = _BLOCK.findall(markdown)
    assert markdown.count("```mermaid") == len(found), "a ```mermaid fence is not closed"
    return found


def notebook_blocks(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [b for cell in nb.cells if cell.cell_type == "markdown" for b in blocks(cell.source + "\n")]


def parse(texts: list[str]) -> list[str | None]:
    """Mermaid's verdict on each text: None if it parses, else the parser's message."""
    if not shutil.which("node") or not MODULES.is_dir():
        pytest.fail(f"Mermaid's parser is not installed in {MODULES.parent}: run scripts/provision.sh --test")
    result = subprocess.run(["node", str(PARSER), str(MODULES)], input=json.dumps(texts),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def every_figure() -> list[tuple[str, str]]:
    found = [(chapter.name, b) for chapter in CHAPTERS for b in blocks(chapter.read_text())]
    found += [(nb.name, b) for nb in sorted(NOTEBOOKS.glob("*.ipynb")) for b in notebook_blocks(nb)]
    return found


def test_every_chapter_has_figures():
    from mini_runtime import CHAPTERS_DONE

    for chapter in CHAPTERS_DONE:
        assert len(blocks((REPO / "chapters" / f"{chapter}.md").read_text())) >= 2, chapter


def test_each_notebook_shows_its_chapters_figures():
    for chapter in CHAPTERS:
        notebook = NOTEBOOKS / f"{chapter.stem}.ipynb"
        if notebook.is_file():
            assert sorted(notebook_blocks(notebook)) == sorted(blocks(chapter.read_text())), \
                f"{notebook.name}: its figures differ from {chapter.name}'s (copy the block)"


def test_every_figure_parses():
    figures = every_figure()
    assert figures
    verdicts = parse([text for _, text in figures])
    bad = [f"{where}: figure '{text.splitlines()[0]} ...': {verdict.splitlines()[0]}"
           for (where, text), verdict in zip(figures, verdicts) if verdict is not None]
    assert not bad, "\n".join(bad)


def test_a_broken_figure_fails():
    """The check can fail: each kind of diagram the course uses, broken, is refused."""
    kinds = {}
    for _, text in every_figure():
        kinds.setdefault(text.split()[0], text)
    broken = []
    for text in kinds.values():
        lines = text.splitlines()
        # An arrow that points nowhere is an error in every diagram type the course uses.
        broken.append("\n".join(lines[:2] + ["    A --> ", "    --> B :"] + lines[2:]) + "\n")
    assert all(verdict is not None for verdict in parse(broken)), list(kinds)
    assert parse(["flowchart LR\n    A[fork --> B[exec]\n"]) != [None]
    with pytest.raises(AssertionError, match="not closed"):
        blocks("text\n```mermaid\nflowchart LR\n    A --> B\n")
