"""Chapter 06: the monitor's first phase (full imports): create the container with its stdio on
our pipes or on a pty, wait for "start" (clients may attach meanwhile: none of a short-lived
container's output is lost), start it, and replace ourselves by the lean serve phase.

    -t          a pty of the container's own /dev/pts, made by its init once its /dev is the
                container's (process.take_terminal): until then the init's stdin is a unix
                socket to us, on which we send the window size before "go" and receive the
                pty's master (runc's --console-socket). The slave is its stdin, stdout, stderr
                and controlling terminal; we keep the master: output is logged as "stdout"
    -i, no -t   a pipe to its stdin, kept by us for attached clients; pipes from stdout, stderr
    neither     pipes from stdout and stderr; its stdin is /dev/null, as docker's (not our
                terminal: `mini run busybox` ends at once, `mini run -i busybox` is a shell)
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys

from mini_runtime import attach, container, logs, monitor, paths, process, runtime
from mini_runtime.config import ContainerConfig
from mini_runtime.errors import InvalidParameter
from mini_runtime.monitor import monitor_env, receive, send, socket_path


Stdio = tuple[tuple[int, int, int], tuple[int, int, int], list[int], "socket.socket | None"]


def stdio_for(config: ContainerConfig) -> Stdio:
    """(what the child gets as 0, 1, 2; what we keep: out, err, in; what we close after; with -t
    our end of the console socket: out and in are the pty master once the child has sent it)."""
    if config.tty:
        ours, theirs = process.console_socket()
        null = os.open(os.devnull, os.O_RDWR)
        child = theirs.detach()
        return (child, null, null), (-1, -1, -1), [child, null], ours
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if config.open_stdin else (os.open(os.devnull, os.O_RDONLY), -1)
    return (in_r, out_w, err_w), (out_r, err_r, in_w), [out_w, err_w, in_r], None


def create_with_pipes(config, container_id: str, again: bool = False):  # -> (Created, out_r, err_r, in_w, listener, console)
    """runtime.create (or recreate, for `start`; config None) with the container's stdio on new
    pipes or a console socket (-t), its record pointing at its log, and its socket listening."""
    if config is None:
        with open(container.containers_dir() / container_id / runtime.CONFIG) as f:
            wanted = ContainerConfig(**json.load(f))
    else:
        wanted = config
    policy = restart_policy(config) if config is not None else None
    theirs, ours, after, console = stdio_for(wanted)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    for fd, source in enumerate(theirs):
        os.dup2(source, fd)                             # what the container's init inherits
    try:
        if config is None:
            created = runtime.recreate(container_id, again=again)
        else:
            created = runtime.create(config, container_id=container_id)
            runtime.keep_config(created)
    except BaseException:
        for fd in {fd for fd in ours if fd >= 0}:
            os.close(fd)
        if console is not None:
            console.close()
        raise
    finally:
        for fd, saved_fd in enumerate(saved):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
        for fd in after:
            os.close(fd)
    if policy is not None:                              # (its LogPath is in the record already)
        record = container.load(created.directory)
        record["HostConfig"]["RestartPolicy"] = {"Name": policy[0], "MaximumRetryCount": policy[1]}
        container.save(created.directory, record)
    # Made now: the serve phase opens it after `run -d` may have returned, and a `logs -f`
    # that found no file would have ended at once with nothing.
    os.close(logs.open_log(paths.log_file(created.directory)))
    dir_fd, path = socket_path(str(container.run_dir(container_id)))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(16)
    finally:
        os.close(dir_fd)
    return (created, *ours, listener, console)


# >>> start-with-terminal
def start_with_terminal(created: runtime.Created, console: socket.socket | None,
                        size: tuple[int, int]) -> int:
    """runtime.start; with -t, the window size goes to the init first (it sets it before its
    command runs) and the pty master comes back, sent before its execve: returned (else -1)."""
    if console is None:
        runtime.start(created)
        return -1
    with console:
        process.send_size(console, *size)
        runtime.start(created)                          # "go": the init makes the pty ...
        master = process.receive_terminal(console)      # ... and has sent it before execve
    return -1 if master is None else master
# <<< start-with-terminal


def setup(container_id: str, channel_fd: int) -> int:
    """Create the container with its output on our pipes; start it when told; then serve."""
    channel = socket.socket(fileno=channel_fd)
    asked = receive(channel)
    if asked is None:
        return 0                                        # `mini` died before it asked anything
    config = ContainerConfig(**asked["Config"]) if "Config" in asked else None
    try:
        created, out_r, err_r, in_w, listener, console = create_with_pipes(config, container_id)
    except Exception as e:  # noqa: BLE001 - the error goes to `mini`, which says it
        send(channel, {"Error": error_of(e)})
        return 0
    send(channel, {"Id": container_id})
    waiters: list[int] = []
    clients = attach.Clients(created.config.tty, in_w, created.config.stdin_once)
    watched = runtime.watched(created)
    op, starter = wait_for_start(channel, listener, waiters, clients, restart=config is None, watched=watched)
    for fd in watched:
        os.close(fd)
    if op in ("remove", "abandon", "gone"):             # `rm` of a created container; or the
        listener.close()                                # `start -a` of an exited one went away
        clients.close()
        if console is not None:
            console.close()
        if op == "gone":                                # 03 07: what it joins has ended
            runtime.given_up(created)
        elif op == "abandon":
            runtime.kill_and_reap(created.child.pid)
            created.group.remove()
            previous = container.load(created.directory)["State"].get("ExitCode", 0)
            container.finish(created.directory, previous, keep=True)
        else:
            runtime.cleanup(created, None)
            send(starter, {"ok": True})
        return 0
    try:
        master = start_with_terminal(created, console, clients.size)
    except Exception as e:  # noqa: BLE001
        listener.close()
        clients.close()
        runtime.not_started(created, e)                 # as docker: it stays created, with the error
        send(starter, {"Error": error_of(e)})
        return 0
    if console is not None:
        out_r = in_w = clients.stdin = master            # -t: the pty, from now on
    send(starter, {"Id": container_id, "Pid": created.child.pid})
    waiters.append(starter.detach())                    # (the channel: a foreground wait, later)
    return serve_phase(created, out_r, err_r, in_w, listener, waiters, clients)


def restart_policy(config: ContainerConfig) -> tuple[str, int] | None:
    """`--restart`, checked before anything is created: (name, count), or None for "no"."""
    if config.restart in ("", "no"):
        return None
    try:
        return monitor.parse_restart(config.restart, config.remove)  # exercise 06's hook
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


def restart(container_id: str) -> int:
    """A restart policy's run (exercise 06): the finish phase decided to run the container again
    (restart_after), and became this. Nobody attaches or waits yet; if it cannot start, it stays
    exited."""
    directory = container.containers_dir() / container_id
    with container.record_lock():                       # `stop`, `kill` or `rm -f` came first
        stopped = (directory / "stopped").exists() or not directory.is_dir()
        if stopped and directory.is_dir():
            container.finish(directory, container.load(directory)["State"].get("ExitCode", 0), keep=True)
    if stopped:
        return 0
    try:
        created, out_r, err_r, in_w, listener, console = create_with_pipes(None, container_id, again=True)
    except Exception:  # noqa: BLE001 - recreate has recorded it as exited
        return 0
    clients = attach.Clients(created.config.tty, in_w, created.config.stdin_once)
    try:
        master = start_with_terminal(created, console, clients.size)
        if console is not None:
            out_r = in_w = clients.stdin = master        # -t: the pty, from now on
    except Exception:  # noqa: BLE001 - as a failed `start`: it stays exited
        listener.close()
        clients.close()
        previous = container.load(created.directory)["State"].get("ExitCode", 0)
        runtime.cleanup(created, runtime.Exited(previous, False))
        return 0
    return serve_phase(created, out_r, err_r, in_w, listener, [], clients)


def serve_phase(created, out_r: int, err_r: int, in_w: int, listener: socket.socket, waiters: list[int],
                clients: attach.Clients) -> int:
    """Replace ourselves by the lean serve phase, handing over what it serves."""
    container_id = created.id
    fds = [fd for fd in (out_r, err_r, in_w, listener.fileno(), *waiters) if fd >= 0]
    for fd in fds:
        os.set_inheritable(fd, True)
    state = {"pid": created.child.pid, "out": out_r, "err": err_r, "in": in_w,
             "listener": listener.detach(), "log": paths.log_file(created.directory), "waiters": waiters,
             "attached": clients.handed_over(), "tty": created.config.tty,
             "once": created.config.stdin_once}
    os.execve(sys.executable, monitor.monitor_argv(container_id, "--serve", json.dumps(state)), monitor_env())
    return 0  # (not reached)


def wait_for_start(channel: socket.socket, listener: socket.socket, waiters: list[int],
                   clients: attach.Clients, restart: bool = False,
                   watched: list[int] = ()) -> tuple[str, socket.socket | None]:
    """A created container waits for "start": from the `mini` that created it (its channel),
    or from any other on the socket (`mini create`, then `mini start`), or for "remove"; a
    `mini` that went away leaves it created, as docker's does (but an exited container that was
    being started again stays exited: "abandon"). Clients may attach (and set the pty's size)
    meanwhile. Returns what and who asked; "gone" if a process `watched` (pidfds) ended: its
    child, or the init of a container it joins (sharing.watched)."""
    socks = [listener, channel]
    while True:
        ready = select.select([*socks, *watched], [], [])[0]
        if set(ready) & set(watched):
            return "gone", None
        for sock in ready:
            if sock is channel:
                asked = receive(channel)
                if asked is None:
                    socks.remove(channel)
                    if restart:
                        return "abandon", channel
                elif asked.get("op") == "start":
                    return "start", channel
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                asked = receive(conn) or {}
            except ValueError:
                asked = {}                              # (answered below: not a request)
            conn.settimeout(None)
            if asked.get("op") in ("start", "remove"):
                return asked["op"], conn
            if asked.get("op") == "wait":
                waiters.append(conn.detach())
                continue
            if asked.get("op") == "attach" and clients.asked_streams(asked) is not None:
                if send(conn, {"Tty": clients.tty}):
                    clients.add(conn, bool(asked.get("stdin")), clients.asked_streams(asked))
                continue
            if asked.get("op") == "resize" and clients.tty:
                try:
                    clients.size = attach.window_size(asked)   # for the init
                    send(conn, {"ok": True})
                except ValueError as e:
                    send(conn, {"Error": str(e)})
            else:
                send(conn, {"Error": "is not running"})
            conn.close()


def error_of(e: BaseException) -> dict:
    """An error, as the channel carries it: its kind (errors.py's class), text and exit code."""
    from mini_runtime import errors

    kind = next((k.__name__ for k in type(e).__mro__
                 if isinstance(getattr(errors, k.__name__, None), type)), "MiniError")
    kind = kind if issubclass(getattr(errors, kind), errors.MiniError) else "System"
    message = f"NotImplementedError: {e}" if isinstance(e, NotImplementedError) else str(e)  # (a TODO left)
    return {"Kind": kind, "Message": message if str(e) else kind,
            "ExitCode": getattr(e, "exit_code", 125)}
