"""Chapter 05: the image's `User` (or `-u`), looked up where it means something: inside.

"nobody" is a name in the *container's* /etc/passwd, which may differ from the host's, so the
lookup runs in the child after pivot_root, right before the command starts. docker's forms:
NAME, UID, NAME:GROUP, UID:GID. The supplementary groups come from the container's /etc/group.
"""

from __future__ import annotations

import os
import signal
import stat

from mini_runtime import syscalls
from mini_runtime.errors import reason

#: runc reads these files with Go's bufio.Scanner: a line of more than 64 KiB is an error.
MAX_LINE = 64 << 10
#: And mini reads at most this much of each: a distribution's are a few KiB.
MAX_FILE = 16 << 20


def _entries(path: str) -> list[list[str]]:
    """The colon-separated entries of the container's /etc/passwd or /etc/group; none if it
    is missing. The image is a stranger's: a symlink to /dev/zero, a FIFO or a huge file must
    be an error, not a read that never ends (the image's symlinks resolve inside its root:
    we are past pivot_root). A device is not even opened: opening one can do things."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise LookupError(f"{path} is not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):    # (replaced since the stat)
            raise LookupError(f"{path} is not a regular file")
        data = f.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise LookupError(f"{path} is larger than {MAX_FILE >> 20} MiB")
    lines = data.split(b"\n")
    if any(len(line) > MAX_LINE for line in lines):
        raise LookupError(f"{path} has a line longer than {MAX_LINE >> 10} KiB")
    return [line.decode(errors="surrogateescape").split(":") for line in lines
            if line.strip() and not line.startswith(b"#")]


def _read(path: str, failure: str) -> list[list[str]]:
    try:
        return _entries(path)
    except (LookupError, OSError) as e:
        raise LookupError(f"{failure}: {reason(e)}") from None


#: runc's limit for a uid or gid written as a number.
MAX_ID = (1 << 31) - 1


def _plain(text: str) -> bool:
    """A number as /etc/passwd and -u write one: ASCII digits ("²".isdigit() is true too)."""
    return text.isascii() and text.isdigit()


def _number(text: str) -> int:
    if int(text) > MAX_ID:
        raise LookupError(f"uids and gids must be in range 0-{MAX_ID}")
    return int(text)


def _find(entries: list[list[str]], wanted: str) -> list[str] | None:
    """The first entry that `wanted` names: a number is an id, never a name (runc's rule)."""
    if _plain(wanted):
        return next((e for e in entries if int(e[2]) == int(wanted)), None)
    return next((e for e in entries if e[0] == wanted), None)


# >>> resolve-user
def resolve(spec: str) -> tuple[int, int, list[int]]:
    """(uid, gid, groups) for docker's -u value ("" is root), from /etc/passwd and /etc/group.
    As in docker, the groups hold the gid too."""
    user, _, group = spec.partition(":")
    user = user or "0"
    passwd = [e for e in _read("/etc/passwd", f"unable to find user {user}")
              if len(e) >= 4 and _plain(e[2]) and _plain(e[3])]
    match = _find(passwd, user)
    if match is None and not _plain(user):
        raise LookupError(f"unable to find user {user}: no matching entries in passwd file")
    uid = _number(user if match is None else match[2])
    gid = _number(match[3]) if match else 0
    if not group and match is None:
        return uid, gid, [gid]                      # a bare uid: no name to be a member of
    what = f"unable to find group {group}" if group else f"unable to find groups of user {user}"
    groups = [e for e in _read("/etc/group", what) if len(e) >= 3 and _plain(e[2])]
    if group:
        found = _find(groups, group)
        if found is None and not _plain(group):
            raise LookupError(f"{what}: no matching entries in group file")
        gid = _number(group if found is None else found[2])
        return uid, gid, [gid]
    member_of = {_number(e[2]) for e in groups if len(e) > 3 and match[0] in e[3].split(",")}
    return uid, gid, sorted(member_of | {gid})
# <<< resolve-user


def home(spec: str) -> str:
    """The home directory of -u's user, from the sixth field of its passwd entry; "/" for a
    uid that has none (runc's default), which is what $HOME becomes unless it is set."""
    user = spec.partition(":")[0] or "0"
    match = _find([e for e in _read("/etc/passwd", f"unable to find user {user}")
                   if len(e) >= 6 and _plain(e[2]) and _plain(e[3])], user)
    return match[5] if match and match[5] else "/"


def become(spec: str) -> str:
    """Take on that identity for good: groups first, the uid last (after it, no way back).
    Returns its home directory (read while we still may).

    Changing credentials clears the parent-death signal (prctl(2)): arm it again, or with
    `--init` (whose PID 1 never returns to process.py) the container would outlive a killed mini.
    """
    uid, gid, groups = resolve(spec)
    directory = home(spec)
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
    return directory
