"""Chapter 01 exercise: a container is a process. Your copy of `mini_runtime/process.py`.

Fill in the functions below: the leaves (exit codes, the PATH search, execve, waitpid, signal
forwarding) and the orchestration that connects them, `spawn()` and `release()`: the fork, the
"ready" and "go" steps on two pipes, and what the child does between "go" and execve. The grader
plugs them into the reference runtime and runs real containers:

    python -m exercises grade 01

The hints name the man page to read and the pitfall to avoid; the chapter explains each step.
Run one check at a time with `--only 1.3`. Chapter text: chapters/01-processes.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from typing import Callable, Iterator, NoReturn

from mini_runtime import syscalls
from mini_runtime.config import ProcessSpec
from mini_runtime.errors import ExecError, MiniError, System

# Given (the reference's own): the signals `mini` passes on to the container; the two messages
# of the child's channel; what spawn() returns; and stay_tied_to_parent(), which re-arms the
# parent-death signal after setup (read its docstring in mini_runtime/process.py).
from mini_runtime.process import FORWARDED_SIGNALS, GO, READY, Child, stay_tied_to_parent  # noqa: E402,F401


def exit_code(status: int) -> int:
    """Turn a wait status into the number a shell (and docker) reports:
    exit(N) gives N; killed by signal S gives 128 + S."""
    # TODO: man https://man7.org/linux/man-pages/man2/waitpid.2.html (the W* macros; Python's
    #   os module has them all).
    #   pitfall: a status is not an exit code; its bits say *how* the process ended first.
    #   why? A shell cannot return a negative number or a signal name. Why 128 + S, and why is
    #   an out-of-memory kill reported as 137?
    raise NotImplementedError("exit_code")


def exec_error_code(err: int) -> int:
    """Docker's exit code for a command that could not start, from execve's errno: 127 when
    the command does not exist, 126 when it exists but cannot be executed."""
    # TODO: man https://man7.org/linux/man-pages/man2/execve.2.html (ERRORS): which errnos mean
    #   "there is no such file", and which "it is there, but not runnable"?
    #   pitfall: a path through a regular file (/etc/passwd/x) is as missing as a missing one.
    #   why? Both are above the range a normal program uses for its own errors. What would go
    #   wrong if mini returned 1 when the command is missing?
    raise NotImplementedError("exec_error_code")


def find_executable(name: str, path: str, root: str) -> str:
    """Where `name` is, searching the container's $PATH inside the directory `root`.

    A name with a slash is used as it is (an absolute one is taken inside `root`).
    Raise FileNotFoundError when no PATH directory has an executable regular file `name`.
    """
    # TODO: man https://man7.org/linux/man-pages/man3/exec.3.html (how execvp searches PATH).
    #   pitfall: os.path.join(root, "/bin") is "/bin": an absolute second part drops the first.
    #   pitfall: a file that is there but not executable (or a directory) does not stop the search.
    #   why? execve(2) itself never searches PATH. And why must the search happen inside
    #   `root`, not on the host?
    raise NotImplementedError("find_executable")


def exec_command(spec: ProcessSpec, root: str) -> NoReturn:
    """In the child: enter the working directory and replace this process by the command."""
    # TODO: man https://man7.org/linux/man-pages/man2/execve.2.html and chdir(2).
    #   pitfall: the PATH to search is the container's (spec.env), not mini's; and spec.cwd is a
    #   path inside `root`.
    #   why? execve keeps the pid, the open fds and the cwd, but not the code or the memory.
    #   What does that let the runtime prepare before the command starts?
    raise NotImplementedError("exec_command")


def wait_for(pid: int) -> int:
    """Block until the child `pid` ends; reap it; return its raw wait status."""
    # TODO: man https://man7.org/linux/man-pages/man2/waitpid.2.html
    #   pitfall: mini may have other children: wait for *this* one.
    #   why? Until someone waits for it, a dead child stays in the process table as a
    #   zombie. Who waits for the children of a process that has died? (Chapter 03.)
    raise NotImplementedError("wait_for")


@contextlib.contextmanager
def forward_signals(pid: int) -> Iterator[None]:
    """While inside the `with`, signals in FORWARDED_SIGNALS sent to mini go to `pid`.
    Put the previous handlers back when the block ends."""
    # TODO: man https://man7.org/linux/man-pages/man7/signal.7.html and Python's `signal` module.
    #   pitfall: the child may exit between a signal's arrival and your kill(2): that is not an
    #   error of mini's. And the block may end by an exception.
    #   why? Without forwarding, what happens to the container when you press ctrl-C or run
    #   `kill` on mini? (Try it with the reference and a trap in the container.)
    raise NotImplementedError("forward_signals")
    yield  # makes this a generator; remove nothing here, just replace the raise


# --- the orchestration: the order of the steps between fork and execve --------------------
# The runtime calls spawn() in `create` (the child then waits), puts the child in its cgroup
# (chapter 04), calls release() in `start`, and later wait_for() and exit_code(). `setup` is
# what later chapters do in the child between "go" and execve (namespaces, the new root, -u).

def spawn(spec: ProcessSpec, root: str, setup: Callable[[], None] | None = None) -> Child:
    """fork(2) the container process; return once it is ready to be managed, before it has
    run anything of the container's.

    The contract (chapter 01 § fork, then execve; the diagram in mini_runtime/process.py):
    - Two pipes: "go" (parent → child) and the error pipe (child → parent). The child writes
      READY on the error pipe when it is ready to be managed: by then it is in a session of
      its own, holds no fd but 0, 1, 2 and its two pipe ends, and dies (SIGKILL) with its parent.
    - Nothing of the container's (`setup`, the command) runs before the child has read GO; a
      child whose parent went away without GO exits 125.
    - After `setup`, the child still dies with its parent, and the command starts with
      SIGPIPE and SIGXFSZ at their defaults (Python ignores both; ignored stays ignored).
    - Whatever fails in the child is reported on the error pipe as b"CODE\\nMESSAGE" before the
      child ends with that CODE: for an OSError of exec_command, exec_error_code's 126/127 and
      `exec: "ARG0": REASON` (REASON lower-case first, as docker says it); for anything else,
      125 and `container setup failed: ...`. A successful execve says nothing: the pipe closes.
    - The parent returns Child(pid, go, errors) once it has read READY, holding the write end
      of "go" and the read end of the error pipe, and nothing else of them. A child that fails
      before READY is reaped, and spawn raises System with what it reported.
    """
    # TODO: man https://man7.org/linux/man-pages/man2/fork.2.html, pipe(2) (os.pipe's fds are
    #   close-on-exec: execve closes them), setsid(2), prctl(2) (PR_SET_PDEATHSIG), and
    #   mini_runtime/syscalls.py for what os lacks.
    #   pitfall: a pipe shows EOF only once *every* write end is closed, in every process that
    #   holds a copy. Which copies must each side close, and what waits forever if one stays?
    #   pitfall: the child is a copy of mini, Python and all. However its steps go, it must never
    #   return into mini's code: how does it end?
    #   why? Why make the child wait for GO at all, when fork then execve would be simpler?
    #   (What does chapter 04 do between the two?)
    raise NotImplementedError("spawn")


def release(child: Child) -> None:
    """Tell the child to go, then learn whether its execve worked (the error pipe closes with
    nothing in it) or why not: raise ExecError(MESSAGE, CODE) with the child's report (the
    caller reaps it); MiniError if the child died before it could be told."""
    # TODO: man https://man7.org/linux/man-pages/man7/pipe.7.html (I/O on pipes: EOF, EPIPE).
    #   pitfall: one read(2) may return part of the report; and a write to a pipe nobody reads
    #   is EPIPE (Python: BrokenPipeError), not a silent success.
    #   why? How can the parent tell "execve worked" from "the child has not got there yet"?
    raise NotImplementedError("release")


def predicted_errnos() -> dict[str, int]:
    """Why? Three mistakes the kernel refuses. Predict its errno for each (errno.E...); check 1.9
    makes each mistake for real and compares."""
    # TODO: return {"exec_a_directory": ..., "exec_without_shebang": ..., "wait_twice": ...}
    #   exec_a_directory: execve(2) of a directory (its x bits set, as directories have).
    #   exec_without_shebang: execve(2) of an executable text file that does not start with "#!".
    #   wait_twice: waitpid(2) for a child that has already been waited for.
    #   man: https://man7.org/linux/man-pages/man2/execve.2.html, waitpid(2) (ERRORS).
    #   Try each in a Python shell and read the exception's errno.
    raise NotImplementedError("predicted_errnos")


# --- the extension (15 of the 25 points): docker's --ulimit, which the reference lacks --------
# `mini run --ulimit NAME=SOFT[:HARD]` calls parse_ulimit for each flag before anything is
# created (a ValueError becomes docker's line `invalid argument "VALUE" for "--ulimit" flag:
# YOUR MESSAGE` and exit 125), and set_ulimits in the container's process, after "go" and
# before execve. The README's "Extend" section is the specification.

def parse_ulimit(value: str) -> tuple[str, int, int]:
    """`--ulimit NAME=SOFT[:HARD]` as docker reads it: (name, soft, hard), -1 for unlimited;
    ValueError with docker's words for a bad one."""
    # TODO: docker's parser is go-units' ParseUlimit (github.com/docker/go-units, ulimit.go):
    #   which names it knows, what a missing hard limit means, and each of its error messages.
    #   Numbers are read by Go's strconv.ParseInt: its error for "abc" is part of the message.
    #   why? Why does docker check soft <= hard itself, when setrlimit(2) would refuse it too?
    raise NotImplementedError("parse_ulimit")


def set_ulimits(limits: list[tuple[str, int, int]]) -> None:
    """In the child, before execve: each parsed `--ulimit` becomes its resource limit."""
    # TODO: man https://man7.org/linux/man-pages/man2/setrlimit.2.html (and Python's `resource`
    #   module). Map docker's names to RLIMIT_* yourself; -1 is RLIM_INFINITY.
    #   pitfall: which limits survive execve(2)? And why here, in the child, and not in mini?
    raise NotImplementedError("set_ulimits")
