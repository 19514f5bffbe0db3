"""Chapter 06: a foreground `mini run` (no -d, no -t) is its container's monitor itself: it
creates the container with the container's output on pipes to us, starts it, serves it (its
output to our stdout and stderr and to its log; kill and wait for other `mini`s) and finishes
it as a monitor does. No monitor process is started: one Python start less.
"""

from __future__ import annotations

import os
import socket

from mini_runtime import monitor, monitor_setup, paths, process, runtime
from mini_runtime.config import ContainerConfig
from mini_runtime.errors import InvalidParameter
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any


@named_tuple
class Here:
    """A foreground container whose monitor is this process (`mini run` without -d)."""
    created: runtime.Created
    out_r: int
    err_r: int
    in_w: int           # (-1: a foreground container's stdin is ours)
    listener: socket.socket
    console: None       # (never -t: `run -t` attaches to a monitor of its own, cli/run.py)


def create_here(config: ContainerConfig, container_id: str) -> Here:
    if config.tty:
        raise InvalidParameter("a container with a tty is run by a monitor of its own")
    return Here(*monitor_setup.create_with_pipes(config, container_id))


def start_here(here: Here) -> None:
    try:
        runtime.start(here.created)
    except BaseException as e:
        close_here(here)
        runtime.not_started(here.created, e)            # as docker: it stays created, with the error
        raise


def wait_here(here: Here) -> dict[str, Any]:
    """Be its monitor until it ends: its output to our stdout and stderr and to its log, our
    signals to it, kill and wait for other `mini`s; then finish as a monitor does."""
    created, waiters = here.created, []
    shown = created.config.attach_fields                # (-a: the others go to its log only)
    out, err = 1 if shown["AttachStdout"] else -1, 2 if shown["AttachStderr"] else -1
    try:
        with process.forward_signals(created.child.pid):
            status = monitor.serve(created.child.pid, here.out_r, here.err_r, out, err, waiters,
                                   here.listener, paths.log_file(created.directory), monitor=False)
            monitor.disarm()
    except BaseException:
        runtime.kill_and_reap(created.child.pid)
        here.listener.close()
        runtime.cleanup(created, runtime.Exited(137, False))
        raise
    return monitor.finish(created, status, here.listener, waiters)


def close_here(here: Here) -> None:
    here.listener.close()
    for fd in {here.out_r, here.err_r, here.in_w} - {-1}:
        os.close(fd)
