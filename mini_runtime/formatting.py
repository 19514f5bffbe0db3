"""Docker's output formats: aligned tables, "2 days ago", "4.26MB".

They come from Go libraries the docker CLI uses (text/tabwriter, github.com/docker/go-units);
matching them lets scripts written for docker's output read ours.
"""

from __future__ import annotations


def table(rows: list[list[str]]) -> str:
    """Columns as docker aligns them: tabwriter(minwidth=10, padding=3); last column unpadded."""
    if not rows:
        return ""
    widths = [max(10, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
    lines = ["".join(cell.ljust(w) for cell, w in zip(row, widths)) + row[-1] for row in rows]
    return "\n".join(lines) + "\n"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 weeks", ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, three significant digits ("4.26MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"
