"""A named network namespace: made by the parent, joined by the container and by `exec`.

A network namespace lives as long as something holds it: a process in it, an open fd, or a bind
mount of its /proc/PID/ns/net file. `ip netns add` keeps it with a bind mount under /run/netns;
we do the same under `$MINI_RUN/netns/<name>`. Made *before* the child starts, the namespace can
be wired (veth, address, route) while the child waits, joined by the child with setns(2), joined
again by `exec`, shared with `--network container:NAME`, and still be there for cleanup after
the container's last process has gone.

unshare(2) moves the *calling thread* into the new namespace, so it happens in a forked helper
that does nothing else: the helper unshares, bind-mounts its own namespace to the name, and
exits. The parent (perhaps a threaded daemon) never leaves its own network.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from mini_runtime import syscalls
from mini_runtime.errors import Conflict, System
from mini_runtime.paths import run_root


def directory() -> Path:
    """Where the namespaces' bind mounts live (volatile: a reboot ends every namespace)."""
    return run_root() / "netns"


def path(name: str) -> Path:
    return directory() / name


# >>> netns-create
def create(name: str, source: str | Path | None = None) -> Path:
    """A new, empty network namespace kept alive by a bind mount at `$MINI_RUN/netns/<name>`;
    with `source` (another container's namespace file, or /proc/PID/ns/net) that namespace
    instead, under a second name: `--network container:NAME`."""
    target = path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        raise Conflict(f"network namespace {name} exists already") from None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the helper: one job, then _exit
        os.close(read)
        code = 0
        try:
            if source is None:
                syscalls.unshare(syscalls.CLONE_NEWNET)
            syscalls.mount(str(source or "/proc/self/ns/net"), str(target), None, syscalls.MS_BIND)
        except BaseException as e:                   # noqa: BLE001 (a child never returns)
            os.write(write, struct.pack("i", getattr(e, "errno", None) or errno.EIO))
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        failure = pipe.read()
    os.waitpid(pid, 0)
    if failure:
        target.unlink(missing_ok=True)
        err = struct.unpack("i", failure)[0]
        raise System(f"cannot create network namespace {name}: {os.strerror(err)}")
    return target
# <<< netns-create


# >>> netns-join
def join(netns: str | Path) -> None:
    """setns(2) into the namespace at `netns` (the container's child before exec, or `exec`).
    Only the calling thread moves: call it in a single-threaded process about to exec."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, syscalls.CLONE_NEWNET)
    finally:
        os.close(fd)
# <<< netns-join


def remove(name: str) -> None:
    """Unmount and delete the name; the namespace ends once nothing else holds it. Idempotent."""
    target = path(name)
    try:
        syscalls.umount2(str(target), syscalls.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted (a half-made one) or gone
            raise
    target.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        target.parent.rmdir()                        # only when it was the last one


def exists(name: str) -> bool:
    """True when the name holds a network namespace (a mounted nsfs file, not a leftover)."""
    try:
        return os.stat(path(name)).st_dev != os.stat(directory()).st_dev
    except OSError:
        return False


def names() -> list[str]:
    try:
        return sorted(os.listdir(directory()))
    except FileNotFoundError:
        return []


def shared(name: str) -> bool:
    """Does another name hold the same namespace (`--network container:NAME`)?"""
    try:
        mine = os.stat(path(name))
    except OSError:
        return False
    for other in names():
        if other != name:
            with contextlib.suppress(OSError):
                theirs = os.stat(path(other))
                if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
                    return True
    return False


def identity(netns: str | Path) -> int:
    """The namespace's inode: equal numbers, same namespace (compare /proc/PID/ns/net)."""
    return os.stat(netns).st_ino


@contextlib.contextmanager
def entered(netns: str | Path) -> Iterator[None]:
    """Run a block with this thread in `netns`, then come back. Sockets made inside stay in
    `netns`; /proc/sys/net opened inside is the namespace's. setns(2) moves the calling thread
    only, so a daemon's other threads stay where they are; keep the block to opening things."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        join(netns)
        yield
    finally:
        syscalls.setns(home, syscalls.CLONE_NEWNET)
        os.close(home)
