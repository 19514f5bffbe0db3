"""`mini network connect` and `disconnect`: a container on more than one network.

Why a second interface, and not a second address on eth0: a network is a bridge of its own,
and nat.py keeps bridges apart, so being on two networks means being plugged into two
switches. Each plug is a veth pair of its own: eth1 (then eth2, ...) inside, `mx<id11><n>` on
the host, plugged into that network's bridge, with an address of that network's subnet. The
kernel routes by destination: the subnet of each interface is reached through it (the route
the address brings), everything else through the default route, which stays eth0's: a second
default route would make the way out depend on the order of the routes, not on the network.
The container's namespace is there from `create` on, so a created container is connected the
same way as a running one; the other members' /etc/hosts learn its name at once, and its own
learns theirs (networks.rewrite_hosts).

`disconnect` undoes exactly that: the pair (deleting one end deletes both), the address, the
membership (and so the hosts lines). The first network (eth0) is the container's own: its
namespace, ports and files hang on it, so it is not disconnected here.
"""

from __future__ import annotations

from collections.abc import Iterable

from mini_runtime.errors import Conflict, InvalidParameter, MiniError, NotFound
from mini_runtime.network import Endpoint, bridge, ipam, member, networks

#: docker's words for what cannot be connected, by the network mode of the container.
PRIVATE = "container cannot be connected to multiple networks with one of the networks in private (none) mode"
SHARED = "container sharing network namespace with another container or host cannot be connected to any other network"
HOST = "container cannot be disconnected from host network or connected to host network"


def check(first: Endpoint, target: str) -> None:
    """What docker refuses whatever the state: another network for a container on `none`,
    `host` or another's namespace; the pre-defined `none` and `host` as a second network."""
    if first.network == "none" or target == "none":
        raise Conflict(PRIVATE)
    if target == "host":
        raise Conflict(HOST)
    if first.network == "host" or first.network.startswith("container:"):
        raise Conflict(SHARED)


def validate(first: Endpoint, network: str, name: str, aliases: Iterable[str],
             ip: str | None) -> tuple[dict, ipam.Address | None]:
    """The network's record and the address asked for, or docker's refusal: no such network,
    a mode that cannot have another network, --ip or --alias on a pre-defined network, a
    network the container is on already, an address the network cannot give."""
    record = networks.load(network)
    if record is None:
        raise NotFound(f"network {network} not found")
    check(first, record["Name"])
    builtin = record["Name"] in networks.BUILTIN
    if builtin and ip:
        raise InvalidParameter("user specified IP address is supported on user defined networks only")
    if builtin and list(aliases):
        raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    if first.container_id in record["Containers"] or record["Name"] == first.network:
        raise Conflict(f"endpoint with name {name} already exists in network {record['Name']}")
    return record, networks.check_wanted(record, ip) if ip else None


# >>> connect-more
def add(first: Endpoint, network: str, name: str, aliases: Iterable[str] = (),
        ip: str | None = None) -> Endpoint:
    """Plug the container of `first` (its eth0 endpoint) into `network` as its next ethN, with
    an address (`ip`: that one) and its names for the other members. Nothing stays if a step
    fails."""
    aliases, cid = tuple(aliases), first.container_id
    with networks.lock():
        record, wanted = validate(first, network, name, aliases, ip)
        used = set(bridge.container_view(first.netns)["links"])
        interface = next(f"eth{n}" for n in range(1, 16) if f"eth{n}" not in used)
        pool, subnet = networks.pool_of(record), networks.subnet_of(record)
        address = pool.allocate(cid, wanted)
        try:
            networks.wire(record)
            mac = bridge.connect(cid, networks.bridge_of(record), first.netns,
                                 ipam.Interface(f"{address}/{subnet.prefixlen}"), pool.gateway, inside=interface)
            endpoint = Endpoint(cid, record["Name"], first.netns, networks.bridge_of(record), str(address),
                                subnet.prefixlen, str(pool.gateway), mac, (), first.files, record["Id"],
                                aliases, ip or "", interface)
            own = networks.members_entry(cid) or {}
            networks.join(record["Name"], cid, member(endpoint, name, aliases, own.get("Hostname", ""),
                                                      [tuple(e) for e in own.get("ExtraHosts") or ()]))
        except BaseException:
            undo(cid, record["Name"], interface)
            raise
    return endpoint
# <<< connect-more


def remove(endpoint: Endpoint) -> None:
    """Undo `add`: the pair, the address, the membership and the hosts lines."""
    with networks.lock():
        undo(endpoint.container_id, endpoint.network, endpoint.interface)


def undo(container_id: str, network: str, interface: str) -> None:
    """Each step, whatever the one before did (the lock held); the first error is raised."""
    def release() -> None:
        record = networks.load(network)
        if record is not None:
            networks.pool_of(record).release(container_id)

    failures = []
    for step in (lambda: bridge.delete(bridge.more_end(container_id, interface)),
                 lambda: networks.leave(container_id, only=network), release):
        try:
            step()
        except (MiniError, OSError) as e:
            failures.append(e)
    if failures:
        raise failures[0]
