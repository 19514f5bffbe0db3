"""A bridge on the host and a veth pair per container, through netlink (pyroute2).

A bridge is a virtual switch: its ports are links, and frames go between them. Its own address
(the gateway) makes the host a router for the containers behind it. A veth pair is a cable with
two ends: what goes in one comes out of the other, even when the ends are in different network
namespaces. So a container is wired like this:

    host:      mini0 (172.29.0.1/16) --- mv<id12>  ==veth==  eth0 (172.29.0.2/16)  :container
                                                              default via 172.29.0.1

Steps, each one netlink message (`ip` would do the same with the same messages): create the pair
on the host, plug one end into the bridge, move the other end into the container's namespace,
rename it `eth0` there (a link may only be renamed while down), give it a MAC and an address,
bring it and `lo` up, add the default route. Deleting the host end deletes the pair.

pyroute2's `IPRoute` is synchronous here (the runtime is a plain program); `IPRoute(netns=PATH)`
makes its netlink socket inside that namespace (in a forked helper), so nothing moves this
process. Everything acts on the namespace the calling thread is in: the host's, or in the tests
the private "test host" namespace.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import importlib.util
import ipaddress
import os
import sys
from pathlib import Path
from typing import Iterator


def import_package_lazily(name: str) -> None:
    """Put package `name` in sys.modules without running its __init__ until someone asks it for
    a name: pyroute2's __init__ imports all of pyroute2 (ndb, ipdb, conntrack...), over half of
    a bridged `mini run`'s time, and we use one class of it. `import pyroute2.x` still works."""
    if name in sys.modules or (spec := importlib.util.find_spec(name)) is None or spec.loader is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attribute: str) -> object:
        if importlib.util.find_spec(f"{name}.{attribute}") is not None:
            return importlib.import_module(f"{name}.{attribute}")  # a submodule: just that
        del package.__getattr__                 # any other name: the real __init__, once
        spec.loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = __getattr__
    sys.modules[name] = package


import_package_lazily("pyroute2")
from pyroute2.iproute.linux import IPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

from mini_runtime.errors import Exercise, System  # noqa: E402

Interface = ipaddress.IPv4Interface
RT_TABLE_MAIN = 254


def host_end(container_id: str) -> str:
    """The host end of a container's veth: `mv` + 12 hex (a link name has at most 15 bytes)."""
    return "mv" + container_id[:12]


def mac_for(address: ipaddress.IPv4Address) -> str:
    """docker's old rule: 02:42 and the four bytes of the IPv4 address (locally administered,
    unicast), so the same address always has the same MAC and ARP caches stay right."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


@contextlib.contextmanager
def netlink(netns: str | Path | None = None) -> Iterator[IPRoute]:
    """An rtnetlink socket in the current namespace, or in the one at `netns` (never created)."""
    ipr = IPRoute(netns=str(netns), flags=0) if netns else IPRoute()
    try:
        yield ipr
    except NetlinkError as e:
        raise System(f"netlink: {os.strerror(e.code)}") from None
    finally:
        ipr.close()


def index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def routes() -> list[tuple[str, str]]:
    """The main table's IPv4 routes as (destination, device): what a subnet must not overlap."""
    found = []
    with netlink() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for route in ipr.get_routes(family=2, table=RT_TABLE_MAIN):
            destination = route.get_attr("RTA_DST") or "0.0.0.0"
            device = names.get(route.get_attr("RTA_OIF"), "?")
            found.append((f"{destination}/{route['dst_len']}", device))
    return found


def links() -> list[str]:
    with netlink() as ipr:
        return sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())


# >>> ensure-bridge
def ensure_bridge(name: str, gateway: Interface) -> bool:
    """The bridge `name` with the gateway address, up. True if it had to be made."""
    with netlink() as ipr:
        made = index(ipr, name) is None
        if made:
            ipr.link("add", ifname=name, kind="bridge")
        bridge = index(ipr, name)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=bridge, family=2)}
        if (str(gateway.ip), gateway.network.prefixlen) not in have:
            ipr.addr("add", index=bridge, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
        ipr.link("set", index=bridge, state="up")
    return made
# <<< ensure-bridge


def remove_bridge(name: str) -> None:
    """Delete the bridge (idempotent); its ports are unplugged, not deleted."""
    with netlink() as ipr:
        if (bridge := index(ipr, name)) is not None:
            ipr.link("del", index=bridge)


def bridge_ports(name: str) -> list[str]:
    with netlink() as ipr:
        bridge = index(ipr, name)
        if bridge is None:
            return []
        return sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links()
                      if link.get_attr("IFLA_MASTER") == bridge)


# >>> connect
def connect(container_id: str, bridge: str, netns: str | Path, address: Interface,
            gateway: ipaddress.IPv4Address) -> str:
    """A veth pair from `bridge` to `eth0` in `netns`, addressed and routed. Returns the MAC.
    If a step fails the pair is deleted: nothing is left half-wired."""
    outside, inside = host_end(container_id), "mp" + container_id[:12]
    mac = mac_for(address.ip)
    with netlink() as ipr:
        ipr.link("add", ifname=outside, kind="veth", peer={"ifname": inside})
        try:
            ipr.link("set", ifname=outside, master=index(ipr, bridge), state="up")
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("set", ifname=inside, net_ns_fd=fd)   # now only the namespace sees it
            finally:
                os.close(fd)
            with netlink(netns) as ns:
                eth0 = index(ns, inside)
                ns.link("set", index=eth0, ifname="eth0", address=mac)
                ns.addr("add", index=eth0, address=str(address.ip), prefixlen=address.network.prefixlen)
                ns.link("set", index=eth0, state="up")
                ns.link("set", index=index(ns, "lo"), state="up")
                ns.route("add", dst="0.0.0.0/0", gateway=str(gateway))
        except BaseException:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", ifname=outside)
            raise
    return mac
# <<< connect


# >>> why-errnos
def predicted_errnos() -> dict[str, int]:
    """The chapter's "why?" questions as data (exercise 07 checks them against the kernel):
    the errno netlink answers for three wiring mistakes."""
    return {"name_too_long": errno.ERANGE,           # IFNAMSIZ is 16 bytes with the NUL: 15 left
            "gateway_not_on_link": errno.ENETUNREACH,  # no address yet in the gateway's subnet
            "master_not_a_bridge": errno.EOPNOTSUPP}   # only a bridge (or bond...) takes ports
# <<< why-errnos


# --- exercise 07's extension: the reference has the flag, the learner writes this ----------

def extra_hosts(specs: list[str]) -> list[tuple[str, str]]:
    """docker's --add-host NAME:IP (or NAME=IP, or NAME:host-gateway) as /etc/hosts entries
    (ip, name), in the order given; docker's errors for a bad spec ([] when none is given)."""
    if not specs:
        return []
    raise Exercise("--add-host", "07_network")


def loopback_up(netns: str | Path) -> None:
    """`--network none`: a namespace with `lo` only, and up."""
    with netlink(netns) as ns:
        ns.link("set", index=index(ns, "lo"), state="up")


def disconnect(container_id: str) -> bool:
    """Delete the container's veth pair (both ends go). False when there was none."""
    with netlink() as ipr:
        link = index(ipr, host_end(container_id))
        if link is None:
            return False
        ipr.link("del", index=link)
        return True


def container_view(netns: str | Path) -> dict:
    """What the container sees, for tests and `inspect`: links, IPv4 addresses, default route."""
    with netlink(netns) as ns:
        view: dict = {"links": {}, "gateway": None}
        for link in ns.get_links():
            view["links"][link.get_attr("IFLA_IFNAME")] = {
                "up": bool(link["flags"] & 1), "mac": link.get_attr("IFLA_ADDRESS"),
                "addresses": [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                              for a in ns.get_addr(index=link["index"], family=2)]}
        for route in ns.get_routes(family=2, table=RT_TABLE_MAIN):
            if route["dst_len"] == 0 and route.get_attr("RTA_GATEWAY"):
                view["gateway"] = route.get_attr("RTA_GATEWAY")
    return view
