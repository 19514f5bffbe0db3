"""Chapter 03 exercise: namespaces give the container its own view of the machine.
Your copy of `mini_runtime/namespaces.py`.

Fill in the five functions below. The grader plugs them into the reference runtime:

    parent:  new_pid_namespace() right before it forks the container
    child:   enter_namespaces() → (chapter 02: mounts, pivot_root) → set_hostname(name)
             → bring_up_loopback() → with --init: fork, and init_loop(command_pid) as PID 1

    python -m exercises grade 03          (one check: --only 3.5)

Every TODO has a hint, the man page to read, and a "why?". Chapter text: chapters/03-namespaces.md.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
from typing import NoReturn

from mini_runtime import syscalls

# Given (the same values as the reference): ioctl numbers, struct ifreq's layout, the signals
# an init passes on.
from mini_runtime.namespaces import IFF_UP, IFREQ, SIOCGIFFLAGS, SIOCSIFFLAGS, INIT_SIGNALS  # noqa: E402,F401


def new_pid_namespace() -> None:
    """In the parent, right before fork: the next child is PID 1 of a new PID namespace."""
    # TODO: syscalls.unshare(syscalls.CLONE_NEWPID)
    #   man: https://man7.org/linux/man-pages/man7/pid_namespaces.7.html
    #   why? Every other namespace is entered by the child itself. Why can't the child unshare
    #   its own PID namespace and be PID 1 in it? (Read what unshare(2) says for CLONE_NEWPID.)
    raise NotImplementedError("new_pid_namespace")


def enter_namespaces() -> None:
    """In the child: its own hostname (UTS), System V IPC objects and network stack."""
    # TODO: one syscalls.unshare() with CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET
    #   man: https://man7.org/linux/man-pages/man7/namespaces.7.html
    #   why? These three must come before chapter 02's mounts. Which mount would show the
    #   host's network devices if CLONE_NEWNET came after it?
    raise NotImplementedError("enter_namespaces")


def set_hostname(name: str) -> None:
    """Name the container's UTS namespace."""
    # TODO: syscalls.sethostname(name)
    #   man: https://man7.org/linux/man-pages/man2/sethostname.2.html
    #   why? What would this call do to the host if enter_namespaces() had not run?
    raise NotImplementedError("set_hostname")


def bring_up_loopback() -> None:
    """Bring `lo` up in the container's new, empty network namespace."""
    # TODO: with an AF_INET/SOCK_DGRAM socket s: build a struct ifreq for "lo" with
    #   struct.pack(IFREQ, b"lo", 0); read the flags with fcntl.ioctl(s, SIOCGIFFLAGS, req)
    #   (unpack the same format, the flags are field 1); write them back with IFF_UP set,
    #   using SIOCSIFFLAGS. (`ip link set lo up` does the same through netlink.)
    #   man: https://man7.org/linux/man-pages/man7/netdevice.7.html (SIOCGIFFLAGS)
    #   why? A new network namespace has a loopback device, but it is down. What breaks in a
    #   container whose lo is down, even one that never talks to the network?
    raise NotImplementedError("bring_up_loopback")


def init_loop(child: int) -> NoReturn:
    """`--init`: as PID 1, pass signals to `child`, reap every child, and exit with `child`'s
    code (128 + N if it died of signal N) when it ends."""
    # TODO: 1. syscalls.close_other_fds(): the error pipe must close here, so that its EOF
    #   comes from the command's execve; 2. install a handler that os.kill(child, signum)
    #   for each of INIT_SIGNALS, then unblock them: the runtime blocked them before the fork
    #   so that none is lost (signal.pthread_sigmask(signal.SIG_UNBLOCK, INIT_SIGNALS)); 3. loop on
    #   os.waitpid(-1, 0): every dead child is reaped; when the pid is `child`, os._exit with
    #   its exit code. (ChildProcessError means no children are left: os._exit(0).)
    #   man: https://man7.org/linux/man-pages/man2/waitpid.2.html, and "The namespace init
    #   process" in https://man7.org/linux/man-pages/man7/pid_namespaces.7.html
    #   why? Why does `kill -TERM` do nothing to a `sleep` that is PID 1, and what happens to
    #   orphans when PID 1 never calls wait?
    raise NotImplementedError("init_loop")


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
