"""Chapter 06: a monitor per container (the job of containerd-shim and conmon).

`python -m mini_runtime.monitor ID --channel FD` is started by fork+exec in a session of its
own, so it outlives the `mini` that started it. It is the parent of the container's init, holds
the pipes of its stdout and stderr, writes them to docker's json-file log, serves `kill` and
`wait` on a unix socket under the run root, records how the container ended and cleans up.

One process, three phases, each an execve(2) of the one before (the pid stays, so the monitor
stays the parent of the container's init and the owner in its record):

    setup   full imports: runtime.create; "start" from the channel or the socket; runtime.start
    serve   lean (python -S, json/socket/select/signal and logs.py only): relay, log, kill,
            wait -- the part that lives as long as the container, paid once per container
    finish  full imports again: the exit code, OOM, runtime.cleanup; answer the waiters

Measured (5 running, Debian's python3.11, bytecode cached): the serve phase holds 4.4 MiB of
unique memory (USS) per container, against 4.0 MiB for a bare `python3 -S` importing json,
socket, select and signal. (Without cached bytecode, PYTHONDONTWRITEBYTECODE=1, each monitor
compiles logs.py and this file itself: 5.5 MiB.)

The channel is a socketpair with the `mini` that started it: the config in, the id and the pid
out. A `mini` killed at any point only closes it. A foreground `mini run` is its container's
monitor itself (backend/local.py): the same create_with_pipes, serve and finish, in-process,
relaying to its own stdout and stderr, so that `ps`, `logs` and `stop` see it as any other and
it starts as fast as before; it dies with its container's init, as `mini run` always did.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

SOCKET = "monitor.sock"


# --- shared by the CLI side and the monitor ------------------------------------------------------

def send(sock: socket.socket, message: dict) -> bool:
    """One JSON line; False if the other side is gone (a killed `mini`)."""
    try:
        sock.sendall(json.dumps(message).encode() + b"\n")
        return True
    except OSError:
        return False


def receive(sock: socket.socket) -> dict | None:
    """One JSON line, or None at EOF (the other side is gone)."""
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def socket_path(run_dir: str) -> tuple[int, str]:
    """A unix socket path is at most 107 bytes and the run root's may be longer: reach the
    directory through /proc/self/fd. Returns the directory's fd (close it) and the path."""
    fd = os.open(run_dir, os.O_PATH | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{SOCKET}"


def request(run_dir: str, message: dict, timeout: float | None = None) -> dict | None:
    """Ask a container's monitor; None if there is none (the container is not running) or it
    ended before answering."""
    try:
        fd, path = socket_path(run_dir)
    except OSError:
        return None                                     # no run dir: it is not running
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.settimeout(timeout)
        return receive(sock) if send(sock, message) else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()
        os.close(fd)


# --- phase 2: serve (lean: this is what stays in memory while the container runs) ------------

# >>> serve
def serve(pid: int, out_r: int, err_r: int, relay_out: int, relay_err: int, waiters: list[int],
          listener: socket.socket, log_path: str, monitor: bool = True) -> int:
    """Relay and log the container's output, answer kill and wait, until it has ended: its wait
    status. `waiters` grows with the connections that asked to wait. A monitor ignores the
    signals that would end it (only SIGKILL does); a foreground `mini` forwards them instead."""
    from mini_runtime.logs import LogWriter

    writer = LogWriter(log_path)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous_wakeup = signal.set_wakeup_fd(wake_w)      # SIGCHLD wakes select() up
    previous_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
    if monitor:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    streams = {out_r: ("stdout", relay_out), err_r: ("stderr", relay_err)}
    status, drain_until = None, 0.0
    while streams or status is None:
        if status is None:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status, drain_until = wait_status, time.monotonic() + 1.0
        if status is not None and (not streams or time.monotonic() > drain_until):
            break                                       # (a grandchild may hold a pipe open)
        timeout = None if status is None else 0.1
        ready = select.select([wake_r, listener, *streams], [], [], timeout)[0]
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
            elif fd is listener:
                answer(listener, pid if status is None else 0, waiters)
            else:
                data = os.read(fd, 65536)
                name, relay = streams[fd]
                if data:
                    writer.write(name, data)
                if not data or relay >= 0 and not relay_all(relay, data):
                    # At EOF; or nobody reads our relay any more (`mini run yes | head -2`): the
                    # container's pipe breaks too, so it gets SIGPIPE as if it wrote there itself.
                    del streams[fd]
                    os.close(fd)
    writer.close()
    signal.set_wakeup_fd(previous_wakeup)
    signal.signal(signal.SIGCHLD, previous_chld)
    for fd in (wake_r, wake_w, *streams):
        os.close(fd)
    return status
# <<< serve


def serve_then_finish(container_id: str, pid: int, out_r: int, err_r: int, listener_fd: int,
                      log_path: str, waiters: list[int]) -> None:
    """The monitor's phase 2; phase 3 (full imports again) replaces it when the container ends."""
    listener = socket.socket(fileno=listener_fd)
    status = serve(pid, out_r, err_r, -1, -1, waiters, listener, log_path)
    for fd in waiters:
        os.set_inheritable(fd, True)
    os.set_inheritable(listener.fileno(), True)
    os.execve(sys.executable, monitor_argv(container_id, "--finish", str(pid), str(status),
                                           str(listener.fileno()), ",".join(map(str, waiters))),
              monitor_env())


def relay_all(fd: int, data: bytes) -> bool:
    try:
        while data:
            data = data[os.write(fd, data):]
        return True
    except OSError:
        return False


def answer(listener: socket.socket, pid: int, waiters: list[int]) -> None:
    """One request on the socket: kill (a signal to the container's init) or wait (answered
    when it has ended, by the finish phase)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    conn.settimeout(2)
    try:
        message = receive(conn) or {}
    except ValueError:
        message = {}
    conn.settimeout(None)
    if message.get("op") == "wait":
        waiters.append(conn.detach())
        return
    if message.get("op") == "kill" and pid:
        try:
            os.kill(pid, int(message.get("signal", signal.SIGKILL)))
            send(conn, {"ok": True})
        except (OSError, ValueError) as e:
            send(conn, {"Error": str(e)})
    else:
        send(conn, {"Error": "is not running" if pid == 0 else "unknown request"})
    conn.close()


def monitor_argv(container_id: str, *args: str) -> list[str]:
    """The serve phase runs with -S: no site-packages (and its pages); the others need them."""
    lean = ["-S"] if args[:1] == ("--serve",) else []
    return [sys.executable, *lean, "-m", "mini_runtime.monitor", container_id, *args]


def monitor_env() -> dict[str, str]:
    """-S skips site-packages (and its pages): the package is found through PYTHONPATH."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=here + (":" + path if path else ""))


# --- phase 1: setup --------------------------------------------------------------------------

def create_with_pipes(config, container_id: str):  # -> (Created, out_r, err_r, listener)
    """runtime.create (or recreate, for `start`; config None) with the container's stdout and
    stderr on new pipes, its record pointing at its log, and its socket listening."""
    from mini_runtime import container, runtime

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_w, 1)                                   # what the container's init inherits
    os.dup2(err_w, 2)
    try:
        if config is None:
            created = runtime.recreate(container_id)
        else:
            created = runtime.create(config, container_id=container_id)
            runtime.keep_config(created)
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        for fd, saved_fd in zip((1, 2), saved):
            os.dup2(saved_fd, fd)
            os.close(saved_fd)
        os.close(out_w)
        os.close(err_w)
    record = container.load(created.directory)
    container.save(created.directory, dict(record, LogPath=log_path(created.directory)))
    dir_fd, path = socket_path(str(container.run_dir(container_id)))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(16)
    finally:
        os.close(dir_fd)
    return created, out_r, err_r, listener


def log_path(directory) -> str:
    return str(directory / f"{directory.name}-json.log")


# --- phase 1: setup --------------------------------------------------------------------------

def setup(container_id: str, channel_fd: int) -> int:
    """Create the container with its output on our pipes; start it when told; then serve."""
    from mini_runtime import runtime
    from mini_runtime.config import ContainerConfig

    channel = socket.socket(fileno=channel_fd)
    asked = receive(channel)
    if asked is None:
        return 0                                        # `mini` died before it asked anything
    config = ContainerConfig(**asked["Config"]) if "Config" in asked else None
    try:
        created, out_r, err_r, listener = create_with_pipes(config, container_id)
    except Exception as e:  # noqa: BLE001 - the error goes to `mini`, which says it
        send(channel, {"Error": error_of(e)})
        return 0
    send(channel, {"Id": container_id})
    waiters: list[int] = []
    op, starter = wait_for_start(channel, listener, waiters)
    if op == "remove":                                  # `rm` of a created container
        listener.close()
        runtime.cleanup(created, None)
        send(starter, {"ok": True})
        return 0
    try:
        runtime.start(created)
    except Exception as e:  # noqa: BLE001
        listener.close()
        runtime.cleanup(created, None)
        send(starter, {"Error": error_of(e)})
        return 0
    send(starter, {"Id": container_id, "Pid": created.child.pid})
    waiters.append(starter.detach())                    # (the channel: a foreground wait, later)
    fds = [out_r, err_r, listener.detach(), *waiters]
    for fd in fds:
        os.set_inheritable(fd, True)
    os.execve(sys.executable, monitor_argv(container_id, "--serve", str(created.child.pid), str(out_r),
                                           str(err_r), str(fds[2]), log_path(created.directory),
                                           ",".join(map(str, waiters))), monitor_env())
    return 0  # (not reached)


def wait_for_start(channel: socket.socket, listener: socket.socket,
                   waiters: list[int]) -> tuple[str, socket.socket]:
    """A created container waits for "start": from the `mini` that created it (its channel),
    or from any other on the socket (`mini create`, then `mini start`), or for "remove"; a
    `mini` that went away leaves it created, as docker's does. Returns what and who asked."""
    watched = [listener, channel]
    while True:
        for sock in select.select(watched, [], [])[0]:
            if sock is channel:
                asked = receive(channel)
                if asked is None:
                    watched.remove(channel)
                elif asked.get("op") == "start":
                    return "start", channel
                continue
            try:
                conn, _ = listener.accept()
                conn.settimeout(2)
                asked = receive(conn) or {}
                conn.settimeout(None)
            except (OSError, ValueError):
                continue
            if asked.get("op") in ("start", "remove"):
                return asked["op"], conn
            if asked.get("op") == "wait":
                waiters.append(conn.detach())
                continue
            send(conn, {"Error": "is not running"})
            conn.close()


def error_of(e: BaseException) -> dict:
    """An error, as the channel carries it: its kind (errors.py's class), text and exit code."""
    from mini_runtime import errors

    kind = next((k.__name__ for k in type(e).__mro__
                 if isinstance(getattr(errors, k.__name__, None), type)), "MiniError")
    kind = kind if issubclass(getattr(errors, kind), errors.MiniError) else "System"
    return {"Kind": kind, "Message": str(e) if str(e) else kind,
            "ExitCode": getattr(e, "exit_code", 125)}


# --- phase 3: finish -------------------------------------------------------------------------

def finish(created, status: int, listener: socket.socket, waiters: list[int]) -> dict:
    """Record how it ended (atomically), clean up, answer whoever waits: ContainerWait's answer."""
    from mini_runtime import runtime

    exited = runtime.ended(created, status)
    warning = runtime.cleanup(created, exited)
    result = {"StatusCode": exited.code, "OOMKilled": exited.oom,
              "Error": {"Message": warning} if warning else None}
    for fd in waiters:
        with socket.socket(fileno=fd) as conn:
            send(conn, result)
    listener.setblocking(False)
    while True:                                         # asked while we were cleaning up
        try:
            conn, _ = listener.accept()
        except OSError:
            break
        with conn:
            conn.settimeout(1)
            asked = receive(conn) or {}
            send(conn, result if asked.get("op") == "wait" else {"Error": "is not running"})
    listener.close()
    return result


def finish_main(container_id: str, pid: int, status: int, listener_fd: int, waiters: list[int]) -> None:
    """Phase 3: the container as phase 1 made it, from its record's side files."""
    from mini_runtime import cgroups, container, process, runtime
    from mini_runtime.config import ContainerConfig

    with open(container.containers_dir() / container_id / runtime.CONFIG) as f:
        config = ContainerConfig(**json.load(f))
    created = runtime.Created(container_id, container.containers_dir() / container_id, config,
                              cgroups.Cgroup(container_id), process.Child(pid, -1, -1))
    finish(created, status, socket.socket(fileno=listener_fd), waiters)


def main(argv: list[str]) -> int:
    container_id, phase, rest = argv[0], argv[1], argv[2:]
    if phase == "--serve":
        pid, out_r, err_r, listener, path, waiters = rest
        serve_then_finish(container_id, int(pid), int(out_r), int(err_r), int(listener), path,
                          [int(fd) for fd in waiters.split(",") if fd])
    elif phase == "--finish":
        pid, status, listener, waiters = rest
        finish_main(container_id, int(pid), int(status), int(listener),
                    [int(fd) for fd in waiters.split(",") if fd])
    else:                                               # --channel FD
        return setup(container_id, int(rest[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
