"""Chapter 01 exercise: a container is a process. Your copy of `mini_runtime/process.py`.

Fill in the six functions below. The grader plugs them into the reference runtime (which keeps
its own `spawn()` and `release()`, the fork and the "go" pipe) and runs real containers:

    python -m exercises grade 01

Every TODO has a hint, the man page to read, and a "why?" to answer for yourself.
Run one check at a time with `--only 1.3`. Chapter text: chapters/01-processes.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from typing import Iterator, NoReturn

from mini_runtime.config import ProcessSpec

# Given: the signals `mini` passes on to the container (the reference's own tuple).
from mini_runtime.process import FORWARDED_SIGNALS  # noqa: E402,F401


def exit_code(status: int) -> int:
    """Turn a wait status into the number a shell (and docker) reports:
    exit(N) gives N; killed by signal S gives 128 + S."""
    # TODO: decode the status with os.WIFEXITED / os.WEXITSTATUS and
    #   os.WIFSIGNALED / os.WTERMSIG.
    #   man: https://man7.org/linux/man-pages/man2/waitpid.2.html (the W* macros)
    #   why? A shell cannot return a negative number or a signal name. Why 128 + S, and why is
    #   an out-of-memory kill reported as 137?
    raise NotImplementedError("exit_code")


def exec_error_code(err: int) -> int:
    """Docker's exit code for a command that could not start, from execve's errno."""
    # TODO: 127 when the command does not exist (ENOENT, ENOTDIR), 126 for anything else
    #   (EACCES: not executable, ENOEXEC: not a program, EISDIR, ...).
    #   man: https://man7.org/linux/man-pages/man2/execve.2.html (ERRORS)
    #   why? Both are above the range a normal program uses for its own errors. What would go
    #   wrong if mini returned 1 when the command is missing?
    raise NotImplementedError("exec_error_code")


def find_executable(name: str, path: str, root: str) -> str:
    """Where `name` is, searching the container's $PATH inside the directory `root`.

    A name with a slash is used as it is (an absolute one is taken inside `root`).
    Raise FileNotFoundError when no PATH directory has an executable regular file `name`.
    """
    # TODO: split `path` on ":"; for each directory, join root + directory + name (mind that
    #   os.path.join(root, "/bin") drops root: strip the leading "/"); return the first that is
    #   a regular file (os.path.isfile) and executable (os.access(..., os.X_OK)).
    #   man: https://man7.org/linux/man-pages/man3/exec.3.html (execvp searches PATH)
    #   why? execve(2) itself never searches PATH. And why must the search happen inside
    #   `root`, not on the host?
    raise NotImplementedError("find_executable")


def exec_command(spec: ProcessSpec, root: str) -> NoReturn:
    """In the child: enter the working directory and replace this process by the command."""
    # TODO: os.chdir into root + spec.cwd, find the program with find_executable (use the
    #   container's PATH from spec.env), then os.execve(program, spec.args, spec.env).
    #   man: https://man7.org/linux/man-pages/man2/execve.2.html
    #   why? execve keeps the pid, the open fds and the cwd, but not the code or the memory.
    #   What does that let the runtime prepare before the command starts?
    raise NotImplementedError("exec_command")


def wait_for(pid: int) -> int:
    """Block until the child `pid` ends; reap it; return its raw wait status."""
    # TODO: os.waitpid(pid, 0) returns (pid, status).
    #   man: https://man7.org/linux/man-pages/man2/waitpid.2.html
    #   why? Until someone waits for it, a dead child stays in the process table as a
    #   zombie. Who waits for the children of a process that has died? (Chapter 03.)
    raise NotImplementedError("wait_for")


@contextlib.contextmanager
def forward_signals(pid: int) -> Iterator[None]:
    """While inside the `with`, signals in FORWARDED_SIGNALS sent to mini go to `pid`.
    Put the previous handlers back when the block ends."""
    # TODO: for each signal, install a handler with signal.signal(sig, handler) that calls
    #   os.kill(pid, signum) (ignore ProcessLookupError: the child may just have exited),
    #   keep what signal.signal returned, `yield`, and restore those in a `finally`.
    #   man: https://man7.org/linux/man-pages/man7/signal.7.html
    #   why? Without forwarding, what happens to the container when you press ctrl-C or run
    #   `kill` on mini? (Try it with the reference and a trap in the container.)
    raise NotImplementedError("forward_signals")
    yield  # makes this a generator; remove nothing here, just replace the raise


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
