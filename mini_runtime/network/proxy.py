"""The userland proxy as a small process of its own, as docker runs `docker-proxy`.

The container's monitor starts it when the container starts, only if the container publishes
ports, and kills it when the container ends. Why not a thread in the monitor: the monitor's
serve phase is kept lean (a few MiB of unique memory per container, see monitor.py), and
threads plus sockets would make every container pay for what few use; a separate process costs
only the containers that publish ports, and its death (or the monitor's) is easy to see.
Measured (Debian's python3.11, bytecode cached, in the test harness): one proxy per container
whatever the number of ports, 6.9 MiB of unique memory (USS) with one port and with four (each
port adds a thread and a socket, a few KiB); the monitor's serve phase stays at 4.6 MiB with or
without published ports. (docker runs one docker-proxy per port.)

    python -S -m mini_runtime.network.proxy PARENT_PID CONTAINER_IP FD:IP:HOSTPORT:PORT:PROTO...

Each FD is a host port the runtime bound at create (ports.hold) and handed down by fork+exec.
It dies with its parent (PR_SET_PDEATHSIG): a SIGKILLed monitor leaves no proxy behind.

Why a proxy at all: a connection to 127.0.0.1:8080 never passes the DNAT rules (see nat.py), so
it arrives at the held port's listening socket, and the proxy copies bytes to and from the
container's address. Two threads per TCP connection (one per direction) keep the copying easy
to read; UDP has one upstream socket per client.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterable

from mini_runtime import syscalls
from mini_runtime.network import ports
from mini_runtime.network.ports import Held


CHUNK = 65536
UDP_IDLE = 90.0     # seconds without a datagram before a UDP flow is forgotten (docker: 90)


# >>> proxy
class Proxy:
    """Copies connections (TCP) and datagrams (UDP) from the held host ports to the container.
    `start()` runs it in daemon threads; `close()` stops it and lets the ports go."""

    def __init__(self, held: Iterable[Held], container_ip: str) -> None:
        self.held = list(held)
        self.container_ip = container_ip
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> "Proxy":
        for h in self.held:
            target = self.accept_loop if h.binding.proto == "tcp" else self.udp_loop
            self.spawn(target, h)
        return self

    def spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def accept_loop(self, h: Held) -> None:
        while not self.closed.is_set():
            try:
                client, _ = h.sock.accept()
            except OSError:
                return                               # close() shut the listening socket
            self.spawn(self.relay, client, h.binding.container_port)

    def relay(self, client: socket.socket, port: int) -> None:
        """One connection: a thread for each direction; closed once both have ended."""
        self.track(client)
        try:
            upstream = socket.create_connection((self.container_ip, port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            self.untrack(client)                     # nothing listens in the container
            return
        self.track(upstream)
        back = threading.Thread(target=self.pump, args=(upstream, client), daemon=True)
        back.start()
        self.pump(client, upstream)
        back.join()
        self.untrack(client, upstream)

    def pump(self, source: socket.socket, sink: socket.socket) -> None:
        """One direction of a connection; EOF is passed on as a half-close."""
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            for s in (source, sink):
                self.shut(s)
# <<< proxy

    def udp_loop(self, h: Held) -> None:
        flows: dict[tuple, socket.socket] = {}
        h.sock.settimeout(0.2)
        while not self.closed.is_set():
            try:
                data, client = h.sock.recvfrom(CHUNK)
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = flows.get(client)
            if upstream is None or upstream.fileno() < 0:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                upstream.connect((self.container_ip, h.binding.container_port))
                flows[client] = upstream
                self.track(upstream)
                self.spawn(self.udp_replies, h.sock, upstream, client)
            try:
                upstream.send(data)
            except OSError:
                pass

    def udp_replies(self, listener: socket.socket, upstream: socket.socket, client: tuple) -> None:
        upstream.settimeout(0.2)
        idle = 0.0
        while not self.closed.is_set() and idle < UDP_IDLE:
            try:
                listener.sendto(upstream.recv(CHUNK), client)
                idle = 0.0
            except socket.timeout:
                idle += 0.2
            except OSError:
                break
        self.untrack(upstream)

    def track(self, *sockets: socket.socket) -> None:
        with self.lock:
            self.open.update(sockets)

    def untrack(self, *sockets: socket.socket) -> None:
        with self.lock:
            self.open.difference_update(sockets)
        for s in sockets:
            s.close()

    @staticmethod
    def shut(s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Stop: no new connection, the open ones cut, the host ports free again."""
        self.closed.set()
        for h in self.held:
            self.shut(h.sock)                        # wakes accept()
        with self.lock:
            for s in self.open:
                self.shut(s)
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout=2)
        with self.lock:
            for s in self.open:
                s.close()
            self.open.clear()
        ports.release(self.held)


# >>> spawn-proxy
def spawn(held: Iterable[ports.Held], container_ip: str) -> int:
    """fork+exec the proxy with the held sockets as its only fds; returns its pid. The caller
    may close its own copies of the sockets afterwards: the proxy holds the ports now."""
    held = list(held)
    specs = [f"{h.sock.fileno()}:{h.binding.host_ip}:{h.binding.host_port}:{h.binding.container_port}:"
             f"{h.binding.proto}" for h in held]
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, PYTHONPATH=here + (":" + path if path else ""))
    argv = [sys.executable, "-S", "-P", "-m", "mini_runtime.network.proxy", str(os.getpid()), container_ip, *specs]  # (-P: monitor_argv)
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            keep = tuple(h.sock.fileno() for h in held)
            syscalls.close_other_fds(keep=(0, 1, 2, *keep))
            for fd in keep:
                os.set_inheritable(fd, True)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    return pid
# <<< spawn-proxy


def stop(pid: int) -> None:
    """Kill the proxy and reap it (if we are its parent): its sockets, so the ports, go with it."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def main(argv: list[str]) -> int:
    parent, container_ip, specs = int(argv[0]), argv[1], argv[2:]
    syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        return 0                                    # the monitor died before we were armed
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    held = []
    for spec in specs:
        fd, host_ip, host_port, port, proto = spec.split(":")
        held.append(ports.adopt(ports.PortBinding(host_ip, int(host_port), int(port), proto), int(fd)))
    proxy = Proxy(held, container_ip).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    proxy.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
