"""rtnetlink by hand: the messages `ip` sends to make links, addresses and routes.

netlink(7) is a socket family for talking to the kernel; its NETLINK_ROUTE protocol,
rtnetlink(7), is how `ip` (and docker, and pyroute2) ask for a veth pair or a default route. A
request is one datagram: a header, a fixed struct for the object, then attributes:

    nlmsghdr   length, type (RTM_NEWLINK...), flags (REQUEST, ACK, CREATE...), sequence, port
    ifinfomsg  family, device type, index, flags, change mask    (ifaddrmsg, rtmsg: the same idea)
    rtattr...  length, type, value padded to 4 bytes; a value may hold attributes itself (nested)

The kernel answers with an NLMSG_ERROR whose error is 0 (the ACK) or -errno, or with objects
(RTM_NEWLINK for a link), many of them ending in NLMSG_DONE for a dump. That is all of it: about
as much code as importing a netlink library costs in time (pyroute2: ~65 ms, more than a whole
`mini run --network none`), so the runtime speaks it itself. The notebook uses pyroute2.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct

from mini_runtime.network import namespace
from mini_runtime.tuples import named_tuple

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>, <linux/if_addr.h>, <linux/veth.h>
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

HEADER = struct.Struct("=IHHII")      # nlmsghdr
IFINFO = struct.Struct("=BxHiII")     # ifinfomsg: family, (pad), type, index, flags, change
IFADDR = struct.Struct("=BBBBI")      # ifaddrmsg: family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")   # rtmsg: family, dst_len, src_len, tos, table, protocol,
ATTR = struct.Struct("=HH")           #        scope, type, flags; rtattr: length, type


class NetlinkError(OSError):
    """The kernel refused a request: `errno` is its answer (EEXIST, ENODEV, ERANGE...)."""


@named_tuple
class Message:
    kind: int                          # RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE...
    head: tuple                        # the fixed struct's fields (ifinfomsg, ifaddrmsg, rtmsg)
    attrs: dict[int, bytes]            # attribute type -> raw value


@named_tuple
class Link:
    index: int
    name: str
    up: bool
    master: int | None                 # the bridge it is a port of
    mac: str


@named_tuple
class Route:
    destination: str                   # "0.0.0.0/0" for the default route
    device: int | None                 # RTA_OIF
    gateway: str | None


def attr(kind: int, value: bytes | str | int) -> bytes:
    """One rtattr: a string gets its NUL, an int is a u32, bytes go as they are (padded to 4)."""
    if isinstance(value, str):
        value = value.encode() + b"\0"
    elif isinstance(value, int):
        value = struct.pack("=I", value)
    data = ATTR.pack(ATTR.size + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    found, at = {}, 0
    while at + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, at)
        if length < ATTR.size:
            break
        found[kind & 0x3FFF] = data[at + ATTR.size:at + length]  # without NLA_F_NESTED's bits
        at += (length + 3) & ~3
    return found


def ifinfo(link: int | str = 0, up: bool | None = None) -> bytes:
    """The fixed part of a link message, for a link by index or by name (the kernel looks a
    name up when the index is 0); `up` sets or clears IFF_UP (None: leaves it alone)."""
    by_name = attr(IFLA_IFNAME, link) if isinstance(link, str) else b""
    index = 0 if by_name else link
    return IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP if up else 0, 0 if up is None else IFF_UP) + by_name


def u32(value: bytes) -> int:
    return struct.unpack("=I", value[:4])[0]


def text(value: bytes) -> str:
    """A name attribute: up to its NUL. A link's name may hold any byte but "/", ":", NUL and
    spaces, so one that is not UTF-8 is shown with U+FFFD rather than crashing a listing."""
    return value.split(b"\0", 1)[0].decode(errors="replace")


class Netlink:
    """An rtnetlink socket in the namespace it was made in: the caller's, or the one at `netns`.
    A socket belongs to the namespace it was created in, whoever uses it later, so a socket made
    while this thread is briefly inside `netns` speaks to that namespace from then on."""

    def __init__(self, netns: str | os.PathLike | None = None) -> None:
        self.seq = 0
        with namespace.entered(netns) if netns is not None else contextlib.nullcontext():
            self.sock = self.open()

    @staticmethod
    def open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        sock.bind((0, 0))                  # port 0: the kernel picks ours
        return sock

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the protocol: send one request, read until its answer is complete ------------------

    # >>> exchange
    def exchange(self, kind: int, flags: int, body: bytes) -> list[Message]:
        """Send a request; return the objects of the answer. NLMSG_ERROR with an errno raises."""
        self.seq += 1
        self.sock.send(HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, self.seq, 0) + body)
        found: list[Message] = []
        while True:
            data, at = self.sock.recv(65536), 0
            while at + HEADER.size <= len(data):
                length, reply, reply_flags, seq, _ = HEADER.unpack_from(data, at)
                if length < HEADER.size:
                    raise NetlinkError(errno.EBADMSG, "netlink: a reply shorter than its header")
                payload = data[at + HEADER.size:at + length]
                at += (length + 3) & ~3
                if seq != self.seq:
                    continue                   # not an answer to this request
                if reply == NLMSG_DONE:
                    return found
                if reply == NLMSG_ERROR:
                    error = struct.unpack_from("=i", payload)[0]
                    if error:
                        raise NetlinkError(-error, os.strerror(-error))
                    return found               # the ACK
                fixed = {RTM_NEWLINK: IFINFO, RTM_NEWADDR: IFADDR, RTM_NEWROUTE: RTMSG}.get(reply)
                if fixed is not None:
                    found.append(Message(reply, fixed.unpack_from(payload), parse_attrs(payload[fixed.size:])))
                if not reply_flags & NLM_F_MULTI:
                    return found               # a single answer (a GET without ACK)
    # <<< exchange

    def request(self, kind: int, body: bytes, flags: int = 0) -> None:
        """A change, acknowledged: returns once the kernel has done it."""
        self.exchange(kind, NLM_F_ACK | flags, body)

    # --- links ------------------------------------------------------------------------------

    def index(self, name: str) -> int | None:
        """A link's index by name (`ip link show NAME`), None when there is none."""
        try:
            [link] = self.exchange(RTM_GETLINK, 0, ifinfo(name))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        return link.head[2]

    def links(self) -> list[Link]:
        found = []
        for m in self.exchange(RTM_GETLINK, NLM_F_DUMP, ifinfo()):
            mac = m.attrs.get(IFLA_ADDRESS, b"")
            found.append(Link(m.head[2], text(m.attrs[IFLA_IFNAME]), bool(m.head[3] & IFF_UP),
                              u32(m.attrs[IFLA_MASTER]) if IFLA_MASTER in m.attrs else None,
                              ":".join(f"{b:02x}" for b in mac)))
        return found

    def add_link(self, name: str, kind: str, data: bytes = b"") -> None:
        """`ip link add NAME type KIND` (EEXIST if the name is taken); `data`: the kind's own."""
        info = attr(IFLA_INFO_KIND, kind) + (attr(IFLA_INFO_DATA, data) if data else b"")
        self.request(RTM_NEWLINK, ifinfo(name) + attr(IFLA_LINKINFO, info), NLM_F_CREATE | NLM_F_EXCL)

    # >>> add-veth
    def add_veth(self, name: str, peer: str, peer_netns_fd: int | None = None, peer_mac: str = "") -> None:
        """`ip link add NAME type veth peer name PEER [netns NS] [address MAC]`: the peer made
        directly in its namespace, named and addressed, so it never has to move or be renamed."""
        about_peer = ifinfo(peer)
        if peer_mac:
            about_peer += attr(IFLA_ADDRESS, bytes.fromhex(peer_mac.replace(":", "")))
        if peer_netns_fd is not None:
            about_peer += attr(IFLA_NET_NS_FD, peer_netns_fd)
        self.add_link(name, "veth", attr(VETH_INFO_PEER, about_peer))
    # <<< add-veth

    def set_link(self, link: int | str, *, up: bool | None = None, master: int | None = None,
                 mac: str = "") -> None:
        """`ip link set DEV [up|down] [master BRIDGE|nomaster] [address MAC]` (master 0: off its
        bridge; ENODEV when there is no such link)."""
        self.request(RTM_NEWLINK, ifinfo(link, up) + (attr(IFLA_MASTER, master) if master is not None else b"")
                     + (attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", ""))) if mac else b""))

    def delete_link(self, link: int | str) -> None:
        """`ip link del DEV`: a veth goes with its peer; a bridge's ports are unplugged, not deleted."""
        self.request(RTM_DELLINK, ifinfo(link))

    # --- addresses and routes ---------------------------------------------------------------

    def addresses(self, index: int | None = None) -> list[ipaddress.IPv4Interface]:
        """IPv4 addresses (`ip -4 addr show [dev DEV]`), as address/prefix."""
        found = []
        for m in self.exchange(RTM_GETADDR, NLM_F_DUMP, IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)):
            if index is None or m.head[4] == index:
                raw = m.attrs.get(IFA_LOCAL) or m.attrs[IFA_ADDRESS]
                found.append(ipaddress.IPv4Interface((raw, m.head[1])))
        return found

    def add_address(self, index: int, address: ipaddress.IPv4Interface) -> None:
        """`ip addr add ADDRESS/PREFIX dev DEV`; the kernel adds the subnet's connected route."""
        packed = address.ip.packed
        self.request(RTM_NEWADDR, IFADDR.pack(socket.AF_INET, address.network.prefixlen, 0, RT_SCOPE_UNIVERSE, index)
                     + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed), NLM_F_CREATE | NLM_F_EXCL)

    def routes(self) -> list[Route]:
        """The main table's IPv4 routes (`ip route`)."""
        found = []
        for m in self.exchange(RTM_GETROUTE, NLM_F_DUMP, RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            table = u32(m.attrs[RTA_TABLE]) if RTA_TABLE in m.attrs else m.head[4]
            if table != RT_TABLE_MAIN:
                continue
            destination = ipaddress.IPv4Address(m.attrs.get(RTA_DST, bytes(4)))
            gateway = m.attrs.get(RTA_GATEWAY)
            found.append(Route(f"{destination}/{m.head[1]}", u32(m.attrs[RTA_OIF]) if RTA_OIF in m.attrs else None,
                               str(ipaddress.IPv4Address(gateway)) if gateway else None))
        return found

    def add_default_route(self, gateway: ipaddress.IPv4Address) -> None:
        """`ip route add default via GATEWAY` (ENETUNREACH when no address is on its subnet)."""
        self.request(RTM_NEWROUTE, RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                                              RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                     + attr(RTA_GATEWAY, gateway.packed), NLM_F_CREATE | NLM_F_EXCL)
