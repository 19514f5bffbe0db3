"""Chapter 03 exercise: namespaces give the container its own view of the machine.
Your copy of `mini_runtime/namespaces.py`.

Fill in the functions below: the namespaces, the hostname, the loopback, the init, and
`children_in_new_pid_namespace()`, the order of steps that makes the container PID 1 and lets
mini go on afterwards. The grader plugs them into the reference runtime:

    parent:  with children_in_new_pid_namespace(): fork the container
    child:   enter_namespaces() → (chapter 02: mounts, pivot_root, /proc) → set_hostname(name)
             → bring_up_loopback() → with --init: fork, and init_loop(command_pid) as PID 1

    python -m exercises grade 03          (one check: --only 3.5)

The hints name the man page and the pitfall; the chapter explains each step. Chapter text:
chapters/03-namespaces.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
from typing import Iterator, NoReturn

from mini_runtime import syscalls

# Given (the same values as the reference): ioctl numbers, struct ifreq's layout, the signals
# an init passes on.
from mini_runtime.namespaces import IFF_UP, IFREQ, SIOCGIFFLAGS, SIOCSIFFLAGS, INIT_SIGNALS  # noqa: E402,F401


def new_pid_namespace() -> None:
    """In the parent, right before fork: the next child is PID 1 of a new PID namespace."""
    # TODO: man https://man7.org/linux/man-pages/man7/pid_namespaces.7.html and unshare(2)
    #   (CLONE_NEWPID); the call is in mini_runtime.syscalls.
    #   pitfall: unlike the other kinds, this one does not move the caller.
    #   why? Every other namespace is entered by the child itself. Why can't the child unshare
    #   its own PID namespace and be PID 1 in it?
    raise NotImplementedError("new_pid_namespace")


@contextlib.contextmanager
def children_in_new_pid_namespace() -> Iterator[None]:
    """The contract: the child mini forks inside the `with` is PID 1 of a new PID namespace;
    mini itself stays where it is; and after the block (however it ends) mini's children are
    born in mini's own PID namespace again, so that mini can still fork once that PID 1 has
    ended. Uses new_pid_namespace()."""
    # TODO: man https://man7.org/linux/man-pages/man2/setns.2.html (CLONE_NEWPID: what it
    #   changes, like unshare, is /proc/self/ns/pid_for_children) and pid_namespaces(7).
    #   pitfall: to go back to a namespace you must hold it (an fd of /proc/self/ns/...) from
    #   *before* you leave it.
    #   why? What does fork(2) say (ENOMEM) once the PID 1 of the namespace it would use is dead?
    raise NotImplementedError("children_in_new_pid_namespace")
    yield  # makes this a generator; remove nothing here, just replace the raise


def enter_namespaces(new_network: bool = True) -> None:
    """In the child: its own hostname (UTS), System V IPC objects and, if `new_network`, an empty
    network stack (chapter 07 passes False when the parent made one, or for the host's)."""
    # TODO: man https://man7.org/linux/man-pages/man7/namespaces.7.html and unshare(2).
    #   pitfall: one call can take several CLONE_* flags; the mount namespace is chapter 02's;
    #   the network stack is new only when asked (chapter 07's parent may have made one).
    #   why? These three must come before chapter 02's mounts. Which mount would show the
    #   host's network devices if CLONE_NEWNET came after it?
    raise NotImplementedError("enter_namespaces")


def set_hostname(name: str) -> None:
    """Name the container's UTS namespace."""
    # TODO: man https://man7.org/linux/man-pages/man2/sethostname.2.html
    #   why? What would this call do to the host if enter_namespaces() had not run?
    raise NotImplementedError("set_hostname")


def bring_up_loopback() -> None:
    """Bring `lo` up in the container's new, empty network namespace."""
    # TODO: man https://man7.org/linux/man-pages/man7/netdevice.7.html (SIOCGIFFLAGS,
    #   SIOCSIFFLAGS: ioctls on any socket, with a struct ifreq; IFREQ is its layout for
    #   struct.pack) and Python's fcntl.ioctl.
    #   pitfall: write back the flags you read, with IFF_UP added: not IFF_UP alone.
    #   why? A new network namespace has a loopback device, but it is down. What breaks in a
    #   container whose lo is down, even one that never talks to the network?
    raise NotImplementedError("bring_up_loopback")


def init_loop(child: int) -> NoReturn:
    """`--init`: as PID 1, pass signals to `child`, reap every child, and exit with `child`'s
    code (128 + N if it died of signal N) when it ends. It never returns."""
    # TODO: man https://man7.org/linux/man-pages/man2/waitpid.2.html, and "The namespace init
    #   process" in https://man7.org/linux/man-pages/man7/pid_namespaces.7.html.
    #   pitfall: the runtime blocked INIT_SIGNALS before the fork so that none is lost; they
    #   stay blocked until you unblock them (after your handlers are in place).
    #   pitfall: this process still holds the error pipe (and mini's other fds): until it lets
    #   go of it, mini cannot see the command's execve (syscalls has a helper).
    #   why? Why does `kill -TERM` do nothing to a `sleep` that is PID 1, and what happens to
    #   orphans when PID 1 never calls wait?
    raise NotImplementedError("init_loop")


def predicted_errnos() -> dict[str, int]:
    """Why? Three mistakes the kernel refuses. Predict its errno for each (errno.E...); check 3.7
    makes each mistake for real and compares."""
    # TODO: return {"fork_after_pid1_died": ..., "unshare_pid_twice": ..., "hostname_too_long": ...}
    #   fork_after_pid1_died: unshare(CLONE_NEWPID), fork a child (PID 1 there) that exits and
    #       is reaped, then fork again.
    #   unshare_pid_twice: unshare(CLONE_NEWPID) twice in a row, with no fork in between.
    #   hostname_too_long: sethostname(2) with 65 bytes.
    #   man: pid_namespaces(7), unshare(2), sethostname(2) (ERRORS). Try them in a child of
    #   your own (os.fork()), never in a process you care about.
    raise NotImplementedError("predicted_errnos")


# --- the extension (15 of the 25 points): --uptime-offset, which the reference lacks ----------
# `mini run --uptime-offset SECONDS` calls enter_time_namespace in the container's process,
# after enter_namespaces() and before its command starts (with --init: before the fork). An
# exception there ends the run with `mini: container setup failed: ...` and exit 125. The
# README's "Extend" section is the specification.

def enter_time_namespace(uptime_offset: int) -> None:
    """In the child, before its command starts: the command's uptime is shifted by
    `uptime_offset` seconds (a time namespace, time_namespaces(7))."""
    # TODO: man https://man7.org/linux/man-pages/man7/time_namespaces.7.html (CLONE_NEWTIME is
    #   in mini_runtime.syscalls) and the /proc/PID/timens_offsets file it describes.
    #   pitfall: like CLONE_NEWPID, the new namespace is for children (and for us at execve);
    #   and its offsets can be written only until the first process has entered it.
    #   why? What does the kernel answer to an offset that would make the uptime negative?
    raise NotImplementedError("enter_time_namespace")
