"""Chapter 06: `exec`, one more process inside a container that is already running.

No system call says "run this in that container": a container is its init's namespaces, its
cgroup and its root, so `exec` makes a process that joins them, as nsenter(1) and `runc exec` do:

    mini exec                          helper (forked)                  command (forked again)
    ─────────                          ───────────────                  ──────────────────────
    a pidfd for the container's init;  own session, dies with mini
    its start time as recorded (not    setns(pidfd, PID): its *next*
    a recycled pid); open its root     child is in the container's
    fork ────────────────────────────▶ PID namespace; fork ───────────▶ join the init's cgroup
                                                                        setns(pidfd, mnt uts ipc
                                                                          net cgroup); chroot to
                                                                          the init's root; chdir
    read the error pipe (126/127)  ◀──────────────────────────────────  -u, env, execve
    wait: the command's exit code  ◀── wait, pass signals on, exit
                                       with the command's code

- Two forks: joining a PID namespace does not move the caller, it decides where the caller's
  next child lives (chapter 03). The helper stays outside: in no cgroup of the container.
- Forked, so single-threaded: setns(2) refuses a mount (or user) namespace to a process with
  threads (EINVAL).
- The cgroup first: its limits count from the command's first instruction; and inside a private
  cgroup namespace a process may only move between cgroups below that namespace's root, so it
  joins before it enters. (The host's /sys/fs/cgroup is also still in view then.)
- The root apart: entering the mount namespace puts the process at that namespace's root, which
  is the container's after pivot_root but the host's for --no-pivot's chroot. The init's own root
  (/proc/PID/root, opened up front) is right for both; nsenter -r does the same.
- Someone outside must reap the command, even with `exec -d` (where the helper outlives mini,
  orphaned), even when mini is killed (the helper then kills the command and reaps it): when a
  container's init dies, the kernel kills every process of its PID namespace, and the init's own
  exit waits until each has been reaped by its parent, inside the namespace or out. An orphan
  would go to our own init (or subreaper), which may be slow to reap it.
- A pid is only a number: once the init has died, the kernel may give it to any new process. A
  pidfd means one process for good, and its start time (/proc/PID/stat field 22, kept in the
  container's state.json) says it is the one that was recorded. Everything opened through
  /proc/PID is checked again through the pidfd afterwards, and the namespaces are joined through
  the pidfd itself (Linux 5.8): if the init dies meanwhile, setns fails with ESRCH.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable

from mini_runtime import cgroups, process, syscalls, users
from mini_runtime.config import ProcessSpec
from mini_runtime.container import start_time
from mini_runtime.errors import ExecError, NotRunning, System
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import NoReturn

#: The helper's parent-death signal once the command runs: it kills the command and reaps it
#: (unless mini said DETACHED first: exec -it's ctrl-p ctrl-q leaves the command running).
MINI_GONE = signal.SIGRTMIN
DETACHED = b"d"

#: What the command joins after its cgroup (chapter 08 adds the user namespace).
JOINED = (syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
          | syscalls.CLONE_NEWNET | syscalls.CLONE_NEWCGROUP)


@named_tuple
class Init:
    """The container's init, held so that its pid cannot be someone else's."""
    pid: int
    pidfd: int
    root: int       # its root directory (O_PATH)


# >>> open-init
def open_init(container_id: str, pid: int, started: str | None) -> Init:
    """A pidfd for the container's init and its root, or an error if the process with that pid
    is not the one recorded when the container started."""
    try:
        pidfd = syscalls.pidfd_open(pid)
    except ProcessLookupError:
        raise NotRunning(container_id) from None
    try:
        now = start_time(pid)
        if now is None:
            raise NotRunning(container_id)
        if started is None or now != started:
            raise System(f"exec: pid {pid} is not the init of container {container_id} any more "
                         f"(it started at tick {now}, the init at {started}): not entering it")
        root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            syscalls.pidfd_send_signal(pidfd, 0)    # alive still: /proc/PID was it all along
        except ProcessLookupError:
            os.close(root)
            raise NotRunning(container_id) from None
    except BaseException:
        os.close(pidfd)
        raise
    return Init(pid, pidfd, root)
# <<< open-init


def run(container_id: str, init: Init, spec: ProcessSpec, *, stdin: bool = False,
        detach: bool = False, console: Callable[[int], bool | None] | None = None,
        size: tuple[int, int] = (0, 0)) -> int | None:
    """Run `spec` in the container: its exit code (None with `detach`, which returns once the
    command has started). Our stdout and stderr are its own, and our stdin with `stdin`. With
    `console` it gets a new pty of the container's /dev/pts instead, of window `size` (rows,
    columns) from the start, whose master is handed to `console` (which relays it, and returns
    at its end): process.take_terminal, as `run -t` does. If `console` returns True the user
    has detached (exec -it's ctrl-p ctrl-q): the command carries on without us, None."""
    err_r, err_w = os.pipe()                        # close-on-exec: EOF means execve worked
    kept_r, kept_w = os.pipe()                      # a byte on it: we detached (mini_gone)
    ours, theirs = process.console_socket() if console and not detach else (None, None)
    if ours is not None:
        process.send_size(ours, *size)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    stdio = (0 if stdin and not detach else null, null if detach else 1, null if detach else 2)
    if ours is not None:                            # (the pty is its stdio: ours are not held)
        stdio = (null, null, null)
    mini = os.getpid()
    helper_pid = os.fork()
    if helper_pid == 0:
        os.close(err_r)
        os.close(kept_w)
        if ours is not None:
            ours.close()
        helper(container_id, init, spec, stdio, err_w, theirs, detach, mini, kept_r)
    for fd in (err_w, kept_r, null, init.pidfd, init.root):
        os.close(fd)
    if theirs is not None:
        theirs.close()
    master, reaped = None, False
    try:
        if ours is not None:
            master = process.receive_terminal(ours)         # (None: it failed first; the pipe says why)
        report = read_all(err_r)
        if report or detach:
            reaped = True
            status = process.wait_for(helper_pid)
            if not report:
                return None
            code, _, message = report.decode(errors="replace").partition("\n")
            raise ExecError(message or f"exec failed (status {process.exit_code(status)})", int(code))
        if master is not None and console is not None and console(master):
            keep_reading(master)                    # detached: the pty stays open, read
            os.write(kept_w, DETACHED)              # the helper stays when we go (mini_gone)
            reaped = True                           # (it reaps the command; init reaps it)
            return None
        with process.forward_signals(helper_pid):   # (ctrl-C without a pty: to the command)
            status = process.wait_for(helper_pid)
        reaped = True
        return process.exit_code(status)
    finally:
        if not reaped:                              # (ctrl-C while the relay ran, ...)
            end(helper_pid)
        for fd in (err_r, master, kept_w):
            if fd is not None:
                os.close(fd)
        if ours is not None:
            ours.close()


def keep_reading(master: int) -> None:
    """After a detach, someone must hold the pty's master and read it, as docker's shim does:
    closed, the command would get SIGHUP; unread, it would block once the pty's buffer is full.
    A process of its own does (orphaned at once, so init reaps it): it drops the output until
    every process on the pty has ended (EIO)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                syscalls.close_other_fds(keep=(0, 1, 2, master))
                while os.read(master, 65536):
                    pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def end(helper_pid: int) -> None:
    """As if mini had died: the helper kills the command, reaps it, and ends."""
    try:
        os.kill(helper_pid, MINI_GONE)
        os.waitpid(helper_pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


# --- the helper: in mini's namespaces, the parent of the command ----------------------------

def helper(container_id: str, init: Init, spec: ProcessSpec, stdio: tuple[int, int, int],
           err_w: int, console: socket.socket | None, detach: bool, mini: int, kept: int) -> NoReturn:
    message = "exec failed"
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)    # no KeyboardInterrupt in a fork
        os.setsid()               # the terminal's ctrl-C goes to mini alone, which passes it on
        if detach and os.fork():
            os._exit(0)           # -d: mini reaps this one at once; the helper lives on, orphaned
        if not detach:
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)   # dies with mini ...
            if os.getppid() != mini:
                os._exit(126)                           # ... which may be gone already
        for fd, source in zip((0, 1, 2), stdio):
            os.dup2(source, fd)
        syscalls.setns(init.pidfd, syscalls.CLONE_NEWPID)   # for our next child, not for us
        command = os.fork()
        if command == 0:
            enter(container_id, init, spec, err_w, console, detach)
        os.close(err_w)
        if console is not None:
            console.close()
        if not detach:            # mini gone: end the command and reap it, then go (see above)
            gone = mini_gone(command, kept)
            signal.signal(MINI_GONE, gone)
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, MINI_GONE)
            if os.getppid() != mini:
                gone()
        with process.forward_signals(command):
            status = process.wait_for(command)
        os._exit(process.exit_code(status))
    except BaseException as e:  # noqa: BLE001 - anything at all must reach mini
        message = f"exec failed: {e}"
    try:
        os.write(err_w, f"126\n{message}".encode(errors="backslashreplace"))
    finally:
        os._exit(126)


def mini_gone(command: int, kept: int) -> Callable[..., None]:
    """The helper's handler of MINI_GONE: mini has ended (or ends the exec), so the command
    ends too, unless mini detached from it first (it wrote DETACHED on `kept`); then we stay,
    and reap it when it ends. It may come more than once: the parent-death signal follows the
    *thread* that forked us, and each of mini's threads that ends hands us on to the next."""
    os.set_blocking(kept, False)
    detached = False

    def gone(*_: object) -> None:
        nonlocal detached
        if not detached:
            try:
                detached = os.read(kept, len(DETACHED)) == DETACHED
            except BlockingIOError:
                pass                                # (mini is there still: end() asks)
        if not detached:
            os.kill(command, signal.SIGKILL)
    return gone


# >>> enter
def enter(container_id: str, init: Init, spec: ProcessSpec, err_w: int,
          console: socket.socket | None, detach: bool) -> NoReturn:
    """The command's process, PID N of the container: join the rest, become the command."""
    code, message = 126, "exec failed"
    try:
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)  # until execve, no process of the container
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)  # may ptrace us or open our
                                                     # host fds; and we die with the helper
        cgroups.Cgroup(container_id).add(0)          # its cgroup first ("0": the writer itself)
        syscalls.setns(init.pidfd, JOINED)           # then its namespaces, all at once
        os.fchdir(init.root)                         # and its root
        os.chroot(".")
        keep = (0, 1, 2, err_w) + ((console.fileno(),) if console else ())
        syscalls.close_other_fds(keep)               # no host fd (the root's!) may stay open
        if console is not None:
            process.take_terminal(console)           # a pty of its /dev/pts, as `run -t`
        try:
            os.chdir(spec.cwd)
        except OSError as e:
            raise System(f'chdir to cwd ("{spec.cwd}") failed: {(e.strerror or str(e)).lower()}') from None
        users.become(spec.user, spec.env)                      # the container's /etc/passwd, -u
        if detach:                                   # (-u cleared it)
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        else:
            process.stay_tied_to_parent(err_w)       # ... and with mini
        process.default_signals()
    except BaseException as e:  # noqa: BLE001
        message = f"exec failed: {e}"
    else:
        try:
            process.exec_command(spec, "/")
        except OSError as e:                         # 126 even when not found: docker 20.10's
            message = process.exec_failure(spec.args[0], e)[1]  # exec says so (run's says 127)
        except BaseException as e:  # noqa: BLE001
            message = f"exec failed: {type(e).__name__}: {e}"
    try:
        os.write(err_w, f"{code}\n{message}".encode(errors="backslashreplace"))
    finally:
        os._exit(code)
# <<< enter
