"""A bridge on the host and a veth pair per container, through netlink (rtnetlink.py).

A bridge is a virtual switch: its ports are links, and frames go between them. Its own address
(the gateway) makes the host a router for the containers behind it. A veth pair is a cable with
two ends: what goes in one comes out of the other, even when the ends are in different network
namespaces. So a container is wired like this:

    host:      mini0 (172.29.0.1/16) --- mv<id12>  ==veth==  eth0 (172.29.0.2/16)  :container
                                                              default via 172.29.0.1

Steps, each one netlink message (`ip` would send the same ones): create the pair with its
container end already inside the container's namespace, named eth0 and with its MAC; plug the
host end into the bridge and bring it up; inside, give eth0 its address, bring it and `lo` up,
add the default route. Deleting the host end deletes the pair; so does the end of the container's
namespace, which is how a container's pair goes (`unplug`).

`netlink(netns)` makes its socket inside that namespace (this thread steps in and straight back),
so nothing else moves. Everything acts on the namespace the calling thread is in: the host's,
or in the tests the private "test host" namespace.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

from mini_runtime.errors import Exercise, InvalidParameter, System
from mini_runtime.network.rtnetlink import Netlink, NetlinkError

Interface = ipaddress.IPv4Interface


def host_end(container_id: str) -> str:
    """The host end of a container's veth: `mv` + 12 hex (a link name has at most 15 bytes)."""
    return "mv" + container_id[:12]


def more_end(container_id: str, interface: str) -> str:
    """The host end of the pair of a network connected later (`network connect`: eth1, eth2,
    ...): `mx` + 11 hex + the interface's number (1-f), never a container's `mv` name."""
    return f"mx{container_id[:11]}{int(interface.removeprefix('eth')):x}"


def mac_for(address: ipaddress.IPv4Address) -> str:
    """docker's old rule: 02:42 and the four bytes of the IPv4 address (locally administered,
    unicast), so the same address always has the same MAC and ARP caches stay right."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def canonical_mac(text: str) -> str:
    """--mac-address in any of the forms Go's net.ParseMAC reads (02:42:ac:11:00:02,
    02-42-ac-11-00-02, 0242.ac11.0002) as the kernel's aa:bb:cc:dd:ee:ff. A veth's address is
    6 bytes, unicast and not zero (the kernel refuses others with EADDRNOTAVAIL)."""
    digits = text.strip().replace(":", "").replace("-", "").replace(".", "")
    try:
        raw = bytes.fromhex(digits) if digits.isascii() and digits.isalnum() else b""
    except ValueError:
        raw = b""
    if len(raw) != 6 or raw[0] & 1 or not any(raw):
        raise InvalidParameter(f"{text} is not a valid mac address for a container: 6 bytes, unicast "
                               "(the first byte even), not all zero")
    return ":".join(f"{b:02x}" for b in raw)


def set_mac(netns: str | Path, inside: str, mac: str) -> str:
    """--mac-address: `ip -n NETNS link set INSIDE address MAC`, after connect() (whose MAC is
    mac_for's, and whose signature exercise 07's learners share). A veth takes a new address
    while up (IFF_LIVE_ADDR_CHANGE); nothing has sent a frame from it yet. Returns the MAC."""
    mac = canonical_mac(mac)
    with netlink(netns) as ns:
        ns.set_link(inside, mac=mac)
    return mac


@contextlib.contextmanager
def netlink(netns: str | Path | None = None) -> Iterator[Netlink]:
    """An rtnetlink socket in the current namespace, or in the one at `netns` (never created).
    A refusal from the kernel becomes one line: `netlink: File exists`."""
    nl = Netlink(netns)
    try:
        yield nl
    except NetlinkError as e:
        raise System(f"netlink: {e.strerror}") from None
    finally:
        nl.close()


def routes() -> list[tuple[str, str]]:
    """The main table's IPv4 routes as (destination, device): what a subnet must not overlap."""
    with netlink() as nl:
        names = {link.index: link.name for link in nl.links()}
        return [(route.destination, names.get(route.device, "?")) for route in nl.routes()]


def links() -> list[str]:
    with netlink() as nl:
        return sorted(link.name for link in nl.links())


# >>> ensure-bridge
def ensure_bridge(name: str, gateway: Interface) -> bool:
    """The bridge `name` with the gateway address, up. True if it had to be made."""
    with netlink() as nl:
        made = nl.index(name) is None
        if made:
            nl.add_link(name, "bridge")
        bridge = nl.index(name)
        if gateway not in nl.addresses(bridge):
            nl.add_address(bridge, gateway)
        nl.set_link(bridge, up=True)
    return made
# <<< ensure-bridge


def remove_bridge(name: str) -> None:
    """Delete the bridge (idempotent); its ports are unplugged, not deleted."""
    with netlink() as nl:
        if nl.index(name) is not None:
            nl.delete_link(name)


def bridge_ports(name: str) -> list[str]:
    with netlink() as nl:
        bridge = nl.index(name)
        if bridge is None:
            return []
        return sorted(link.name for link in nl.links() if link.master == bridge)


# >>> connect
def connect(container_id: str, bridge: str, netns: str | Path, address: Interface,
            gateway: ipaddress.IPv4Address, inside: str = "eth0") -> str:
    """A veth pair from `bridge` to `inside` in `netns`, addressed, and for eth0 routed (the
    default route goes through the first network; another one, `network connect`, adds only
    its subnet's route). Returns the MAC. If a step fails the pair is deleted: nothing is left
    half-wired."""
    outside = host_end(container_id) if inside == "eth0" else more_end(container_id, inside)
    mac = mac_for(address.ip)
    with netlink() as nl:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                nl.add_veth(outside, inside, peer_netns_fd=fd, peer_mac=mac)  # eth0 born in there
            except NetlinkError as e:    # a restart: its last pair, not taken by the kernel yet
                if e.errno != errno.EEXIST:
                    raise
                nl.delete_link(outside)
                nl.add_veth(outside, inside, peer_netns_fd=fd, peer_mac=mac)
        finally:
            os.close(fd)
        try:
            nl.set_link(outside, master=nl.index(bridge), up=True)
            with netlink(netns) as ns:
                eth = ns.index(inside)
                ns.add_address(eth, address)
                ns.set_link(eth, up=True)
                ns.set_link("lo", up=True)
                if inside == "eth0":
                    ns.add_default_route(gateway)
        except BaseException:
            with contextlib.suppress(NetlinkError):
                nl.delete_link(outside)
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


def disconnect(container_id: str) -> bool:
    """Delete the container's veth pair (both ends go). False when there was none."""
    with netlink() as nl:
        try:
            nl.delete_link(host_end(container_id))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return False
            raise
        return True


def more_ends(container_id: str) -> list[str]:
    """The host ends of the networks connected later (`network connect`) that are there."""
    return [link for link in links() if link.startswith(f"mx{container_id[:11]}")]


def delete(link: str) -> None:
    """Delete a link (a veth end: the pair goes); one that is gone already is fine."""
    with netlink() as nl:
        try:
            nl.delete_link(link)
        except NetlinkError as e:
            if e.errno != errno.ENODEV:
                raise


# >>> unplug
def unplug(container_id: str) -> bool:
    """Take the container's end off its bridge and down, and leave the pair to its namespace.
    Deleting a link makes the caller wait for RCU grace periods (15-50 ms here); a namespace
    that nothing holds any more is torn down by a kernel worker, its links with it, and the
    veth's other end goes too. Unplugged first, the end can no longer take frames meant for
    the next container to get this address (and so this MAC). False when there was none."""
    with netlink() as nl:
        try:
            nl.set_link(host_end(container_id), up=False, master=0)
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return False
            raise
        return True
# <<< unplug


def container_view(netns: str | Path) -> dict:
    """What the container sees, for tests and `inspect`: links, IPv4 addresses, default route."""
    with netlink(netns) as ns:
        view: dict = {"links": {}, "gateway": None}
        for link in ns.links():
            view["links"][link.name] = {"up": link.up, "mac": link.mac,
                                        "addresses": [str(a) for a in ns.addresses(link.index)]}
        for route in ns.routes():
            if route.destination == "0.0.0.0/0" and route.gateway:
                view["gateway"] = route.gateway
    return view
