"""Where learner code runs during a check: a jail the check's own process never enters.

The checker process (`exercises.sandbox`) decides the verdict and never imports learner code.
Every process that does (`mini` with the learner's functions plugged in, the learner server
that answers direct calls) starts in a jail made for that one check:

- a **PID namespace** whose PID 1 is a small holder process forked from the checker. Learner
  code cannot see or signal the checker or the grader (they have no PID in there), and
  everything it starts, even a daemon that called setsid(), dies when the holder is killed
  at the end of the check;
- a **mount namespace** of its own (a copy of the checker's, with a fresh /proc for that PID
  namespace), where the checkout, the grader, the Python installation and the image cache are
  read-only (the checker made them so before the copy). A mount learner code makes there never
  reaches the checker.

The hostname, IPC and network namespaces stay the checker's, so a check can see what learner
code did to them (a `sethostname` outside the container renames the checker's namespace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from mini_runtime import syscalls


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


def bind_read_only(path: Path) -> None:
    """A read-only view of `path` in this mount namespace (the files stay writable elsewhere)."""
    syscalls.mount(str(path), str(path), None, syscalls.MS_BIND | syscalls.MS_REC)
    syscalls.mount(None, str(path), None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY
                   | syscalls.MS_NOSUID)


class Jail:
    """The jail of one check (see the module docstring). Made by the checker, which must be
    single-threaded: it unshares its PID namespace for its children, so every process it
    forks from now on is in the jail's PID namespace."""

    def __init__(self, *, shared_root: bool = False) -> None:
        read, write = os.pipe()
        syscalls.unshare(syscalls.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:  # the holder, PID 1 of the jail: never returns
            os.close(read)
            _hold(write, shared_root)
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


def _hold(ready: int, shared_root: bool) -> None:
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
