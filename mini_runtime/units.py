"""Docker's units, both ways: byte sizes ("64m", "4.26MB"), durations ("2 minutes ago",
"Up 3 seconds") and timestamps (RFC 3339 with nanoseconds, as the Engine API writes them).

They come from Go libraries docker uses (github.com/docker/go-units, time.RFC3339Nano): matching
them lets scripts written for docker's output read ours.
"""

from __future__ import annotations

import calendar
import re
import time

from mini_runtime.errors import UsageError


# --- sizes -------------------------------------------------------------------------------------

def parse_bytes(text: str) -> int:
    """docker's RAMInBytes (go-units): "64m", "64MB", "64MiB", "64 m" -> 67108864; the units
    k, m, g, t, p are powers of 1024 whichever way they are spelled."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?", text.strip().lower())
    if not m:
        raise UsageError(f"invalid size: {text!r} (a number with an optional unit b, k, m, g, t or p)")
    return int(float(m[1]) * 1024 ** " kmgtp".index(m[2] or " "))


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, three significant digits ("4.26MB")."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


# --- durations ---------------------------------------------------------------------------------

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


def ago(stamp: str | None) -> str:
    """docker's CREATED column: "2 minutes ago" ("N/A" when the time is unknown)."""
    seconds = parse_rfc3339(stamp) if stamp else None
    return "N/A" if seconds is None else human_duration(time.time() - seconds) + " ago"


def up_for(started: str) -> str:
    """docker ps's STATUS of a running container: "Up 3 seconds"."""
    seconds = parse_rfc3339(started)
    return "Up " + human_duration(0 if seconds is None else time.time() - seconds)


# --- timestamps --------------------------------------------------------------------------------

def now_rfc3339() -> str:
    """Now, as Go's time.RFC3339Nano in UTC: "2024-05-01T12:00:00.123456789Z"."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def parse_rfc3339(stamp: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 time in UTC (fractions dropped); None if unreadable."""
    try:
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
