"""Docker's table layout and short ids, for the CLI (sizes, durations and times are in `units`).

It comes from the Go library the docker CLI uses (text/tabwriter): matching it lets scripts
written for docker's output read ours.
"""

from __future__ import annotations


def table(rows: list[list[str]]) -> str:
    """Columns as docker aligns them: tabwriter(minwidth=10, padding=3); last column unpadded."""
    if not rows:
        return ""
    widths = [max(10, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
    lines = ["".join(cell.ljust(w) for cell, w in zip(row, widths)) + row[-1] for row in rows]
    return "\n".join(lines) + "\n"


def short_id(image_id: str) -> str:
    """docker's 12-digit form of an id."""
    return image_id.removeprefix("sha256:")[:12]
