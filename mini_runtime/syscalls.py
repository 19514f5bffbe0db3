"""The one place where mini_runtime talks to libc directly.

Python's `os` module covers fork, exec, wait, kill and pipes, and the runtime uses it for them.
The container syscalls (mount, unshare, pivot_root, setns, ...) are not all in `os` for the
Python versions we support, so they are here, through ctypes. Every wrapper raises `OSError`
with the real errno and the path it was given, so an error reads like the man page:

    OSError: [Errno 22] Invalid argument: 'pivot_root' ('/new', '/new/old')
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

def _load_libc() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)     # glibc: no search needed
    except OSError:
        from ctypes import util                              # musl and others (runs ldconfig)
        return ctypes.CDLL(util.find_library("c"), use_errno=True)


_libc = _load_libc()

# mount(2) flags, from <sys/mount.h>.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

# umount2(2) flags.
MNT_DETACH = 0x2

# clone(2)/unshare(2) namespace flags, from <sched.h>.
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15

# System call numbers, for calls glibc 2.36 has no wrapper for (pivot_root) or whose wrapper
# refuses what we need (sigaction: signals 32 and 33).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "riscv64": 41}
_SYS_RT_SIGACTION = {"x86_64": 13, "aarch64": 134, "armv7l": 174, "riscv64": 134}
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "armv7l": 437, "riscv64": 437}  # (one number: 5.6's)
_SYS_OPEN_TREE = {"x86_64": 428, "aarch64": 428, "armv7l": 428, "riscv64": 428}  # (5.2's, one number)
_SYS_MOVE_MOUNT = {"x86_64": 429, "aarch64": 429, "armv7l": 429, "riscv64": 429}

# open_tree(2) and move_mount(2) flags, from <linux/mount.h>.
OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x04

# openat2(2)'s `resolve` flags, from <linux/openat2.h>.
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02      # no /proc/PID/fd/N or /proc/PID/root: they jump anywhere
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10            # dir_fd is "/" for this lookup: "..", "/x" and symlinks stay in it


def _check(result: int, what: str, *args: object) -> int:
    """Turn libc's `-1 and errno` into OSError(errno, strerror, what-and-args)."""
    if result == -1:
        err = ctypes.get_errno()
        detail = f"{what} {args!r}" if args else what
        raise OSError(err, os.strerror(err), detail)
    return result


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2): attach a filesystem (or change the propagation/flags of a mount)."""
    _check(_libc.mount(_bytes(source), _bytes(target), _bytes(fstype),
                       ctypes.c_ulong(flags), _bytes(data)),
           "mount", source, target, fstype)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2): detach a mount; MNT_DETACH makes it lazy (gone once unused)."""
    _check(_libc.umount2(_bytes(target), ctypes.c_int(flags)), "umount2", target)


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces (the caller must be single-threaded)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace that `fd` (an open /proc/PID/ns/* file) refers to; or, with a
    pidfd (Linux 5.8), every namespace of that process that `nstype`'s CLONE_NEW* flags name,
    all at once."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", fd)


def pidfd_open(pid: int) -> int:
    """pidfd_open(2) (Linux 5.3): an fd for this process and no other. Its pid may be given to a
    new process once it has died; the pidfd still means the old one (signals and setns through
    it fail with ESRCH). Close-on-exec."""
    return os.pidfd_open(pid)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2): kill(2) through a pidfd; signal 0 asks "is it still alive?"."""
    signal.pidfd_send_signal(pidfd, sig)


def _syscall_number(table: dict[str, int], name: str) -> int:
    machine = os.uname().machine  # (what platform.machine() returns, without importing platform)
    if machine not in table:
        raise OSError(38, os.strerror(38), f"{name}: unknown syscall number on {machine}")
    return table[machine]


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make `new_root` the root of this mount namespace, old root at `put_old`."""
    number = _syscall_number(_SYS_PIVOT_ROOT, "pivot_root")
    _check(_libc.syscall(ctypes.c_long(number), _bytes(new_root), _bytes(put_old)),
           "pivot_root", new_root, put_old)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2) (Linux 5.6): openat with rules for the whole lookup. RESOLVE_IN_ROOT makes the
    kernel treat `dir_fd` as the root while it walks `path`: an absolute symlink, "..", "/etc"
    all end inside it, checked at each step of the walk itself, so no later swap of a
    component can redirect it (what a path checked first and opened afterwards cannot promise).
    Python's os has no openat2 (3.11); O_CLOEXEC is added."""
    number = _syscall_number(_SYS_OPENAT2, "openat2")
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(ctypes.c_long(number), ctypes.c_int(dir_fd), _bytes(path),
                                ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))),
                  "openat2", path)


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | AT_RECURSIVE) -> int:
    """open_tree(2) (Linux 5.2): with OPEN_TREE_CLONE, a copy of the mount at `path`, attached
    nowhere, held by the fd it returns (close-on-exec). Unlike a path, it outlives a
    pivot_root: move_mount(2) can attach it inside the new root afterwards."""
    number = _syscall_number(_SYS_OPEN_TREE, "open_tree")
    return _check(_libc.syscall(ctypes.c_long(number), ctypes.c_int(-100), _bytes(path),  # AT_FDCWD
                                ctypes.c_uint(flags | os.O_CLOEXEC)), "open_tree", path)


def move_mount(fd: int, target: str) -> None:
    """move_mount(2): attach the mount held by `fd` (open_tree's) at `target`."""
    number = _syscall_number(_SYS_MOVE_MOUNT, "move_mount")
    _check(_libc.syscall(ctypes.c_long(number), ctypes.c_int(fd), b"", ctypes.c_int(-100),
                         _bytes(target), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), "move_mount", target)


def set_disposition(sig: int, ignore: bool) -> None:
    """rt_sigaction(2) to SIG_DFL (or SIG_IGN) for any signal, through the raw system call: the
    C library's sigaction (and so Python's signal module) refuses the two it keeps for itself,
    32 and 33, yet a parent that ignored them (GNU make does) passes that on across execve."""
    number = _syscall_number(_SYS_RT_SIGACTION, "rt_sigaction")
    action = (ctypes.c_ulong * 4)(int(ignore))  # the kernel's struct: handler (SIG_DFL 0, SIG_IGN 1),
                                                # then zero flags, restorer and mask
    _check(_libc.syscall(ctypes.c_long(number), ctypes.c_int(sig), action, None, ctypes.c_size_t(8)),
           "rt_sigaction", sig)


def sethostname(name: str) -> None:
    """sethostname(2): set the hostname of the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", name)


def prctl(option: int, arg2: int = 0) -> int:
    """prctl(2) with one argument, e.g. PR_SET_PDEATHSIG."""
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(0),
                              ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl", option)


def set_command_line(args: list[str]) -> None:
    """What `ps` shows of this process: argv[0]'s base name as its comm (PR_SET_NAME), and `args`
    as its /proc/self/cmdline, which the kernel reads from the memory where execve(2) put argv:
    written over in place, cut to that length. (prctl's PR_SET_MM could point the kernel at new
    memory, but needs CAP_SYS_RESOURCE.) Where that memory is not what cmdline shows, untouched."""
    name = ctypes.create_string_buffer(os.path.basename(args[0]).encode()[:15])
    prctl(PR_SET_NAME, ctypes.addressof(name))
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()       # (after comm, which may hold spaces)
    with open("/proc/self/cmdline", "rb") as f:
        shown = f.read()
    start, end = int(fields[45]), int(fields[46])           # arg_start, arg_end: fields 48, 49
    if end <= start or ctypes.string_at(start, end - start) != shown:
        return
    text = "\0".join(args).encode()[:end - start - 1]
    ctypes.memmove(start, text.ljust(end - start, b"\0"), end - start)


def close_other_fds(keep: tuple[int, ...] = (0, 1, 2)) -> None:
    """Close every fd not in `keep`: nothing of the runtime's may leak into a container.
    os.closerange is close_range(2) (Linux 5.9): one call per gap between the kept fds, and no
    need of /proc, which a new mount namespace may not have yet."""
    low = 0
    for fd in sorted(set(keep)) + [os.sysconf("SC_OPEN_MAX")]:
        if fd > low:
            os.closerange(low, fd)
        low = max(low, fd + 1)


def signal_forwarder(pid: int) -> Callable[[int, object], None]:
    """A signal handler that passes each signal on to `pid` with kill(2). A process that has just
    ended is no error: whoever waits for it learns how it ended."""
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    return forward
