"""Chapter 06: a monitor per container (the job of containerd-shim and conmon).

`python -m mini_runtime.monitor ID --channel FD` is started by fork+exec in a session of its
own, so it outlives the `mini` that started it. It is the parent of the container's init, holds
the pipes of its stdio or its pty's master (-t), writes its output to docker's json-file log,
serves `kill`, `wait`, `attach` and `resize` on a unix socket under the run root (attach.py),
records how the container ended and cleans up.

One process, three phases, each an execve(2) of the one before (the pid stays, so the monitor
stays the parent of the container's init and the owner in its record):

    setup   full imports (monitor_setup.py): runtime.create; "start" from the channel or the
            socket (clients may attach before); runtime.start
    serve   lean (json/socket/select/signal/fcntl/termios, logs.py and attach.py only): relay,
            log, attach, kill, wait -- the part that lives as long as the container, paid
            once per container

All three run `python -S` (no `site`: no .pth file runs, nothing it imports stays in memory),
with the paths site would add passed on in PYTHONPATH (monitor_env).
    finish  full imports again: the exit code, OOM, runtime.cleanup; answer the waiters

Measured (4 running, two with -t, Debian's python3.11, bytecode cached): the serve phase holds
4.6 MiB of unique memory (USS) per container, against 4.0 MiB for a bare `python3 -S` importing
json, socket, select and signal (4.1 with fcntl and termios). (Without cached bytecode,
PYTHONDONTWRITEBYTECODE=1, each monitor compiles logs.py, attach.py and this file: 5.6 MiB.)

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
    """One JSON line, or None at EOF (the other side is gone); ValueError if it is not a JSON
    object: a monitor must outlive whatever a client sends it."""
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a request is a JSON object")
    return message


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
          listener: socket.socket, log_path: str, monitor: bool = True, clients=None) -> int:
    """Relay and log the container's output (to attached `clients` too: attach.Clients), answer
    kill, wait, attach and resize, until it has ended: its wait status. `waiters` grows with the
    connections that asked to wait. A monitor ignores the signals that would end it (only
    SIGKILL does); a foreground `mini` forwards them instead. (err_r is -1 with a pty.)"""
    from mini_runtime.attach import Clients
    from mini_runtime.logs import LogWriter

    clients = clients or Clients(False)

    writer = LogWriter(log_path)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    previous_wakeup = signal.set_wakeup_fd(wake_w)      # SIGCHLD wakes select() up
    previous_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
    if monitor:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    streams = {fd: how for fd, how in ((out_r, ("stdout", relay_out)), (err_r, ("stderr", relay_err)))
               if fd >= 0}
    status, drain_until = None, 0.0
    while streams or status is None:
        if status is None:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status, drain_until = wait_status, time.monotonic() + 1.0
        if status is not None and (not streams or time.monotonic() > drain_until):
            break                                       # (a grandchild may hold a pipe open)
        timeout = None if status is None else 0.1
        ready, writable, _ = select.select([wake_r, listener, *streams, *clients.readers()],
                                           clients.writers(), [], timeout)
        if writable:
            clients.flush()
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
            elif fd is listener:
                answer(listener, pid if status is None else 0, waiters, clients)
            elif isinstance(fd, socket.socket):
                clients.read_from(fd)
            else:
                try:
                    data = os.read(fd, 65536)
                except OSError:                         # EIO: the pty's slave is closed
                    data = b""
                name, relay = streams[fd]
                if data:
                    writer.write(name, data)
                    clients.output(name, data)
                if not data or relay >= 0 and not relay_all(relay, data):
                    # At EOF; or nobody reads our relay any more (`mini run yes | head -2`): the
                    # container's pipe breaks too, so it gets SIGPIPE as if it wrote there itself.
                    del streams[fd]
                    os.close(fd)
                    if fd == clients.stdin:
                        clients.stdin_gone()
    clients.close()
    writer.close()
    signal.set_wakeup_fd(previous_wakeup)
    signal.signal(signal.SIGCHLD, previous_chld)
    for fd in (wake_r, wake_w, *streams):
        os.close(fd)
    return status
# <<< serve


def serve_then_finish(container_id: str, state: dict) -> None:
    """The monitor's phase 2; phase 3 (full imports again) replaces it when the container ends.
    `state`: what phase 1 handed over (monitor_setup.setup)."""
    from mini_runtime.attach import Clients

    clients = Clients(state["tty"], state["in"], state["once"])
    clients.take(state["attached"])
    if clients.stdin >= 0:
        os.set_blocking(clients.stdin, False)           # (a container that does not read)
    listener, waiters = socket.socket(fileno=state["listener"]), state["waiters"]
    status = serve(state["pid"], state["out"], state["err"], -1, -1, waiters, listener, state["log"],
                   clients=clients)
    disarm()
    pid = state["pid"]
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


def answer(listener: socket.socket, pid: int, waiters: list[int], clients) -> None:
    """One request on the socket: kill (a signal to the container's init), stop (a signal now,
    SIGKILL when its grace period is over: `stop_later`), wait (answered when it has ended, by
    the finish phase), attach (the connection joins `clients`), resize."""
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
    if message.get("op") == "attach" and pid and clients.asked_streams(message) is not None:
        if send(conn, {"Tty": clients.tty}):
            clients.add(conn, bool(message.get("stdin")), clients.asked_streams(message))
        return
    if message.get("op") == "resize" and pid and clients.tty and clients.stdin >= 0:
        from mini_runtime.attach import resize, window_size

        try:
            resize(clients.stdin, *window_size(message))
            send(conn, {"ok": True})
        except (OSError, ValueError) as e:
            send(conn, {"Error": str(e)})
    elif message.get("op") in ("kill", "stop") and pid:
        try:
            grace = float(message.get("timeout", -1)) if message["op"] == "stop" else -1.0
            os.kill(pid, int(message.get("signal", signal.SIGKILL)))
            if 0 <= grace <= 10**9:                     # (a negative one: no SIGKILL at all)
                stop_later(pid, grace)
            send(conn, {"ok": True})
        except (OSError, ValueError, TypeError) as e:     # (TypeError: int() of a list)
            send(conn, {"Error": str(e)})
    else:
        send(conn, {"Error": "is not running" if pid == 0 else "unknown or malformed request"})
    conn.close()


def stop_later(pid: int, grace: float) -> None:
    """`stop`'s SIGKILL, `grace` seconds from now, sent by this process whether or not the client
    that asked is still there. The kernel keeps the time (setitimer(2): SIGALRM, which wakes the
    serve loop's select like SIGCHLD), and the SIGKILL goes through a pidfd: it cannot reach
    another process that was given the pid of an init reaped meanwhile (pidfd_send_signal(2)).
    Disarmed before the finish phase's execve, which would keep the timer (`disarm`)."""
    pidfd = os.pidfd_open(pid)

    def kill(*_: object) -> None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass                                        # it has ended (and was reaped)
    signal.signal(signal.SIGALRM, kill)
    signal.setitimer(signal.ITIMER_REAL, max(grace, 0.001))   # (0 would disarm it)


def disarm() -> None:
    """No `stop` SIGKILL pending any more (its timer would survive an execve, and SIGALRM's
    default action ends a process)."""
    signal.setitimer(signal.ITIMER_REAL, 0)


def monitor_argv(container_id: str, *args: str) -> list[str]:
    """Every phase runs with -S: no `site`, so no .pth file runs (and no pages of what they
    import stay); monitor_env() gives the paths site would have added. And with -P: `-m` would
    put the current directory first on sys.path, so a `mini_runtime/` there (another checkout,
    or anyone's files in /tmp) would be the code this root process runs."""
    # (__spec__.name: this module, whoever runs it with -m: exercises/plugged.py for a learner's)
    return [sys.executable, "-S", "-P", "-m", __spec__.name, container_id, *args]


def monitor_env() -> dict[str, str]:
    """PYTHONPATH: this package's directory, then every directory on our own sys.path, in its
    order (dist-packages for the nftables binding in setup and finish): what `site` would add."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, PYTHONPATH=":".join([here] + [p for p in sys.path[1:] if p and p != here]))


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
            try:
                asked = receive(conn) or {}
            except ValueError:
                asked = {}
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
    result = finish(created, status, socket.socket(fileno=listener_fd), waiters)
    if config.restart not in ("", "no") and restart_after(created.directory, result["StatusCode"]):
        os.execve(sys.executable, monitor_argv(container_id, "--restart"), monitor_env())


# Exercise 06's extension, `--restart`: the plumbing only. The monitor calls these two; the
# exercise (exercises/06_lifecycle/README.md) writes them, and the grader plugs them in.
def parse_restart(value: str, auto_remove: bool) -> tuple[str, int]:
    """`--restart POLICY` (anything but "no") as docker reads it: (name, MaximumRetryCount);
    ValueError with docker's words for a bad one. Called before anything is created."""
    from mini_runtime.errors import Exercise

    raise Exercise("--restart", "06_lifecycle")


def restart_after(directory, exit_code: int) -> bool:
    """In the finish phase, once the exit is recorded and cleaned up: whether the container's
    restart policy runs it again (then the monitor recreates and starts it at once), and the
    wait before (docker's backoff). `directory` is the container's (a pathlib.Path)."""
    from mini_runtime.errors import Exercise

    raise Exercise("--restart", "06_lifecycle")


def main(argv: list[str]) -> int:
    container_id, phase, rest = argv[0], argv[1], argv[2:]
    if phase == "--serve":
        serve_then_finish(container_id, json.loads(rest[0]))
    elif phase == "--restart":                         # its restart policy's (finish_main)
        from mini_runtime.monitor_setup import restart

        return restart(container_id)
    elif phase == "--finish":
        pid, status, listener, waiters = rest
        finish_main(container_id, int(pid), int(status), int(listener),
                    [int(fd) for fd in waiters.split(",") if fd])
    else:                                               # --channel FD
        from mini_runtime.monitor_setup import setup

        return setup(container_id, int(rest[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
