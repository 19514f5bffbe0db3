"""Chapter 06 exercise: a monitor per container. Your copy of the heart of
`mini_runtime/monitor.py`: the serve loop that lives as long as the container, the requests it
answers on its socket, and (the extension) docker's restart policies.

The grader plugs your functions into the reference runtime, in every process that runs them:

    mini run (foreground)   is its container's monitor itself: create, start, serve(...), finish
    mini run -d             a monitor of its own, three phases (setup → serve → finish), each an
                            execve of the one before; serve(...) calls answer(...) per request
    extension               setup: parse_restart(value, auto_remove) before anything is created;
                            finish: restart_after(directory, exit_code) once the exit is recorded

    python -m exercises grade 06          (one check: --only 6.2)

Every TODO points to the man page and the pitfall; exercises/06_lifecycle/README.md has the
specification, the checks and a good order. Chapter text: chapters/06-lifecycle.md.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

# Given (the reference's own): one JSON line each way on a socket, the socket's path, a request
# to a monitor, and a write that says whether the reader is still there.
from mini_runtime.monitor import SOCKET, receive, relay_all, request, send, socket_path  # noqa: F401


# --- the rebuild (10 of the 25 points) ---------------------------------------------------------

def serve(pid: int, out_r: int, err_r: int, relay_out: int, relay_err: int, waiters: list[int],
          listener: socket.socket, log_path: str, monitor: bool = True, clients=None) -> int:
    """Relay and log the container's output (to attached `clients` too: attach.Clients), answer
    kill, wait, attach and resize, until it has ended: its wait status. `waiters` grows with the
    connections that asked to wait. A monitor ignores the signals that would end it (only
    SIGKILL does); a foreground `mini` forwards them instead. (err_r is -1 with a pty.)"""
    from mini_runtime.attach import Clients
    from mini_runtime.logs import LogWriter

    clients = clients or Clients(False)
    # TODO: one loop, one select(2), no threads, until the init (`pid`) has ended AND its output
    #   is read. What it watches: the container's out_r and err_r (the ones >= 0), the listener,
    #   clients.readers() (and clients.writers() for writing), and a pipe that a signal can wake.
    #   - Output: os.read up to 64 KiB; write it to a LogWriter(log_path) as "stdout"/"stderr",
    #     pass it to clients.output(name, data), and to relay_out/relay_err when they are >= 0
    #     (relay_all says False when nobody reads there any more). EOF (b"", or OSError: EIO
    #     from a pty whose slave is closed) or a failed relay: stop watching that fd and close
    #     it (and clients.stdin_gone() if it was clients.stdin).
    #   - The end: waitpid(2) with WNOHANG. man https://man7.org/linux/man-pages/man2/waitpid.2.html
    #     pitfall: the init can be gone while its last output is still in the pipe (a pipe holds
    #     64 KiB: pipe(7)). Keep reading after the exit, but not forever (a grandchild may hold
    #     a pipe open): a second is plenty.
    #   - Waking up on SIGCHLD: since PEP 475, select() is retried after a signal handler runs,
    #     so a handler alone never ends the wait. Read about signal.set_wakeup_fd, signal(7)
    #     ("Interruption of system calls") and select(2); restore what you changed at the end.
    #   - A monitor (monitor=True) ignores SIGTERM, SIGINT and SIGHUP: why? (Who else would get
    #     them, and what would be left of the container's output and exit code?)
    #   - The listener: each connection is one request, answered by answer(listener, pid or 0
    #     once it has ended, waiters, clients); a connection that is a client: clients.read_from.
    #   - At the end: close the clients, the writer, your pipe and what is still open.
    #   why? Why must this phase not import the pipeline (runtime.py, cgroups.py ...), when the
    #   finish phase, a moment later, imports all of it?
    raise NotImplementedError("serve")


def answer(listener: socket.socket, pid: int, waiters: list[int], clients) -> None:
    """One request on the socket: kill (a signal to the container's init), wait (answered when
    it has ended, by the finish phase), attach (the connection joins `clients`), resize."""
    # TODO: accept(2) one connection (an OSError: nobody after all); its request is one JSON
    #   line ({"op": ...}: receive(), with a timeout of its own: a client that never writes must
    #   not stop the container's output). pid 0 means the container has ended.
    #   - "wait": keep the connection (its fd: conn.detach()) in `waiters`: the finish phase
    #     answers it with the exit code. Do not answer now, do not close it.
    #   - "attach" (while it runs): send {"Tty": clients.tty}, then clients.add(conn, stdin?).
    #   - "resize" (with a tty): mini_runtime.attach.resize(clients.stdin, h, w).
    #   - "kill" (while it runs): kill(2) the init with the signal asked for (SIGKILL if none);
    #     answer {"ok": True}, or {"Error": why}.
    #   - anything else, or the container has ended: {"Error": "is not running"}.
    #   man https://man7.org/linux/man-pages/man2/kill.2.html, and unix(7) for the socket.
    #   why? Why does `mini stop` ask the monitor to send the signal, instead of calling
    #   os.kill(record["State"]["Pid"], ...) itself? (Think of a pid that was recycled.)
    raise NotImplementedError("answer")


# --- the extension (15 of the 25 points): docker's restart policies, which the reference lacks ---
# `mini run --restart POLICY` (and `create`) calls parse_restart in the monitor's setup phase,
# before anything is created (a ValueError becomes `mini: YOUR MESSAGE` and exit 125), and records
# its answer as HostConfig.RestartPolicy. When the container has ended, the finish phase records
# the exit, cleans up, answers the waiters, then asks restart_after whether to run it again: True,
# and the monitor recreates and starts it at once, same id, same files, same log. The README's
# "Extend" section is the specification.

def parse_restart(value: str, auto_remove: bool) -> tuple[str, int]:
    """`--restart POLICY` (anything but "no") as docker reads it: (name, MaximumRetryCount);
    ValueError with docker's words for a bad one. Called before anything is created."""
    # TODO: docker reads it in two places: the CLI (opts.ParseRestartPolicy in docker/cli: the
    #   format, then the --rm conflict) and the daemon (ValidateRestartPolicy in moby's
    #   api/types/container: the names and counts). The README lists their messages; mind the order
    #   they are checked in. Go's strconv.Atoi is stricter than Python's int().
    #   why? Why does docker refuse --rm with a restart policy, rather than remove the container
    #   when the policy gives up?
    raise NotImplementedError("parse_restart")


def restart_after(directory, exit_code: int) -> bool:
    """In the finish phase, once the exit is recorded and cleaned up: whether the container's
    restart policy runs it again (then the monitor recreates and starts it at once), and the
    wait before (docker's backoff). `directory` is the container's (a pathlib.Path)."""
    # TODO: the record (mini_runtime.container.load/save, under container.record_lock()) has the
    #   policy (HostConfig.RestartPolicy), RestartCount and the run's StartedAt/FinishedAt
    #   (mini_runtime.units.parse_rfc3339). `stop`, `kill` and `rm -f` leave a file `stopped`
    #   in `directory` (docker's HasBeenManuallyStopped); `rm -f` removes `directory` itself.
    #   - Decide as moby's restartmanager (ShouldRestart): which policies, which exit codes, how
    #     many times. Never after a stop by hand.
    #   - To restart: RestartCount + 1, and the State docker shows while it waits (Status
    #     "restarting", Running and Restarting true, Pid 0), then wait: 100 ms, doubled at each
    #     restart up to a minute, and back to 100 ms when the run lasted 10 s or more. Each
    #     restart is a new execve of this monitor: keep the last wait beside the record.
    #   - While it waits, a `stop` or an `rm -f` ends it: exited (Running, Restarting false), or
    #     gone; never write a record into a directory that `rm -f` removed (container.save
    #     would make it again).
    #   pitfall: time.sleep(wait) in one piece makes `stop` wait as long. man 7 signal says why
    #   a wait could be cut short by a signal instead; here, looking every few ms is enough.
    raise NotImplementedError("restart_after")
