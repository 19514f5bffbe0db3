"""Chapter 01: a container is a process.

Everything a container runtime does ends with the same three system calls a shell uses:
fork(2) a copy of ourselves, execve(2) the command in the copy, waitpid(2) for it to end.
The rest of the course adds what happens *between* fork and execve (namespaces, a new root,
cgroups, privileges) — which is why the child waits on a pipe until the parent says "go".

    parent (mini)                          child
    ─────────────                          ─────
    spawn():  pipe, pipe, fork  ─────────▶ own session, dies with mini
              read "ready"  ◀───────────── write "ready", wait for "go"
    (later chapters: cgroup, network)         │
    release(): write "go"  ────────────────▶ setup (later chapters), chdir, execve
               read the error pipe  ◀──────── exec failed? write why, _exit(126/127)
    forward_signals(), wait_for()            ... the command runs, exits ...
    exit_code(status) → 0..255
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
from collections.abc import Callable, Iterator

from mini_runtime import syscalls
from mini_runtime.config import ProcessSpec
from mini_runtime.errors import ExecError, Exercise, MiniError, System, reason
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import NoReturn

#: The signals `mini` passes on to the container (docker's --sig-proxy passes these and more).
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)


#: The named steps on the channel between parent and child, in order. The child says READY once
#: it is set up to be managed (its own session, killed with its parent) and then blocks until the
#: parent says GO; an error report, or EOF from a successful execve, answers GO. (Chapter 08 adds
#: a step between them: the parent writes the user-namespace maps.)
READY = b"ready\n"
GO = b"go\n"


@named_tuple
class Child:
    pid: int
    go: int       # write end of the "go" pipe: the child blocks until we write to it
    errors: int   # read end of the error pipe: empty at EOF means execve succeeded


# >>> exit-code
def exit_code(status: int) -> int:
    """Turn a wait status into the number a shell (and docker) reports.

    A process that called exit(N) gives N; one killed by signal S gives 128 + S
    (SIGKILL is 9, so 137: the number you see when the OOM killer strikes).
    """
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    raise ValueError(f"wait status {status:#x} is neither an exit nor a death by signal")
# <<< exit-code


# >>> exec-error-code
def exec_error_code(err: int) -> int:
    """Docker's convention for a command that could not start: 127 if it does not exist,
    126 if it exists but cannot be executed (permission denied, not a program, a directory)."""
    return 127 if err in (errno.ENOENT, errno.ENOTDIR) else 126
# <<< exec-error-code


# >>> find-executable
def find_executable(name: str, path: str, root: str) -> str:
    """Where `name` is, searching the container's $PATH inside the directory `root`.

    A name with a slash is used as it is (an absolute one is taken inside `root`).
    A bare name is looked up in each directory of `path`, like execvp(3) does; the first
    executable regular file wins. Raises FileNotFoundError if there is none.
    """
    if "/" in name:
        return os.path.join(root, name.lstrip("/")) if name.startswith("/") else name
    for directory in path.split(":"):
        if not directory:
            continue
        candidate = os.path.join(root, directory.lstrip("/"), name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(errno.ENOENT, "executable file not found in $PATH", name)
# <<< find-executable


# >>> exec-command
def exec_command(spec: ProcessSpec, root: str) -> NoReturn:
    """In the child: enter the working directory and replace this process by the command.

    `root` is where the container's files are as seen by this process: the unpacked image in
    chapter 01, and "/" once chapter 02 has made the image our root. execve(2) only returns
    on failure, and then it raises OSError.
    """
    os.chdir(os.path.join(root, spec.cwd.lstrip("/")))
    program = find_executable(spec.args[0], spec.env.get("PATH", ""), root)
    os.execve(program, spec.args, spec.env)
# <<< exec-command


def add_environment(env: dict[str, str], hostname: str, home: str) -> None:
    """What docker gives every process of a container (run's and exec's) besides the image's
    Env and -e, which win over it: HOSTNAME, the daemon's, right after PATH; and HOME, which
    runc adds last from the user's passwd entry. Shells and programs rely on them: `cd` with
    no argument goes to $HOME, and a prompt or a log line may show $HOSTNAME. Only the process
    gets them: the record's Config.Env stays the image's and -e's, as docker's inspect shows."""
    merged = {key: env[key] for key in ("PATH",) if key in env} | {"HOSTNAME": hostname} | env
    merged.setdefault("HOME", home)
    env.clear()
    env.update(merged)


# >>> spawn
def spawn(spec: ProcessSpec, root: str, setup: Callable[[], None] | None = None) -> Child:
    """fork(2) the container process. It waits for `release()` before it runs anything."""
    go_read, go_write = os.pipe()
    err_read, err_write = os.pipe()   # close-on-exec: a successful execve closes it
    pid = os.fork()
    if pid == 0:
        _child(spec, root, setup, go_read, err_write)
    os.close(go_read)
    os.close(err_write)
    report = os.read(err_read, len(READY))
    if report != READY:                                 # it failed on the way: reap it
        while chunk := os.read(err_read, 4096):
            report += chunk
        os.close(go_write)
        os.close(err_read)
        os.waitpid(pid, 0)
        why = report.decode(errors="replace").partition("\n")[2]
        raise System(why or "the container process died before it was ready")
    return Child(pid, go_write, err_read)


def _child(spec: ProcessSpec, root: str, setup: Callable[[], None] | None,
           go_read: int, err_write: int) -> NoReturn:
    code, message = 125, "container setup failed"
    try:
        # Python's ctrl-C handler would turn a forwarded SIGINT into an exception here.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        # Nothing of the runtime's may leak into the container: close every other fd.
        syscalls.close_other_fds(keep=(0, 1, 2, go_read, err_write))
        # If its parent dies (the monitor, or a foreground `mini run`), so does the container.
        syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
        # A session of our own: the terminal's ctrl-C goes to mini, which forwards it once.
        os.setsid()
        os.write(err_write, READY)
        if os.read(go_read, len(GO)) != GO:
            os._exit(125)                     # the parent went away without releasing us
        os.close(go_read)
        if setup is not None:
            setup()
            stay_tied_to_parent(err_write)    # setup may have changed who we are (-u)
        default_signals()
    except BaseException as e:  # noqa: BLE001 - anything at all must reach the parent
        message = f"container setup failed: {reason(e)}"
    else:
        try:
            exec_command(spec, root)
        except OSError as e:
            code, message = exec_failure(spec.args[0], e)
        except BaseException as e:  # noqa: BLE001
            message = f"container setup failed: {type(e).__name__}: {e}"
    try:
        os.write(err_write, f"{code}\n{message}".encode())
    finally:
        os._exit(code)
# <<< spawn


def default_signals(but: tuple[int, ...] = ()) -> None:
    """Right before execve: ignored signals stay ignored across execve. Python ignores SIGPIPE
    and SIGXFSZ, `nohup mini run` SIGHUP, `make` glibc's own 32 and 33 (which Python's signal
    module cannot touch); the command gets every signal at its default, as a docker container's
    command does. (`but`: those to leave ignored.)"""
    for sig in signal.valid_signals():
        if sig not in but and signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)
    for sig in set(range(1, signal.NSIG)) - signal.valid_signals():  # the C library's own: 32, 33
        syscalls.set_disposition(sig, ignore=False)


def exec_failure(name: str, error: OSError) -> tuple[int, str]:
    """docker's exit code (126/127) and words for an execve that failed."""
    reason = error.strerror or str(error)
    return exec_error_code(error.errno or 0), f'exec: "{name}": {reason[:1].lower()}{reason[1:]}'


# >>> stay-tied
def stay_tied_to_parent(pipe: int) -> None:
    """In the child, after setup: die with mini still, or leave now if mini is already gone.

    The kernel clears the parent-death signal when a process's credentials change (setuid and
    setgid for `-u`; capabilities in chapter 08), so it is armed again here. If mini died before
    that, no signal will ever come, so (as runc does) the child then checks that its parent is
    still there. getppid() cannot say: as PID 1 of its own PID namespace the child sees its
    parent as 0. The error pipe can: mini holds the read end until our execve, and the write
    end of a pipe whose readers are all gone polls as POLLERR.
    """
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
    poller = select.poll()
    poller.register(pipe, select.POLLOUT)
    if any(events & select.POLLERR for _, events in poller.poll(0)):
        os._exit(125)                         # mini is gone: nobody would supervise us
# <<< stay-tied


# >>> release
def release(child: Child) -> None:
    """Tell the child to go, then learn whether its execve worked (EOF) or why not."""
    try:
        os.write(child.go, GO)
    except BrokenPipeError:
        raise MiniError("the container process died before it could start") from None
    finally:
        os.close(child.go)
    report = b""
    while chunk := os.read(child.errors, 4096):
        report += chunk
    os.close(child.errors)
    if report:
        code, _, message = report.decode(errors="replace").partition("\n")
        raise ExecError(message, int(code))   # the caller reaps the child
# <<< release


# >>> take-terminal
def take_terminal(console: socket.socket) -> None:
    """-t (chapter 06), in the container's process once its /dev is the container's: a new pty
    from the container's own /dev/ptmx, so its slave is the container's /dev/pts/0 (the host's
    ptys stay out of view). Its window size arrives first on `console`, so the command starts
    with the right one; the master goes back over it (SCM_RIGHTS, as runc's --console-socket);
    the slave becomes our controlling terminal, whose line discipline turns a typed ctrl-C into
    SIGINT for the foreground process group, and our stdin, stdout and stderr."""
    size = console.recv(WINSIZE.size, socket.MSG_WAITALL)  # (sent first: never waits)
    master, slave = os.openpty()                    # /dev/ptmx -> pts/ptmx: the container's
    if any(size):
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    socket.send_fds(console, [b"pty"], [master])
    os.close(master)
    console.close()
    if os.getsid(0) != os.getpid():                 # (a container's init is a leader already)
        os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
# <<< take-terminal


#: struct winsize: rows, columns, and two sizes in pixels nobody uses.
WINSIZE = struct.Struct("HHHH")


def console_socket() -> tuple[socket.socket, socket.socket]:
    """(ours, theirs): the socket pair take_terminal speaks on: `theirs` goes to the process
    that makes the pty; on `ours` we send_size, then receive_terminal."""
    return socket.socketpair()


def send_size(ours: socket.socket, rows: int, columns: int) -> None:
    """The window size the pty gets before the command runs ((0, 0): the kernel's)."""
    ours.sendall(WINSIZE.pack(rows, columns, 0, 0))


def receive_terminal(ours: socket.socket) -> int | None:
    """The pty master take_terminal sent; None if the process ended before it did."""
    _, fds, _, _ = socket.recv_fds(ours, 16, 1)
    return fds[0] if fds else None


# >>> wait-for
def wait_for(pid: int) -> int:
    """Block until the child `pid` ends and return its raw wait status.

    waitpid(2) also reaps it: until then the dead child stays a zombie in the process table.
    Python retries the call itself when a signal handler interrupts it (PEP 475).
    """
    _, status = os.waitpid(pid, 0)
    return status
# <<< wait-for


# >>> forward-signals
@contextlib.contextmanager
def forward_signals(pid: int) -> Iterator[None]:
    """While inside the `with`, signals sent to mini are passed to the container.

    Without this, ctrl-C or `kill` would end mini and leave the container running
    (or, with PR_SET_PDEATHSIG, killed without a chance to clean up).
    """
    forward = syscalls.signal_forwarder(pid)  # (if it has just exited, wait_for() tells us how)
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
# <<< forward-signals


def predicted_errnos() -> dict[str, int]:
    """The chapter's "why?" questions answered as data (exercise 01 checks them against the
    kernel): which errno execve(2) and waitpid(2) give for three classic mistakes."""
    return {"exec_a_directory": errno.EACCES,       # x bits or not, a directory is not a program
            "exec_without_shebang": errno.ENOEXEC,  # neither ELF nor "#!": a shell would try sh
            "wait_twice": errno.ECHILD}             # once reaped, it is nobody's child any more


# Exercise 01's extension, `--ulimit`: the plumbing only. The runtime calls these two; the
# exercise (exercises/01_processes/README.md) writes them, and the grader plugs them in.
def parse_ulimit(value: str) -> tuple[str, int, int]:
    """`--ulimit NAME=SOFT[:HARD]` as docker reads it: (name, soft, hard), -1 for unlimited;
    ValueError with docker's words for a bad one. Called before anything is created."""
    raise Exercise("--ulimit", "01_processes")


def set_ulimits(limits: list[tuple[str, int, int]]) -> None:
    """In the child, before execve: each parsed `--ulimit` becomes its resource limit."""
    raise Exercise("--ulimit", "01_processes")
