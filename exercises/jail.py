"""Where learner code runs during a check: a jail the check's own process never enters.

The checker process (`exercises.sandbox`) decides the verdict and never imports learner code.
Every process that does (`mini` with the learner's functions plugged in, the learner server
that answers direct calls) starts in a jail made for that one check:

- a **PID namespace** whose PID 1 is a small holder process forked from the checker. Learner
  code cannot see or signal the checker or the grader (they have no PID in there), and
  everything it starts, even a daemon that called setsid(), dies when the holder is killed
  at the end of the check;
- a **mount namespace** of its own (a copy of the checker's, with a fresh /proc for that PID
  namespace) where every mount is read-only but the check's scratch, mini's state (tmpfs of
  the checker's), /proc, the cgroup tree and /dev/pts; /tmp, /var/tmp and /dev/shm are empty
  tmpfs of the jail's own (gone with it); and what a learner must not read is hidden under an
  empty read-only tmpfs (`HIDDEN`, the model solutions, the submissions folder of a batch run)
  or, for a file, /dev/null. What the checks need there (the checkout, Python, the scratch, the
  state roots) is bound back. A mount learner code makes there never reaches the checker.

The hostname, IPC and network namespaces stay the checker's, which has its own of each (the
network one with only `lo`, `exercises.sandbox`), so a check can see what learner code did to
them (a `sethostname` outside the container renames the checker's namespace).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from mini_runtime import syscalls

# Never shown to learner code: the machine's secrets and other people's files (a directory
# becomes an empty read-only tmpfs, a file /dev/null), besides the paths the grader adds (the
# model solutions, a batch run's submissions folder). What a check needs under them is bound back.
HIDDEN = ("/root", "/home", "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
          "/etc/ssh", "/run/netns", "/var/run/netns")
# Writable, but the jail's own: an empty tmpfs each, gone with the jail.
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")
# Mounts that stay writable besides the check's own directories: the kernel's interfaces the
# runtime writes to (a process's uid_map, a netns's ip_forward, a terminal).
KERNEL = ("/proc", "/dev/pts")
# Per-mount flags a read-only remount must keep (MS_BIND | MS_REMOUNT sets them all anew).
_KEPT_FLAGS = {"nosuid": syscalls.MS_NOSUID, "nodev": syscalls.MS_NODEV, "noexec": syscalls.MS_NOEXEC,
               "noatime": 0x400, "nodiratime": 0x800, "relatime": 1 << 21,
               "strictatime": syscalls.MS_STRICTATIME}


def read_only_paths(repo: Path) -> list[Path]:
    """What learner code must not change: the checkout (grader, checks, runtime), the Python
    that runs them (a `.pth` file dropped in site-packages would run in the next grader), and
    every other directory Python imports from."""
    import mini_runtime

    found: list[Path] = []
    for candidate in [repo, Path(mini_runtime.__file__).resolve().parent.parent,
                      Path(sys.prefix), Path(sys.base_prefix), *map(Path, sys.path)]:
        try:
            path = candidate.resolve()
        except OSError:
            continue
        if path.is_dir() and path != Path("/") and not any(path.is_relative_to(p) for p in found):
            found = [p for p in found if not p.is_relative_to(path)] + [path]
    return found


def for_check(scratch: Path, repo: Path, *, shared_root: bool, hide: tuple[str, ...]) -> "Jail":
    """The jail of a check: learner code sees the checkout and Python (read-only), and writes
    only to the check's scratch, mini's state roots and cgroups (the sandbox's own mounts)."""
    from mini_runtime import cgroups, paths

    writable = (str(scratch), str(paths.state_root()), str(paths.run_root()), str(cgroups.ROOT))
    files = [os.environ[name] for name in ("MINI_RESOLV_CONF", "MINI_BUSYBOX")
             if os.environ.get(name, "").startswith("/")]
    keep = (*map(str, read_only_paths(repo)), os.getcwd(), *files)
    return Jail(shared_root=shared_root, keep=keep, writable=writable, hide=hide)


def bind_read_only(path: Path) -> None:
    """A read-only view of `path` in this mount namespace (the files stay writable elsewhere)."""
    syscalls.mount(str(path), str(path), None, syscalls.MS_BIND | syscalls.MS_REC)
    syscalls.mount(None, str(path), None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY
                   | syscalls.MS_NOSUID)


class Jail:
    """The jail of one check (see the module docstring). Made by the checker, which must be
    single-threaded: it unshares its PID namespace for its children, so every process it
    forks from now on is in the jail's PID namespace."""

    def __init__(self, *, shared_root: bool = False, keep: tuple[str, ...] = (),
                 writable: tuple[str, ...] = (), hide: tuple[str, ...] = ()) -> None:
        """`keep`: paths learner code must see (the checkout, Python, the scratch ...);
        `writable`: the directories it may write to (each a mount of the checker's);
        `hide`: more paths it must not see (see HIDDEN)."""
        read, write = os.pipe()
        syscalls.unshare(syscalls.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:  # the holder, PID 1 of the jail: never returns
            os.close(read)
            _hold(write, shared_root, Confinement(keep, writable, hide))
        os.close(write)
        with os.fdopen(read, "rb") as f:
            answer = f.read().decode(errors="replace")
        if answer != "ready":
            _reap(pid)
            raise RuntimeError(f"the grader could not make a jail for your code: {answer or 'no answer'}")
        self.pid = pid  # in the checker's numbering
        self.mount_ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

    def enter(self, cwd: str) -> Callable[[], None]:
        """A Popen preexec_fn: join the jail's mount namespace, then go to `cwd` (setns moves
        the caller to the namespace's root)."""
        def preexec() -> None:
            syscalls.setns(self.mount_ns, syscalls.CLONE_NEWNS)
            os.chdir(cwd)
        return preexec

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start a process in the jail, in the checker's working directory, in a session of
        its own (a kill(0, ...) in learner code reaches no process of the checker's)."""
        return subprocess.Popen(argv, preexec_fn=self.enter(os.getcwd()), start_new_session=True, **kwargs)

    def mountinfo(self) -> str:
        """The jail's mount table (what learner code in there sees, if it made no namespace
        of its own)."""
        return Path(f"/proc/{self.pid}/mountinfo").read_text()

    def close(self) -> None:
        """Kill the holder: the kernel then kills every process left in the jail. The holder
        is gone only once they are all reaped, and the checker's own children in there are
        ours to reap: reap whatever ends until the holder does."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == self.pid:
                break
            if pid == 0:
                time.sleep(0.005)
        os.close(self.mount_ns)


def grade_parent() -> str:
    """The prefix of each check's cgroup parent: `mini-grade`, or under a test run's own parent
    (MINI_CGROUP_PARENT), so that runs side by side never take each other's for leaks."""
    parent = os.environ.get("MINI_CGROUP_PARENT")
    return f"{parent}-grade" if parent else "mini-grade"


def remove_cgroups(parent: str) -> None:
    """The check's cgroup parent and what is left in it, once the checker is gone (a checker
    that timed out could not tidy up; its jail, and so every process in there, is dead)."""
    from mini_runtime import cgroups

    for top in {cgroups.ROOT / parent, *(cgroups.ROOT / c / parent for c in cgroups.V1_CONTROLLERS)}:
        if not top.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: -entry[0].count("/")):
            for _ in range(200):  # the last processes may still be exiting
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


class Confinement:
    """What learner code sees of the checker's files, made in the jail's mount namespace by
    the holder (see the module docstring)."""

    def __init__(self, keep: tuple[str, ...], writable: tuple[str, ...], hide: tuple[str, ...]) -> None:
        self.keep = tuple(dict.fromkeys(os.path.realpath(p) for p in (*keep, *writable)))
        self.writable = tuple(os.path.realpath(p) for p in (*writable, *KERNEL))
        self.hide = tuple(dict.fromkeys(os.path.realpath(p) for p in (*HIDDEN, *hide)))

    def apply(self) -> None:
        """Open what is kept, make every other mount read-only, cover, bind the kept back."""
        fds = {}
        for path in self.keep:
            try:
                fds[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                pass
        self.read_only_mounts()
        covers = [(p, True) for p in PRIVATE] + [(p, False) for p in self.hide]
        for cover, private in sorted(covers, key=lambda c: c[0].count("/")):
            if cover in self.keep or not os.path.lexists(cover):
                continue
            if not os.path.isdir(cover):
                syscalls.mount(os.devnull, cover, None, syscalls.MS_BIND)
                bind_read_only(Path(cover))
                continue
            syscalls.mount("tmpfs", cover, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV,
                           "mode=1777" if private else "mode=755")
            under = [path for path in fds if path.startswith(cover + "/")]
            for path in sorted(under):  # (an ancestor's recursive bind brings what is under it)
                if not any(path.startswith(other + "/") for other in under):
                    _bind_back(fds[path], path)
            if not private:
                syscalls.mount(None, cover, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY
                               | syscalls.MS_NOSUID | syscalls.MS_NODEV)
        for fd in fds.values():
            os.close(fd)

    def read_only_mounts(self) -> None:
        """Every mount of this namespace read-only, but the writable ones and what is under them
        (a bind remount: the flags of this namespace's mount, never the filesystem's)."""
        done: set[str] = set()
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            options = fields[5].split(",")
            if point in done or "ro" in options or any(
                    point == w or point.startswith(w.rstrip("/") + "/") for w in self.writable):
                continue
            done.add(point)
            flags = sum(_KEPT_FLAGS.get(o, 0) for o in options)
            try:
                syscalls.mount(None, point, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY | flags)
            except FileNotFoundError:  # under a mount that covers it: out of reach anyway
                pass


def _bind_back(fd: int, path: str) -> None:
    """Bind what `fd` holds (a directory or a file, opened before the cover) at `path`."""
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "a").close()
    syscalls.mount(f"/proc/self/fd/{fd}", path, None, syscalls.MS_BIND | syscalls.MS_REC)


def _hold(ready: int, shared_root: bool, confinement: Confinement) -> None:
    """The holder: make the jail's mount namespace, say so, then reap orphans until killed."""
    try:
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        # Nothing of the checker's may be reachable through /proc/1/fd inside the jail.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        syscalls.close_other_fds((0, 1, 2, ready))
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        syscalls.mount("proc", "/proc", "proc", syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)
        confinement.apply()
        if shared_root:  # like systemd's host: what a container mounts without care leaks here
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SHARED)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        os.write(ready, b"ready")
        os.close(ready)
    except BaseException as e:  # noqa: BLE001 - said to the checker, which fails the check
        os.write(ready, f"{type(e).__name__}: {e}".encode())
        os._exit(1)
    while True:
        signal.sigwait({signal.SIGCHLD})
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
