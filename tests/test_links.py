"""Every relative link in the course's Markdown leads somewhere, on GitHub and in JupyterLab.

The two name a heading's anchor differently: GitHub lower-cases the heading and drops its
punctuation (`## Try it` → `#try-it`), JupyterLab 4 keeps the text and replaces each space with
'-' (`#Try-it`). A fragment must therefore name an anchor both have: an explicit
`<a id="try-it"></a>` (which both honour), or a heading whose two ids agree (`## pivot_root`).
A link to a folder fails in JupyterLab ("is a directory"), so links name files. No root, no
browser: tests/test_lab.py clicks the same links in a real JupyterLab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_EXPLICIT = re.compile(r"<a\s+id=\"([^\"]+)\"\s*>\s*</a>")
_INLINE_CODE = re.compile(r"`[^`]*`")


def documents() -> list[Path]:
    """The Markdown a learner or an instructor reads, and the notebooks (their Markdown cells)."""
    found = [REPO / "README.md", *sorted((REPO / "chapters").glob("*.md")),
             *sorted((REPO / "exercises").rglob("*.md")), *sorted((REPO / "bench").glob("*.md")),
             *sorted((REPO / "notebooks").glob("*.ipynb"))]
    return [p for p in found if p.is_file()]


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text()


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def heading_text(source: str) -> str:
    """What the rendered heading reads: links become their text, code and emphasis marks go."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", source)
    return text.replace("`", "").replace("**", "").strip()


def github_id(text: str) -> str:
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def jupyterlab_id(text: str) -> str:
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The fragments that work in both GitHub and JupyterLab for this file."""
    lines = prose_lines(markdown_of(path))
    explicit = {m.group(1) for line in lines for m in _EXPLICIT.finditer(line)}
    both = set()
    for line in lines:
        m = _HEADING.match(line)
        if m:
            text = heading_text(m.group(2))
            if github_id(text) == jupyterlab_id(text):
                both.add(text)
    return explicit | both


def links(path: Path) -> list[str]:
    """The relative link targets in a document's prose (not in code)."""
    found = []
    for line in prose_lines(markdown_of(path)):
        for m in _LINK.finditer(_INLINE_CODE.sub("", line)):
            target = m.group(1)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                found.append(target)
    return found


def broken(path: Path) -> list[str]:
    problems = []
    for target in links(path):
        name, _, fragment = target.partition("#")
        dest = (path.parent / name).resolve() if name else path
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif dest.is_dir():
            problems.append(f"{target}: a folder (JupyterLab opens only files): link its README.md")
        elif fragment and fragment not in anchors(dest):
            problems.append(f"{target}: no anchor '{fragment}' that GitHub and JupyterLab both know "
                            f"(put <a id=\"{fragment}\"></a> before the heading)")
    return problems


def test_there_are_links_to_check():
    assert sum(len(links(p)) for p in documents()) > 50
    assert any("#" in t for t in links(REPO / "chapters" / "01-processes.md"))


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_on_github_and_in_jupyterlab(path: Path):
    assert broken(path) == []


def test_the_check_sees_a_lowercase_fragment_jupyterlab_cannot_follow(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[go](#try-it) [folder](.) [code](#pivot_root)\n\n"
                    "## Try it\n\n## pivot_root\n")
    assert [p.split(":")[0] for p in broken(page)] == ["#try-it", "."]
    page.write_text(page.read_text().replace("## Try it", '<a id="try-it"></a>\n\n## Try it'))
    assert [p.split(":")[0] for p in broken(page)] == ["."]
