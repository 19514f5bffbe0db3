"""Published ports: docker's `-p` and `-P`, and the host ports they hold (proxy.py serves them).

`-p` forms (docker's): `CONTAINER`, `HOST:CONTAINER`, `IP:HOST:CONTAINER`, `IP::CONTAINER`, each
with an optional `/tcp` (default) or `/udp` (docker's `/sctp` is refused: not yet), and ranges
`8000-8002:80-82` or `80-82`. An empty host port (or 0) means "any": a free one from the
kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), reported back; a host range
for one container port (`8088-8089:80`), the first free one of the range. `-P` publishes every
`ExposedPorts` entry of the image on any free port.

A host port is *held* by binding a socket to it, as docker-proxy does: the bind itself says
whether the port is free (no race with a check first), and once held nobody else can take it.
The same sockets then serve the userland proxy (proxy.py).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from pathlib import Path

from mini_runtime.errors import Conflict, InvalidParameter
from mini_runtime.tuples import named_tuple

PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@named_tuple
class PortBinding:
    """One published port; host_port 0 = any free port, host_ip "" = every address; with
    host_end, the first free port of host_port..host_end."""
    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"
    host_end: int = 0

    @property
    def key(self) -> str:
        """The Engine API's name of the container port: "80/tcp"."""
        return f"{self.container_port}/{self.proto}"


# --- parsing -----------------------------------------------------------------------------------

def port_range(text: str, what: str) -> list[int]:
    """Go's nat.ParsePortRange: "80" or "8000-8001", each 0-65535 in ASCII digits, as docker's
    strconv reads them (Python's int() would take " 80", "+80", "8_0" and "٨٠" too); like Go's,
    it reads two parts and ignores a third ("1-2-3" is 1-2). Port 0 passes, as in docker's
    client: publishing refuses it later (hold). The messages are docker 20.10's (go-connections
    then wrote "Invalid containerPort", capital I; later releases write "invalid")."""
    parts = [p.lstrip("0") or p[:1] for p in (text.split("-") if "-" in text else [text, text])[:2]]
    if not all(p.isascii() and p.isdigit() and len(p) <= 5 and int(p) <= 65535 for p in parts) \
            or int(parts[1]) < int(parts[0]):
        raise InvalidParameter(f"Invalid {what}: {text}")
    return list(range(int(parts[0]), int(parts[1]) + 1))


def check_proto(proto: str, spec: str) -> str:
    """tcp or udp; docker's sctp too, which mini cannot publish yet: said so, not "invalid"."""
    if proto == "sctp":
        raise InvalidParameter(f"{spec}: sctp ports: mini publishes tcp and udp only (docker publishes sctp too)")
    if proto not in ("tcp", "udp"):
        raise InvalidParameter(f"Invalid proto: {proto}")
    return proto


def is_ipv6(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, text)
        return True
    except OSError:
        return False


# >>> parse-port
def parse(spec: str) -> list[PortBinding]:
    """One `-p` value -> its bindings (a range gives several; a host range for one container
    port gives one, on the first free port of that range), checked in the order and words of
    docker's client (nat.ParsePortSpec)."""
    rest, _, proto = spec.partition("/")
    proto = (proto.split("/")[0] or "tcp").lower()      # (Go's SplitProtoPort: "80/tcp/x" is tcp)
    address = rest[1:rest.find("]")] if rest.startswith("[") else rest.rsplit(":", 2)[0]
    if rest.count(":") > 2 and is_ipv6(address):    # [::]:8080:80, [::1]::80, ::1:8080:80
        raise InvalidParameter(f"invalid IP address: [{address}] (an IPv6 host address needs an IPv6 "
                               "network; mini's are IPv4-only, as docker's default bridge)")
    parts = rest.split(":")
    if len(parts) > 3:                              # (Go: net.SplitHostPort of the address part)
        address = ":".join(parts[:-2])
        raise InvalidParameter(f"Invalid ip address {address}: address {address}:: too many colons in address")
    host_ip, host, container = ([""] * (3 - len(parts)) + parts)
    host_ip = host_ip[1:-1] if host_ip[:1] == "[" and host_ip[-1:] == "]" else host_ip
    if host_ip:
        try:
            socket.inet_aton(host_ip)
            if host_ip.count(".") != 3:
                raise OSError
        except OSError:
            raise InvalidParameter(f"Invalid ip address: {host_ip}") from None
    if not container:
        raise InvalidParameter(f"No port specified: {spec}<empty>")
    containers = port_range(container, "containerPort")
    hosts = port_range(host, "hostPort") if host else [0] * len(containers)
    if len(containers) == 1 and len(hosts) > 1:
        return [PortBinding(host_ip, hosts[0], containers[0], check_proto(proto, spec), hosts[-1])]
    if len(hosts) != len(containers):
        raise InvalidParameter(f"Invalid ranges specified for container and host Ports: {container} and {host}")
    return [PortBinding(host_ip, h, c, check_proto(proto, spec)) for h, c in zip(hosts, containers)]
# <<< parse-port


def parse_all(specs: Iterable[str], publish_all: bool = False,
              exposed: dict | None = None) -> list[PortBinding]:
    """Every `-p`, plus with `-P` every exposed port not published already (on a free port)."""
    bindings = [b for spec in specs for b in parse(spec)]
    if publish_all:
        done = {b.key for b in bindings}
        wanted = {b.key: b for b in sorted(exposed_port(key) for key in exposed or {})}  # ("80", "80/tcp")
        bindings += [b for key, b in wanted.items() if key not in done]
    return bindings


def exposed_port(key: str) -> PortBinding:
    """An ExposedPorts key ("80/tcp", "53/udp", --expose's "53/UDP") as -P publishes it, the
    protocol in any case (docker's ParseProtocol). The keys of an image, or of --expose (which
    takes port 0 and `80/foo` as docker's does), are checked as docker checks a port
    (nat.ParsePort), in its words."""
    port, _, proto = key.partition("/")
    proto = proto.lower()
    if not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        raise InvalidParameter(f'invalid port specification: "{port}" (ExposedPorts {key!r:.40}: -P '
                               "publishes ports 1 to 65535)")
    if proto == "sctp":
        check_proto(proto, key)                     # (said so: mini publishes tcp and udp only)
    if (proto or "tcp") not in ("tcp", "udp"):
        raise InvalidParameter(f"invalid proto: {proto!r:.20} (ExposedPorts {key!r:.40}: -P publishes "
                               "tcp and udp)")
    return PortBinding("", 0, int(port), proto or "tcp")


def local_port_range(source: Path = PORT_RANGE) -> tuple[int, int]:
    """The ephemeral range of the network namespace we are in (32768-60999 by default)."""
    low, high = source.read_text().split()
    return int(low), int(high)


# --- holding host ports ------------------------------------------------------------------------

@named_tuple
class Held:
    """A binding with its real host port, and the bound socket that holds that port."""
    binding: PortBinding
    sock: socket.socket


def open_socket(b: PortBinding, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if b.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a port in TIME_WAIT is free
        sock.bind((b.host_ip or "0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


# >>> hold-ports
def hold(bindings: Iterable[PortBinding], source: Path = PORT_RANGE) -> list[Held]:
    """Bind every host port (choosing the free ones asked for). A port in use fails the whole
    request with docker's message, and the ports held so far are let go again."""
    held: list[Held] = []
    try:
        for b in bindings:
            publishable(b)
            if b.host_end:
                held.append(first_free(b, range(b.host_port, b.host_end + 1), f"{b.host_port}-{b.host_end}"))
            elif b.host_port:
                where = f"{b.host_ip or '0.0.0.0'}:{b.host_port}"
                try:
                    held.append(Held(b, open_socket(b, b.host_port)))
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        raise Conflict(f"Bind for {where} failed: port is already allocated") from None
                    raise InvalidParameter(f"Bind for {where}/{b.proto} failed: {e.strerror}") from None
            else:
                held.append(any_free(b, source))
    except BaseException:
        release(held)
        raise
    return held
# <<< hold-ports


def publishable(b: PortBinding) -> None:
    """What docker's client takes but nothing can serve: port 0 is bind(2)'s "any port", so a
    host range from 0 is docker's port allocator's "invalid port range: 0-2" (at start, as
    there), and a container port 0 is a port no program in the container can listen on."""
    if b.host_end and not b.host_port:
        raise InvalidParameter(f"invalid port range: {b.host_port}-{b.host_end}")
    if not b.container_port:
        raise InvalidParameter(f"invalid container port 0 in {b.key}: a program listens on a port "
                               "from 1 to 65535 (0 asks bind(2) for any)")


def any_free(b: PortBinding, source: Path) -> Held:
    import random  # (here: every `mini run` imports this module, few ask for any free port)

    low, high = local_port_range(source)
    start = random.randint(low, high)
    return first_free(b, [*range(start, high + 1), *range(low, start)], f"{low}-{high}")


def first_free(b: PortBinding, candidates: Iterable[int], where: str) -> Held:
    """The first of `candidates` that can be bound."""
    for port in candidates:
        try:
            return Held(b._replace(host_port=port, host_end=0), open_socket(b, port))
        except OSError:
            continue
    raise Conflict(f"no free host port for {b.key} in {where}: all ports are allocated")


def release(held: Iterable[Held]) -> None:
    for h in held:
        h.sock.close()


def adopt(binding: PortBinding, fd: int) -> Held:
    """A held port whose socket came from another process (the monitor gets them as fds)."""
    return Held(binding, socket.socket(fileno=fd))


# --- what inspect and ps show ------------------------------------------------------------------

def port_bindings(bindings: Iterable[PortBinding]) -> dict:
    """HostConfig.PortBindings: what was asked ("" = any)."""
    out: dict = {}
    for b in bindings:
        asked = f"{b.host_port}-{b.host_end}" if b.host_end else str(b.host_port or "")
        out.setdefault(b.key, []).append({"HostIp": b.host_ip, "HostPort": asked})
    return out


def settings(bindings: Iterable[PortBinding], exposed: Iterable[str] = ()) -> dict:
    """NetworkSettings.Ports: what is published where; exposed but not published -> None."""
    out: dict = {key: None for key in exposed}
    for b in bindings:
        out.setdefault(b.key, None)
        out[b.key] = (out[b.key] or []) + [{"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)}]
    return out
