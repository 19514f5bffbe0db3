"""Model solution of exercise 02's extension, `--tmpfs` (instructors only: see
exercises/INSTRUCTORS.md). Appended to mini_runtime/rootfs.py by exercises.parts.model_source."""

from __future__ import annotations

import os

#: mount(2) flags by their option names (the rest goes to tmpfs as data).
TMPFS_FLAGS = {"ro": (syscalls.MS_RDONLY, True), "rw": (syscalls.MS_RDONLY, False),
               "nosuid": (syscalls.MS_NOSUID, True), "suid": (syscalls.MS_NOSUID, False),
               "nodev": (syscalls.MS_NODEV, True), "dev": (syscalls.MS_NODEV, False),
               "noexec": (syscalls.MS_NOEXEC, True), "exec": (syscalls.MS_NOEXEC, False)}
#: What tmpfs itself takes (moby's ParseTmpfsOptions).
TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


def parse_tmpfs(value: str) -> tuple[str, int, str]:
    """docker's --tmpfs: noexec,nosuid,nodev first, then the user's options (a later one wins)."""
    path, _, options = value.partition(":")
    if not path.startswith("/"):
        raise ValueError(f"invalid mount path: '{path}' mount path must be absolute")
    flags, data = 0, {}
    for option in ["noexec", "nosuid", "nodev", *filter(None, options.split(","))]:
        key, _, setting = option.partition("=")
        if key in TMPFS_FLAGS:
            bit, on = TMPFS_FLAGS[key]
            flags = flags | bit if on else flags & ~bit
        elif key in TMPFS_DATA:
            data[key] = setting
        else:
            raise ValueError(f'Invalid tmpfs option ["{key}"]')
    return os.path.normpath(path), flags, ",".join(f"{k}={v}" for k, v in data.items())


def mount_tmpfs(path: str, flags: int, data: str) -> None:
    """After pivot_root: the mount point is made in the container's files, then mounted over."""
    os.makedirs(path, exist_ok=True)
    syscalls.mount("tmpfs", path, "tmpfs", flags, data or None)
