"""A container's place on disk: `$MINI_ROOT/containers/<64-hex id>/`.

Chapter 02 needs just this much: a fresh id, a directory that holds the container's own copy of
the image's files, and cleanup, even after a `mini` that was killed before it could clean up
itself. Chapter 07 grows this into container records (`ps`, `inspect`, `start`, `rm`).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from mini_runtime import paths


def new_id() -> str:
    """Docker's form: 64 lowercase hex digits (shown shortened to 12)."""
    return secrets.token_hex(32)


def containers_dir() -> Path:
    return paths.state_root() / "containers"


def create(container_id: str) -> Path:
    """Make the container's directory and record its owner as "pid starttime"."""
    directory = containers_dir() / container_id
    directory.mkdir(parents=True)
    (directory / "owner").write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    return directory


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def sweep_stale() -> None:
    """Remove container directories whose `mini` is gone (killed before its cleanup).

    The start time tells a live owner from a new process that got the same pid.
    """
    from mini_runtime import cgroups  # chapter 04: the cgroups a killed mini left

    cgroups.sweep_empty()
    base = containers_dir()
    if not base.is_dir():
        return
    for directory in base.iterdir():
        try:
            pid, started = (directory / "owner").read_text().split()
        except (OSError, ValueError):
            continue  # being created right now, or not ours
        if start_time(int(pid)) != started:
            cgroups.Cgroup(directory.name).remove()
            remove(directory)


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
    None when the process is gone, or dead and not yet reaped (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]
