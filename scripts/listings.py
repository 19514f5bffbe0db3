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
import re
import sys
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


def listings(text: str) -> list[re.Match[str]]:
    return list(_LISTING.finditer(text))


def problems(chapter: Path) -> list[str]:
    text = chapter.read_text()
    found = []
    for m in listings(text):
        try:
            want = region(REPO / m["path"], m["name"])
        except (KeyError, OSError) as e:
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
                       f"{region(REPO / m['path'], m['name'])}```\n", text)
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
            if update(chapter):
                print(f"updated {chapter.relative_to(REPO)}")
        return 0
    found = [p for chapter in chapters for p in problems(chapter)]
    print("\n".join(found) if found else f"{len(chapters)} chapters: every listing matches its source")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
