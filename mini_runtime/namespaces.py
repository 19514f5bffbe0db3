"""Chapter 03: namespaces give the container its own view of the machine.

A namespace wraps one kind of global resource so that the processes inside see their own
instance of it: their own hostname (UTS), process numbers (PID), System V IPC objects (IPC),
network stack (net) and mount table (mnt, from chapter 02). `readlink /proc/self/ns/uts`
names the instance a process is in; two processes share a namespace when the links match.

The order matters, and the PID namespace is the odd one out: unshare(CLONE_NEWPID) does not
move the caller. It decides where the caller's *next child* will live, and that child becomes
PID 1 there. So the parent asks for it right before it forks the container, and everything
else is unshared by the child itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
from collections.abc import Iterator

from mini_runtime import syscalls
from mini_runtime.errors import Exercise

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import NoReturn

#: The namespaces a container gets, as /proc/PID/ns names them.
KINDS = ("mnt", "uts", "ipc", "pid", "net")

SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq: a 16-byte name, then a union (flags first) of 24 bytes

#: The signals an init passes on to the command.
INIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


# >>> new-pid-namespace
def new_pid_namespace() -> None:
    """In the parent, right before fork: the next child is PID 1 of a new PID namespace."""
    syscalls.unshare(syscalls.CLONE_NEWPID)
# <<< new-pid-namespace


@contextlib.contextmanager
def children_in_new_pid_namespace() -> Iterator[None]:
    """The child forked inside the `with` is PID 1 of a new PID namespace; afterwards mini's
    own children are born in mini's namespace again (setns back), so mini can still fork
    once that PID 1 has ended (a dead namespace accepts no new processes: ENOMEM)."""
    home = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        new_pid_namespace()
        yield
    finally:
        syscalls.setns(home, syscalls.CLONE_NEWPID)
        os.close(home)


# >>> join-pid-namespace
@contextlib.contextmanager
def children_in_pid_namespace(path: str) -> Iterator[None]:
    """`--pid host|container:NAME`: the child forked inside the `with` is born in the PID
    namespace at `path` (/proc/PID/ns/pid), as one more process of it, not its PID 1. setns(2)
    with a PID namespace moves no one, like unshare: it decides where the next child lives."""
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        there = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(there, syscalls.CLONE_NEWPID)
        finally:
            os.close(there)
        yield
    finally:
        syscalls.setns(own, syscalls.CLONE_NEWPID)
        os.close(own)
# <<< join-pid-namespace


# >>> enter-namespaces
def enter_namespaces(new_network: bool = True) -> None:
    """In the child: its own hostname, IPC objects and (unless told otherwise) an empty network
    stack. The mount namespace is made by chapter 02's make_mounts_private. Chapter 07 passes
    `new_network=False` when the parent has made and wired the network namespace already (the
    child joins it next) or the container shares the host's (`--network host`)."""
    flags = syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
    syscalls.unshare(flags | syscalls.CLONE_NEWNET if new_network else flags)
# <<< enter-namespaces


# >>> mount-mqueue
def mount_mqueue() -> None:
    """In the child, in its new root (after chapter 02's /dev): the POSIX message queues of its
    IPC namespace, at /dev/mqueue as in docker. The kernel shows a mount of mqueue the queues of
    the IPC namespace of whoever mounts it, so the container sees its own, never the host's. A
    kernel built without them (no CONFIG_POSIX_MQUEUE) has none to show: no mount then."""
    os.mkdir("/dev/mqueue")
    try:
        syscalls.mount("mqueue", "/dev/mqueue", "mqueue",
                       syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV)
    except OSError as e:
        if e.errno != errno.ENODEV:
            raise
        os.rmdir("/dev/mqueue")
# <<< mount-mqueue


def unmount_shm() -> None:
    """`--ipc none`, in the child's new root: no /dev/shm at all (docker's words: "own private
    IPC namespace, with /dev/shm not mounted"), so POSIX shared memory has nowhere to live."""
    syscalls.umount2("/dev/shm")
    os.rmdir("/dev/shm")


# >>> enter-cgroup-namespace
def enter_cgroup_namespace() -> None:
    """Chapter 04: the cgroup the child is in (it joined before "go") becomes the root of what it
    sees: /proc/self/cgroup says `0::/`, and a cgroup2 mounted inside shows its own subtree."""
    syscalls.unshare(syscalls.CLONE_NEWCGROUP)
# <<< enter-cgroup-namespace


# >>> set-hostname
def set_hostname(name: str) -> None:
    """Name the container's UTS namespace; the host's hostname does not change."""
    syscalls.sethostname(name)
# <<< set-hostname


# >>> bring-up-loopback
def bring_up_loopback() -> None:
    """A new network namespace has one device, `lo`, and it is down: bring it up, so that
    127.0.0.1 works inside (docker's `--network none` does the same)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))
# <<< bring-up-loopback


def namespace_ids(pid: int) -> dict[str, int]:
    """The inode of each of the process's namespaces: equal numbers, same namespace."""
    return {kind: os.stat(f"/proc/{pid}/ns/{kind}").st_ino for kind in KINDS}


# >>> init-loop
def init_loop(child: int) -> NoReturn:
    """`--init`: what PID 1 owes its namespace, while the command runs as its child.

    PID 1 is special in two ways. Orphans are re-parented to it, and if it never waits for
    them they stay zombies. And the kernel does not deliver a signal to PID 1 unless PID 1
    has a handler for it: a plain `sleep` as PID 1 shrugs off SIGTERM. This loop handles
    every signal it can and passes it on to the command, reaps every child, and exits with
    the command's status when the command ends.
    """
    syscalls.close_other_fds()  # the error pipe too: its EOF must come from the command's execve

    forward = syscalls.signal_forwarder(child)
    for sig in INIT_SIGNALS:
        signal.signal(sig, forward)
    # They were blocked before the fork (see runtime.inside): none was lost in between.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INIT_SIGNALS)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)  # -S when killed by signal S
            os._exit(code if code >= 0 else 128 - code)
# <<< init-loop


def predicted_errnos() -> dict[str, int]:
    """The chapter's "why?" questions answered as data (exercise 03 checks them against the
    kernel): which errno fork(2), unshare(2) and sethostname(2) give for three mistakes."""
    return {"fork_after_pid1_died": errno.ENOMEM,  # a namespace whose init is gone takes no one
            "unshare_pid_twice": errno.EINVAL,     # pid_for_children is already a new one
            "hostname_too_long": errno.EINVAL}     # HOST_NAME_MAX is 64


# Exercise 03's extension, `--uptime-offset`: the plumbing only. The runtime calls this; the
# exercise (exercises/03_namespaces/README.md) writes it, and the grader plugs it in.
def enter_time_namespace(uptime_offset: int) -> None:
    """In the child, before its command starts: the command's uptime is shifted by
    `uptime_offset` seconds (a time namespace, time_namespaces(7))."""
    raise Exercise("--uptime-offset", "03_namespaces")
