"""Chapter 06: a container's life after create, from any process: its monitor (monitor.py) is
asked over its unix socket to kill and to wait; its record says the rest (ps, inspect); its
json-file log is read here (logs).

What docker shows for a container whose monitor died (SIGKILL): its init died with it (the
kernel's parent-death signal), so `container.sweep_stale` records it as exited with 137.

A foreground `mini run` is its container's monitor itself: foreground.py. (Apart, so that
`exec`, `stop`, `ps` ... do not import the pipeline they do not run.)
"""

from __future__ import annotations

import json
import os
import signal as signals
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mini_runtime import container, errors, monitor, paths, stopping, syscalls
from mini_runtime.config import ProcessSpec, checked, daemon_env
from mini_runtime.errors import Conflict, ExecError, InvalidParameter, MiniError, NotFound, NotRunning, System
from mini_runtime.stopping import parse_signal, supported, unsupported

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

    from mini_runtime import logs


# >>> spawn-monitor
def spawn_monitor(container_id: str) -> socket.socket:
    """fork+exec the container's monitor in a session of its own, orphaned at once (a double
    fork) so that nobody has to reap it but init, with /dev/null as its stdin, stdout and
    stderr; returns our end of its channel."""
    ours, theirs = socket.socketpair()
    argv = monitor.monitor_argv(container_id, "--channel", str(theirs.fileno()))
    env = monitor.monitor_env()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork():
                os._exit(0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            syscalls.close_other_fds(keep=(0, 1, 2, theirs.fileno()))  # none of ours leaks
            os.set_inheritable(theirs.fileno(), True)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    theirs.close()
    os.waitpid(pid, 0)
    return ours
# <<< spawn-monitor


def answer(reply: dict | None) -> dict:
    """The monitor's reply, or its error raised again with its kind."""
    if reply is None:
        raise System("the container's monitor ended before it answered")
    if "Error" in reply and isinstance(reply["Error"], dict) and "Kind" in reply["Error"]:
        error = reply["Error"]
        kind = getattr(errors, error["Kind"], errors.System)
        if kind is errors.ExecError:
            raise errors.ExecError(error["Message"], error["ExitCode"])
        if kind is errors.Exercise:                     # (its message is made already)
            raise errors.UsageError(error["Message"])
        if kind is errors.ImageNotFound:                # (made from the image's name)
            raise errors.ImageNotFound(error["Message"].removeprefix("No such image: "))
        raise kind(error["Message"])
    return reply


def run_dir(directory: Path) -> str:
    return str(container.run_dir(directory.name))


def wait(directory: Path, timeout: float | None = None) -> dict[str, Any]:
    """ContainerWait: the monitor answers when the container has ended; without a monitor, the
    record says how it ended."""
    result = monitor.request(run_dir(directory), {"op": "wait"}, timeout)
    if result is not None and "StatusCode" in result:
        return result
    deadline = time.monotonic() + 10
    while True:  # no monitor: if it died, its init dies with it and the sweep records that
        container.sweep_stale()
        try:
            state = container.load(directory)["State"]
        except OSError:
            raise NotFound(f"No such container: {directory.name}") from None  # --rm: gone
        if not state.get("Running") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return {"StatusCode": state.get("ExitCode", 0), "Error": None,
            "OOMKilled": state.get("OOMKilled", False)}


def kill(text: str, signal: str | int) -> None:
    """docker kill: a bad signal in its own words; any other failure names the container as it
    was asked for (docker's API wraps the error so). SIGKILL, the default, returns once the
    container has ended, as docker's does: `kill c; rm c` is a script's way to remove one."""
    number = parse_signal(signal) if signal != "" else int(signals.SIGKILL)   # (docker: "" is none)
    try:
        directory = container.find(text)
        if not supported(number):                       # (docker's daemon: after the lookup)
            raise InvalidParameter(unsupported(number))
        container.manually_stopped(directory)           # no restart policy brings it back
        thawed(directory)
        where = run_dir(directory)
        reply = monitor.request(where, {"op": "kill", "signal": number}, timeout=5)
        if reply is None or "Error" in reply:
            raise NotRunning(directory.name)
        if number == signals.SIGKILL:
            monitor.request(where, {"op": "wait"})
    except MiniError as e:
        raise errors.reworded(e, f"Cannot kill container: {text}: {e}") from None


# >>> stop
def stop_signal(record: dict[str, Any]) -> int:
    """--stop-signal or the image's StopSignal (kept in the record's Config at create), else
    SIGTERM: also for one that names no signal, as docker's (an image must not make a container
    unstoppable). A number that is no signal of Linux's (`--stop-signal 65`, which docker's create
    keeps) cannot be sent: docker's stop then kills, and so does mini's, without its 2 s wait."""
    text = (record.get("Config") or {}).get("StopSignal")
    try:
        number = parse_signal(text) if text else int(signals.SIGTERM)
    except InvalidParameter:
        return int(signals.SIGTERM)
    return number if supported(number) else int(signals.SIGKILL)


def stop(directory: Path, timeout: float | None = None) -> None:
    """SIGTERM (or its stop signal), then SIGKILL if it still runs after `timeout` s (None: its
    --stop-timeout, else 10); a negative one waits for good, as docker's does. (A PID 1 without
    handlers ignores SIGTERM: the kernel does not apply default actions to the init of a PID
    namespace, so such a container ends by the SIGKILL.)"""
    record = container.load(directory)
    if not container.status(record).has_process:
        return
    timeout = stopping.stop_timeout(record) if timeout is None else timeout
    where = run_dir(directory)
    container.manually_stopped(directory)               # no restart policy brings it back
    if not restarting_ended(directory):                 # (between two runs of a restart policy)
        return
    thawed(directory)
    # The monitor keeps the time: a `stop` interrupted (ctrl-C) still ends the container, as
    # docker's daemon finishes a stop whose client has gone.
    asked = {"op": "stop", "signal": stop_signal(record), "timeout": timeout}
    reply = monitor.request(where, asked, timeout=5)
    if reply is None:
        return                                          # it has ended meanwhile
    if "Error" not in reply:
        monitor.request(where, {"op": "wait"})
        return
    # A monitor that knows only "kill" (exercise 06's answer): this process keeps the time.
    if monitor.request(where, {"op": "kill", "signal": asked["signal"]}, timeout=5) is None:
        return
    forever = timeout < 0 or timeout > 10**9           # (a socket's timeout ends at ~292 years)
    if monitor.request(where, {"op": "wait"}, None if forever else max(timeout, 0.001)) is None:
        monitor.request(where, {"op": "kill", "signal": int(signals.SIGKILL)}, timeout=5)
        monitor.request(where, {"op": "wait"})
# <<< stop


def restarting_ended(directory: Path, timeout: float = 10.0) -> bool:
    """A container between two runs of its restart policy has no process to signal: its monitor
    sees the `stopped` file and records it as exited; wait until it has (exercise 06). Whether
    it runs (it started again just before)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = container.status(container.load(directory))
        except OSError:
            return False
        if state is not container.Status.RESTARTING or time.monotonic() > deadline:
            return state.has_process
        time.sleep(0.02)


def attach(directory: Path, stdin: bool, streams: tuple[str, ...] = ("stdout", "stderr")) -> tuple[socket.socket, bool]:
    """ContainerAttach: a connection to its monitor that has become its stream (attach.py) of
    `streams` (run -a), and whether it has a tty. Made before `start`, it misses none of the output."""
    fd, path = monitor.socket_path(run_dir(directory))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        asked = {"op": "attach", "stdin": stdin, "streams": list(streams)}
        reply = monitor.receive(sock) if monitor.send(sock, asked) else None
    except OSError:
        reply = None
    finally:
        os.close(fd)
    if reply is None or "Tty" not in reply:
        sock.close()
        raise NotRunning(directory.name)
    return sock, bool(reply["Tty"])


def resize(directory: Path, height: int, width: int) -> None:
    """ContainerResize: the window size of its pty (the kernel tells its processes: SIGWINCH)."""
    reply = monitor.request(run_dir(directory), {"op": "resize", "h": height, "w": width}, timeout=5)
    if reply is None or "Error" in reply:
        raise NotRunning(directory.name)


def prepare_start(directory: Path) -> socket.socket:
    """A container that has exited, made ready to run again (a new monitor waits for "start"),
    so that a client can attach first (`start -a`). Returns the new monitor's channel; closing it
    without "start" leaves the container as it was."""
    container.manually_stopped(directory, False)
    channel = spawn_monitor(directory.name)
    try:
        monitor.send(channel, {"Restart": True})
        answer(monitor.receive(channel))
    except BaseException:
        channel.close()
        raise
    return channel


def start_kept(directory: Path) -> None:
    """ContainerStart of a container not created by this process: a created one is started by
    its monitor; one that has exited runs again under a new monitor (detached); a running one is
    left as it is (docker's answer), a paused one refused (as docker's: it would stay paused)."""
    state = container.status(container.load(directory))
    if state is container.Status.PAUSED:
        raise Conflict("cannot start a paused container, try unpause instead")
    if state is container.Status.CREATED and container.run_dir(directory.name).exists():
        answer(monitor.request(run_dir(directory), {"op": "start"}, timeout=60))
        return                                          # (else no monitor: a start that failed)
    if not state.can_start:
        return
    container.manually_stopped(directory, False)        # started by hand: policies apply again
    channel = spawn_monitor(directory.name)
    with channel:
        monitor.send(channel, {"Restart": True})
        answer(monitor.receive(channel))
        monitor.send(channel, {"op": "start"})
        answer(monitor.receive(channel))


# >>> pause
def pause(directory: Path, frozen: bool) -> None:
    """docker pause / unpause: the cgroup freezer stops every process of the container where it
    is (no signal it could see or handle); the record says Paused."""
    from mini_runtime import cgroups

    with container.record_lock():
        record = container.load(directory)
        state = container.status(record)
        if frozen and not state.can_pause:
            raise (NotRunning(directory.name) if state is not container.Status.PAUSED
                   else Conflict(f"Container {directory.name} is already paused"))
        if not frozen and not state.can_unpause:
            raise Conflict(f"Container {directory.name} is not paused")
        cgroups.Cgroup(directory.name).freeze(frozen)
        status_now = container.Status.PAUSED if frozen else container.Status.RUNNING
        record["State"] = dict(record["State"], Paused=frozen, Status=status_now.value)
        container.save(directory, record)


def thawed(directory: Path) -> None:
    """Before a signal: a frozen process cannot act on one (not even die), so thaw it first."""
    if container.status(container.load(directory)) is container.Status.PAUSED:
        pause(directory, False)
# <<< pause


# >>> top
def top(directory: Path, ps_args: str) -> dict[str, Any]:
    """ContainerTop: {"Titles": [...], "Processes": [[...], ...]} of its cgroup's processes."""
    from mini_runtime import cgroups, top as tops

    if not container.status(container.load(directory)).has_process:
        raise NotRunning(directory.name)
    titles, rows = tops.top(sorted(cgroups.Cgroup(directory.name).processes()), ps_args)
    return {"Titles": titles, "Processes": rows}
# <<< top


def rename(directory: Path, new_name: str) -> None:
    """The record's name, then (07) the name its networks know it by: the other members'
    /etc/hosts, `network inspect`, and whoever joins next."""
    container.rename(directory, new_name)
    from mini_runtime.network import networks      # (not on the path of every other command)
    networks.rename(directory.name, container.load(directory)["Name"].lstrip("/"))


def logs_of(directory: Path, *, follow: bool, tail: int | None,
            since: int | None, until: int | None = None) -> Iterator[logs.Entry]:
    from mini_runtime import logs  # (the log's reader: not on exec's, stop's ... path)

    path = paths.log_file(directory)
    if not os.path.exists(path):
        return iter(())
    if not follow:
        return logs.read(path, tail, since, until)

    def stopped() -> bool:
        try:
            return not container.status(container.load(directory)).has_process
        except OSError:
            return True
    return logs.follow(path, stopped, tail, since, until)


def exec_check(directory: Path, text: str) -> dict[str, Any]:
    """ExecCreate's checks: a paused or stopped container runs no exec (docker's words)."""
    record = container.load(directory)
    state = container.status(record)
    if state is container.Status.PAUSED:
        raise Conflict(f"Container {text} is paused, unpause the container before exec")
    if not state.has_process:
        raise NotRunning(directory.name)
    return record


def exec_spec(record: dict[str, Any], config: dict[str, Any]) -> ProcessSpec:
    """The exec'd process: daemon_env's (with exec's -t), the container's environment, then -e;
    -w, else the container's working directory; -u, else the container's user (ExecConfig)."""
    defaults = record.get("Config") or {}
    env = daemon_env(defaults.get("Hostname") or "", bool(config.get("Tty")))
    env.update(item.partition("=")[::2] for item in defaults.get("Env") or [])
    env.update(item.partition("=")[::2] for item in config.get("Env") or [])
    cwd = config.get("WorkingDir") or defaults.get("WorkingDir") or "/"
    if not config.get("Cmd"):
        raise InvalidParameter("No exec command specified")
    if not cwd.startswith("/"):     # (docker's daemon takes it; runc refuses it at the start: 126)
        raise ExecError(f'exec failed: Cwd must be an absolute path ("{cwd}": -w names a directory '
                        "from the container's root, /)", 126)
    try:
        return checked(ProcessSpec(list(config["Cmd"]), env, cwd, config.get("User") or defaults.get("User") or ""))
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


def exec_in(directory: Path, text: str, config: dict[str, Any],
            console: Callable[[int], None] | None = None) -> int | None:
    """ExecStart: the command's exit code (None when detached)."""
    from mini_runtime import nsenter

    record = exec_check(directory, text)
    spec = exec_spec(record, config)
    try:
        running = json.loads((container.run_dir(directory.name) / "state.json").read_text())
    except (OSError, ValueError):
        raise NotRunning(directory.name) from None
    init = nsenter.open_init(directory.name, running["pid"], running.get("started"))
    return nsenter.run(directory.name, init, spec, stdin=bool(config.get("AttachStdin")),
                       detach=bool(config.get("Detach")),
                       console=console if config.get("Tty") else None,
                       size=tuple(config.get("ConsoleSize") or (0, 0)))
