"""Chapter 07: the network. A namespace per container, wired to a bridge, NATed to the world.

    namespace.py  a named network namespace (bind mount under $MINI_RUN/netns), join with setns
    bridge.py     the bridge and each container's veth pair, through netlink
    rtnetlink.py  the netlink messages themselves: links, addresses, routes (what `ip` sends)
    ipam.py       who has which address, persisted under the state root, with a file lock
    nat.py        MASQUERADE, DNAT of published ports, forwarding rules: nftables JSON, table `ip mini`
    ports.py      -p / -P, holding host ports, the userland proxy for 127.0.0.1
    etcfiles.py   /etc/hosts, /etc/hostname, /etc/resolv.conf per container
    networks.py   bridge/host/none and user-defined networks; names by /etc/hosts kept current
    interfaces.py `network connect`/`disconnect`: eth1, eth2, ... on more networks

The pipeline calls five functions of this module (the others are for `mini network`, tests and
inspect). All of them act on the network namespace the calling thread is in.

- **create** (parent, before forking the child): `endpoint = network.connect(id, directory,
  hostname, mode, name)` by `--network` (`bridge`, `none`, `host`, `container:ID` or a user-defined
  network; `attach` for the bridges): makes the netns `$MINI_RUN/netns/<id>`, an address, the
  bridge and its rules, the veth pair, the three /etc files in `directory`. On any error
  everything is undone and the error raised. Record `settings(endpoint, exposed)` as
  NetworkSettings and `endpoint` itself (`endpoint.record()`).
- **start** (docker's order: ports are a start-time matter, so a port in use leaves the container
  `created`): `endpoint, held = network.publish(endpoint, ports.parse_all(-p..., -P, image
  ExposedPorts))` holds the host ports (a port in use: Conflict "Bind for 0.0.0.0:8080 failed:
  port is already allocated", nothing held, no rule added) and adds their DNAT rules. The
  userland proxy (proxy.spawn(held, endpoint.ip), a process of the monitor) takes the held
  sockets over and serves 127.0.0.1.
- **in the child, before exec**: `network.join(endpoint)` instead of unshare(CLONE_NEWNET)
  (nothing for `host`); after the overlay is mounted and before pivot_root,
  `etcfiles.bind(endpoint.files, merged)`, with `etcfiles.init_layer(directory)` as the topmost
  lower dir of the overlay so that the mount points exist and nothing lands in the upper dir.
- **exec**: `namespace.join(endpoint.netns)` (or /proc/PID/ns/net while the container runs).
- **cleanup** (container ended or removed): `network.disconnect(endpoint)` (`detach(id)` for a
  bridge): rules, veth (unplugged; the kernel deletes it with the netns), netns, address,
  membership. The default bridge and its rules stay for the next container, as docker0 does
  (`mini network prune` takes them down). Idempotent and keyed by the id only.
  `network.sweep(alive)` does it for every id that `alive(id)` says is gone (a SIGKILLed
  monitor's leftovers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

from mini_runtime.errors import InvalidParameter, MiniError, NotFound, System
from mini_runtime.network import etcfiles, namespace, ports
from mini_runtime.network.etcfiles import EtcFiles
from mini_runtime.network.ports import Held, PortBinding
from mini_runtime.tuples import named_tuple


@named_tuple
class Endpoint:
    """A container's place on the network: what inspect shows and what the child joins."""
    container_id: str
    network: str                       # "bridge", "none", "host", or a user-defined network
    netns: str = ""                    # the namespace to join ("" = the host's own)
    bridge: str = ""
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    ports: tuple[PortBinding, ...] = ()  # with the host ports really held
    files: EtcFiles | None = None
    network_id: str = ""
    aliases: tuple[str, ...] = ()      # --network-alias: more names for the other members
    requested_ip: str = ""             # --ip (inspect's IPAMConfig)
    interface: str = "eth0"            # its name inside (`network connect` adds eth1, eth2, ...)

    def record(self) -> dict:
        """As JSON for the container's record; `from_record` reads it back."""
        return self._replace(ports=[list(p) for p in self.ports],
                             files=[str(f) for f in self.files] if self.files else None)._asdict()

    @classmethod
    def from_record(cls, data: dict) -> "Endpoint":
        files = data.get("files")
        return cls(**{**data, "ports": tuple(PortBinding(*p) for p in data.get("ports") or ()),
                      "aliases": tuple(data.get("aliases") or ()),
                      "files": EtcFiles(*map(Path, files)) if files else None})


# >>> connect
def connect(container_id: str, directory: Path, hostname: str, mode: str, name: str = "",
            share: tuple[str, EtcFiles | None] | None = None, add_hosts: Iterable[str] = (),
            aliases: Iterable[str] = (), ip: str | None = None, dns_args: dict | None = None,
            mac: str = "") -> Endpoint:
    """The pipeline's one call at create, by network mode: `none` (the child unshares an empty
    namespace itself, as in chapter 03), `host` (nothing: the host's own), `container:ID`
    (`share` = that container's namespace file and /etc files: a second name for its
    namespace), or a bridge network (`bridge`, or a user-defined one: attach). --add-host's
    entries are checked first (exercise 07's hook), before anything is made (and, by the
    caller, --network-alias and --ip: check_user_defined). `dns_args`: --dns, --dns-search and
    --dns-option, as etcfiles.write takes them; `mac`: --mac-address (else bridge.mac_for's)."""
    extra, dns_args = extra_hosts(add_hosts), dns_args or {}
    source = etcfiles.resolv_source()
    if mode == "none":
        return Endpoint(container_id, mode, files=etcfiles.write(directory, hostname, None, source, extra, **dns_args))
    if mode == "host":
        files = etcfiles.write(directory, hostname, None, source, extra, own_network=False, **dns_args)
        return Endpoint(container_id, mode, files=files)
    if mode.startswith("container:"):
        netns, files = share or ("", None)
        path = str(namespace.create(container_id, netns)) if netns else ""
        return Endpoint(container_id, mode, path, files=files)
    return attach(container_id, directory, hostname, mode, name=name, aliases=aliases, ip=ip,
                  resolv_source=source, extra_hosts=extra, dns_args=dns_args, mac=mac)[0]
# <<< connect


def check_user_defined(mode: str, aliases: Iterable[str], ip: str | None) -> None:
    """--network-alias and --ip only on a user-defined network (docker's words): names resolve
    only there (networks.peers), and the default bridge's addresses are handed out in order."""
    if ip:
        from mini_runtime.network import ipam
        try:
            ipam.Address(ip)
        except ValueError:
            raise InvalidParameter(f"invalid IPv4 address: {ip}") from None
    if mode in ("bridge", "none", "host") or mode.startswith("container:"):
        if ip:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if list(aliases):
            raise InvalidParameter("network-scoped aliases are only supported for user-defined networks")


def extra_hosts(specs: Iterable[str]) -> list[tuple[str, str]]:
    """--add-host's (ip, name) entries, by bridge.extra_hosts (exercise 07's extension)."""
    specs = list(specs)
    if not specs:
        return []
    from mini_runtime.network import bridge
    return [(str(ip), str(name)) for ip, name in bridge.extra_hosts(specs)]


def disconnect(endpoint: Endpoint) -> None:
    """Undo connect: a bridge network's everything, a shared namespace's second name."""
    if endpoint.network.startswith("container:"):
        namespace.remove(endpoint.container_id)
    elif endpoint.network not in ("none", "host"):
        detach(endpoint.container_id)


def anything_left(alive: Callable[[str], bool]) -> bool:
    """Cheap (no netlink, no nftables): could `sweep(alive)` find anything at all? Only if the
    owner of an address or of a namespace is gone: a container's address is the first thing it
    gets on a network and the last it gives back (`wire`, `undo`), and a `container:NAME` one
    has nothing but its namespace. So while nobody has died, exec, ps and inspect are spared
    the sweep, which asks nftables for its rules and imports the network's modules."""
    from mini_runtime.network import ipam
    return any(not alive(owner) for owner in {*namespace.names(), *ipam.owners()})


# >>> attach
def attach(container_id: str, directory: Path, hostname: str, network: str = "bridge",
           name: str = "", aliases: Iterable[str] = (), ip: str | None = None,
           bindings: Iterable[PortBinding] = (),
           resolv_source: Path | None = None, dns_args: dict | None = None,
           extra_hosts: Iterable[tuple[str, str]] = (), mac: str = "") -> tuple[Endpoint, list[Held]]:
    """Everything a container needs on the network, made before its child starts; with
    `bindings`, published at once too (the pipeline publishes at start: `publish`).
    `dns_args`: --dns, --dns-search, --dns-option (etcfiles.write's dns, search, options)."""
    from mini_runtime.network import networks    # (netlink and nftables: not on the child's path)
    record = networks.load(network)
    if record is None:
        raise NotFound(f"network {network} not found")
    source = resolv_source or etcfiles.resolv_source()
    dns_args = dns_args or {}
    extra, aliases = list(extra_hosts), tuple(aliases)
    with networks.lock():
        try:
            if network == "host":
                files = etcfiles.write(directory, hostname, None, source, extra, own_network=False, **dns_args)
                endpoint = Endpoint(container_id, network, files=files, network_id=record["Id"])
            elif network == "none":
                netns = str(namespace.create(container_id))
                files = etcfiles.write(directory, hostname, None, source, extra, **dns_args)
                endpoint = Endpoint(container_id, network, netns, files=files, network_id=record["Id"])
            else:
                endpoint = wire(record, container_id, directory, hostname, source, dns_args, extra, ip, mac)
                endpoint = endpoint._replace(aliases=aliases, requested_ip=ip or "")
            networks.join(network, container_id, member(endpoint, name, aliases, hostname, extra))
        except BaseException:
            with contextlib.suppress(Exception):    # the first error is the one to report
                undo(container_id)
            raise
    try:
        return publish(endpoint, bindings)
    except BaseException:
        detach(container_id)
        raise
# <<< attach


# >>> wire
def wire(record: dict, container_id: str, directory: Path, hostname: str, resolv_source: Path,
         dns_args: dict, extra: list[tuple[str, str]] = (), wanted: str | None = None,
         mac: str = "") -> Endpoint:
    """A container on a bridge network (the lock is held): address (`wanted`: --ip), bridge,
    veth, files."""
    from mini_runtime.network import bridge, ipam, nat, networks
    subnet, bridge_name = networks.subnet_of(record), networks.bridge_of(record)
    ipam.check_no_overlap(subnet, bridge.routes(), own_device=bridge_name)  # routes may have changed
    pool = networks.pool_of(record)
    ip = pool.allocate(container_id, networks.check_wanted(record, wanted) if wanted else None)
    netns = str(namespace.create(container_id))
    networks.wire(record)                      # the bridge, its address, its rules (idempotent)
    address = ipam.Interface(f"{ip}/{subnet.prefixlen}")
    wired = bridge.connect(container_id, bridge_name, netns, address, pool.gateway)
    mac = bridge.set_mac(netns, "eth0", mac) if mac else wired  # --mac-address
    files = etcfiles.write(directory, hostname, str(ip), resolv_source,
                           extra=networks.peers(record, container_id) + extra, **dns_args)
    return Endpoint(container_id, record["Name"], netns, bridge_name, str(ip), subnet.prefixlen,
                    str(pool.gateway), mac, (), files, record["Id"])
# <<< wire


# >>> publish
def publish(endpoint: Endpoint, bindings: Iterable[PortBinding]) -> tuple[Endpoint, list[Held]]:
    """At start: hold the host ports (the bind says whether a port is free, with no race), then
    DNAT them to the container, in one nftables transaction. A port in use fails the whole
    request with docker's message, and nothing stays held or added. Returns the endpoint with
    the ports really held (`-p 80` gets one from the ephemeral range) and the held sockets."""
    bindings = list(bindings)
    if not bindings or not endpoint.ip:             # none, host, container:NAME publish nothing
        return endpoint, []
    from mini_runtime.network import nat, networks
    held = ports.hold(bindings)
    try:
        with networks.lock():
            nat.publish(endpoint.container_id, endpoint.bridge, endpoint.ip, [h.binding for h in held])
    except BaseException:
        ports.release(held)
        raise
    return endpoint._replace(ports=tuple(h.binding for h in held)), held
# <<< publish


def member(endpoint: Endpoint, name: str, aliases: Iterable[str], hostname: str,
           extra: Iterable[tuple[str, str]] = ()) -> dict:
    """The container as a network's record lists it (docker network inspect's Containers)."""
    return {"Name": name, "EndpointID": endpoint.container_id, "MacAddress": endpoint.mac,
            "IPv4Address": f"{endpoint.ip}/{endpoint.prefixlen}" if endpoint.ip else "",
            "IPv6Address": "", "Aliases": list(aliases), "Hostname": hostname,
            "HostsPath": str(endpoint.files.hosts) if endpoint.files else "",
            "ExtraHosts": [list(e) for e in extra]}  # --add-host: kept when the hosts file is rewritten


# >>> join
def join(endpoint: Endpoint) -> None:
    """In the container's child before exec: enter its network namespace (none for `host`)."""
    if endpoint.netns:
        namespace.join(endpoint.netns)
# <<< join


# >>> detach
def detach(container_id: str) -> None:
    """Undo attach, from the id alone (also for a container whose record is gone)."""
    from mini_runtime.network import networks
    with networks.lock():
        undo(container_id)


def undo(container_id: str) -> None:
    """Each step runs even if one before failed (lock held); the first failure is raised."""
    from mini_runtime.network import bridge, ipam, nat, networks
    failures: list[str] = []

    def step(action: Callable[[], object]) -> None:
        try:
            action()
        except (MiniError, OSError) as e:
            failures.append(str(e))

    step(lambda: nat.unpublish(container_id))            # its DNAT and forward rules
    if namespace.shared(container_id):                   # container:NAME users keep the netns:
        step(lambda: bridge.disconnect(container_id))    # the veth pair must go now
    else:
        step(lambda: bridge.unplug(container_id))        # off the bridge, down: the pair goes
    for end in bridge.more_ends(container_id):           # `network connect`'s (eth1, ...)
        step(lambda end=end: bridge.delete(end))
    step(lambda: namespace.remove(container_id))         # with the netns, in the kernel's time
    step(lambda: networks.leave(container_id))           # membership; the others' /etc/hosts
    step(lambda: ipam.release_everywhere(container_id))  # its address
    if failures:
        raise System(f"cleaning up the network of {container_id[:12]}: {failures[0]}")
# <<< detach


def prune_default_bridge() -> bool:
    """`mini network prune`: mini0 and its rules, when no container is on it, and our table
    and ip_forward's old value when nothing of ours is left. True if mini0 went. (Like docker0,
    mini0 otherwise stays between containers: see bridge.unplug.)"""
    from mini_runtime.network import bridge, ipam, nat, networks
    with networks.lock():
        if ipam.Pool(networks.DEFAULT, ipam.default_subnet()).allocated():
            return False
        there = networks.DEFAULT_BRIDGE in bridge.links()
        if there:
            nat.remove_network(networks.DEFAULT_BRIDGE)
            bridge.remove_bridge(networks.DEFAULT_BRIDGE)
        if there or nat.forward_memory().exists():   # (our table was made: ensure_table)
            nat.drop_table_if_unused()
        return there


def sweep(alive: Callable[[str], bool]) -> list[str]:
    """Detach every container that has something on the network but is no longer alive."""
    from mini_runtime.network import ipam, nat, networks
    with networks.lock():
        known = set(namespace.names()) | set(ipam.owners()) | set(networks.members())
        with contextlib.suppress(MiniError):
            known |= nat.owners()
        dead = sorted(i for i in known if not alive(i))
        for container_id in dead:
            undo(container_id)
    return dead


def aliases_of(endpoint: Endpoint) -> list[str] | None:
    """inspect's Aliases, as docker 20.10's: on a user-defined network the --network-alias
    names and the short id (the other members' /etc/hosts has them all); elsewhere none."""
    if endpoint.network in ("bridge", "none", "host") or endpoint.network.startswith("container:"):
        return None
    return list(dict.fromkeys([*endpoint.aliases, endpoint.container_id[:12]]))


def settings(endpoint: Endpoint, exposed: Iterable[str] = ()) -> dict:
    """NetworkSettings for inspect, with the legacy top-level fields (API <= 1.51). No
    Networks for `container:NAME`, as docker's: it has no endpoint of its own."""
    on_bridge = bool(endpoint.ip)
    one = {"IPAMConfig": {"IPv4Address": endpoint.requested_ip} if endpoint.requested_ip else None,
           "NetworkID": endpoint.network_id, "EndpointID": endpoint.container_id if on_bridge else "",
           "Gateway": endpoint.gateway, "IPAddress": endpoint.ip, "IPPrefixLen": endpoint.prefixlen,
           "MacAddress": endpoint.mac, "Aliases": aliases_of(endpoint), "DNSNames": None}
    return {"Bridge": endpoint.bridge, "SandboxID": endpoint.container_id if endpoint.netns else "",
            "SandboxKey": endpoint.netns, "Ports": ports.settings(endpoint.ports, exposed),
            "IPAddress": endpoint.ip, "IPPrefixLen": endpoint.prefixlen, "Gateway": endpoint.gateway,
            "MacAddress": endpoint.mac,
            "Networks": {} if endpoint.network.startswith("container:") else {endpoint.network: one}}
