"""Chapter 05: the image's `User` (or `-u`), looked up where it means something: inside.

"nobody" is a name in the *container's* /etc/passwd, which may differ from the host's, so the
lookup runs in the child after pivot_root, right before the command starts. docker's forms:
NAME, UID, NAME:GROUP, UID:GID. The supplementary groups come from the container's /etc/group.
"""

from __future__ import annotations

import os
import signal

from mini_runtime import syscalls


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


#: runc's limit for a uid or gid written as a number.
MAX_ID = (1 << 31) - 1


def _plain(text: str) -> bool:
    """A number as /etc/passwd and -u write one: ASCII digits ("²".isdigit() is true too)."""
    return text.isascii() and text.isdigit()


def _number(text: str) -> int:
    if int(text) > MAX_ID:
        raise LookupError(f"uids and gids must be in range 0-{MAX_ID}")
    return int(text)


# >>> resolve-user
def resolve(spec: str) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary gids) for docker's -u value, from /etc/passwd and /etc/group."""
    user, _, group = spec.partition(":")
    passwd = [e for e in _entries("/etc/passwd") if len(e) >= 4 and _plain(e[2]) and _plain(e[3])]
    match = next((e for e in passwd if e[0] == user or (_plain(user) and e[2] == user)), None)
    if match is None and not _plain(user):
        raise LookupError(f"unable to find user {user}: no matching entries in passwd file")
    uid = _number(user if match is None else match[2])
    gid = _number(match[3]) if match else 0
    groups = [e for e in _entries("/etc/group") if len(e) >= 3 and _plain(e[2])]
    if group:
        found = next((e for e in groups if e[0] == group or (_plain(group) and e[2] == group)), None)
        if found is None and not _plain(group):
            raise LookupError(f"unable to find group {group}: no matching entries in group file")
        return uid, _number(group if found is None else found[2]), []
    name = match[0] if match else None
    extra = sorted({_number(e[2]) for e in groups if name and len(e) > 3 and name in e[3].split(",")} - {gid})
    return uid, gid, extra
# <<< resolve-user


def become(spec: str) -> None:
    """Take on that identity for good: groups first, the uid last (after it, no way back).

    Changing credentials clears the parent-death signal (prctl(2)): arm it again, or with
    `--init` (whose PID 1 never returns to process.py) the container would outlive a killed mini.
    """
    uid, gid, extra = resolve(spec)
    os.setgroups(extra)
    os.setgid(gid)
    os.setuid(uid)
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
