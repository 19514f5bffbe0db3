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
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Iterable

from mini_runtime import syscalls
from mini_runtime.network import ports


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
    argv = [sys.executable, "-S", "-m", "mini_runtime.network.proxy", str(os.getpid()), container_ip, *specs]
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
    proxy = ports.Proxy(held, container_ip).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    proxy.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
