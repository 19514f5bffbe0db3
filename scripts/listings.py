#!/usr/bin/env python3
"""Chapter listings come from the tested source, so the book cannot drift from the code.

In a chapter, a listing is a marker comment followed by a fenced code block:

    <!-- listing: mini_runtime/process.py exit-code -->
    ```python
    ...exactly the lines between `# >>> exit-code` and `# <<< exit-code` in that file...
    ```

    scripts/listings.py --check    exit 1 and name every listing that differs from its source
    scripts/listings.py --update   rewrite the listings from the source (`make listings`)
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import textwrap
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_LISTING = re.compile(r"<!-- listing: (?P<path>\S+) (?P<name>[\w.-]+) -->\n```(?P<lang>\w*)\n"
                      r"(?P<body>.*?)^```\n", re.S | re.M)


def region(path: Path, name: str) -> str:
    """The lines between `# >>> name` and `# <<< name` (markers excluded)."""
    lines = path.read_text().splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == f"# >>> {name}"]
    ends = [i for i, line in enumerate(lines) if line.strip() == f"# <<< {name}"]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise KeyError(f"{path.relative_to(REPO)}: no single region '# >>> {name}' ... '# <<< {name}'")
    return "".join(lines[starts[0] + 1:ends[0]])


# ---- per-chapter listings ------------------------------------------------------------------
# A line of a listing may carry the chapters that added it, as a comment: `# 03: why` or
# `# 03 04: why`. Chapter N shows the code as of chapter N: a statement whose tags all name later
# chapters is left out, with its continuation lines; a `with` block so tagged gives up its header
# only (its body is dedented: the block ran before the wrapper existed); any other compound
# statement so tagged goes whole. An untagged `if` or `try` whose body is left empty goes too, and
# a `try` whose handlers are left with a bare `raise` only gives up its try/except lines. The
# result must still be Python. Untagged lines are the frame every chapter shares.
_TAGS = re.compile(r"#\s*(\d\d(?:\s+\d\d)*)(?::|\s|$)")


def chapter_number(chapter: Path) -> int | None:
    m = re.match(r"(\d\d)-", chapter.name)
    return int(m[1]) if m else None


def _tags_by_line(source: str) -> dict[int, set[int]]:
    tags: dict[int, set[int]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and (m := _TAGS.match(tok.string)):
            tags[tok.start[0]] = {int(n) for n in m[1].split()}
    return tags


def _blocks(node: ast.stmt) -> list[list[ast.stmt]]:
    found = [getattr(node, name) for name in ("body", "orelse", "finalbody") if getattr(node, name, None)]
    return found + [h.body for h in getattr(node, "handlers", [])]


def as_of(source: str, chapter: int) -> str:
    """`source` (a listing region) as chapter `chapter` shows it. ValueError (or SyntaxError)
    if what is left is not code: a block left empty, a line that cannot be dedented."""
    first = next((line for line in source.splitlines() if line.strip()), "")
    margin = first[:len(first) - len(first.lstrip())]
    if margin:                  # a method: filtered as if at the top, then put back
        shown = as_of(textwrap.dedent(source), chapter)
        return "".join(margin + line if line.strip() else line for line in shown.splitlines(keepends=True))
    tags = _tags_by_line(source)
    if not tags:
        return source
    lines = source.splitlines(keepends=True)
    dropped: set[int] = set()
    dedent: dict[int, int] = {}

    def header_end(node: ast.stmt) -> int:
        blocks = _blocks(node)
        return blocks[0][0].lineno - 1 if blocks else node.end_lineno

    def later(node: ast.stmt) -> bool:
        found = set().union(*(tags.get(n, set()) for n in range(node.lineno, header_end(node) + 1)))
        return bool(found) and min(found) > chapter

    def drop(node: ast.stmt) -> None:
        dropped.update(range(node.lineno, node.end_lineno + 1))

    def visit(body: list[ast.stmt]) -> bool:
        """Filter a block; True if something of it is left."""
        left = False
        for node in body:
            if later(node):
                if isinstance(node, ast.With):
                    dropped.update(range(node.lineno, header_end(node) + 1))
                    shift = node.body[0].col_offset - node.col_offset
                    for n in range(node.body[0].lineno, node.end_lineno + 1):
                        dedent[n] = dedent.get(n, 0) + shift
                    left = visit(node.body) or left
                else:
                    drop(node)
                continue
            blocks = _blocks(node)
            if not blocks:
                left = True
                continue
            kept = [visit(block) for block in blocks]
            if not kept[0] and isinstance(node, (ast.If, ast.Try, ast.For, ast.While)):
                drop(node)
                continue
            if isinstance(node, ast.Try) and not node.orelse and not node.finalbody and all(
                    [type(n) for n in h.body if n.lineno not in dropped] == [ast.Raise] and
                    next(n for n in h.body if n.lineno not in dropped).exc is None for h in node.handlers):
                # it only re-raises now: no try at all, its body one level out
                dropped.update(range(node.lineno, header_end(node) + 1))
                dropped.update(range(node.handlers[0].lineno, node.end_lineno + 1))
                shift = node.body[0].col_offset - node.col_offset
                for n in range(node.body[0].lineno, node.body[-1].end_lineno + 1):
                    dedent[n] = dedent.get(n, 0) + shift
            if not all(kept):
                raise ValueError(f"line {node.lineno}: a block of `{lines[node.lineno - 1].strip()}` is "
                                 f"left empty in chapter {chapter:02}: tag that statement too")
            left = True
        return left

    tree = ast.parse(source)
    visit(tree.body)
    out = []
    for n, line in enumerate(lines, 1):
        if n in dropped:
            continue
        cut = dedent.get(n, 0)
        if line[:cut].strip():
            raise ValueError(f"line {n}: cannot dedent {line.strip()!r}")
        out.append(line[cut:] if line.strip() else line)
    result = "".join(out)
    ast.parse(result)           # still Python (a SyntaxError names the listing)
    return result


def shown(chapter: Path, path: str, name: str) -> str:
    """The region as the chapter shows it: as of that chapter, if its name has a number."""
    code = region(REPO / path, name)
    number = chapter_number(chapter)
    return code if number is None or not path.endswith(".py") else as_of(code, number)


def listings(text: str) -> list[re.Match[str]]:
    return list(_LISTING.finditer(text))


def problems(chapter: Path) -> list[str]:
    text = chapter.read_text()
    found = []
    for m in listings(text):
        try:
            want = shown(chapter, m["path"], m["name"])
        except (KeyError, OSError, ValueError, SyntaxError) as e:
            found.append(f"{chapter.name}: listing {m['path']} {m['name']}: {e}")
            continue
        if m["body"] != want:
            found.append(f"{chapter.name}: listing {m['path']} {m['name']} differs from the source "
                         "(run `make listings`)")
    if text.count("<!-- listing:") != len(listings(text)):
        found.append(f"{chapter.name}: a '<!-- listing:' marker is not followed by a fenced code block")
    return found


def update(chapter: Path) -> bool:
    text = chapter.read_text()
    new = _LISTING.sub(lambda m: f"<!-- listing: {m['path']} {m['name']} -->\n```{m['lang']}\n"
                       f"{shown(chapter, m['path'], m['name'])}```\n", text)
    if new != text:
        chapter.write_text(new)
    return new != text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--update", action="store_true")
    args = parser.parse_args()
    chapters = sorted((REPO / "chapters").glob("*.md"))
    if args.update:
        for chapter in chapters:
            try:
                if update(chapter):
                    print(f"updated {chapter.relative_to(REPO)}")
            except (KeyError, ValueError, SyntaxError) as e:
                print(f"{chapter.name}: {e}", file=sys.stderr)
                return 1
        return 0
    found = [p for chapter in chapters for p in problems(chapter)]
    print("\n".join(found) if found else f"{len(chapters)} chapters: every listing matches its source")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
