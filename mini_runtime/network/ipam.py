"""IP address management: which container has which address on which network.

Each network (the default `bridge`, and every user-defined one) has a subnet; its first host
address is the gateway (the bridge's own address; `--gateway` picks another); containers get the
lowest free address of the subnet (or of its `--ip-range`), never the gateway, the network or
the broadcast address. The allocations are a small JSON file per network
under the state root, changed under a file lock, so two `mini run` at once never get the same
address and a restarted daemon knows what is taken. `rm` (or the sweep after a killed monitor)
releases the address, and the next container may get it again.

A subnet must not overlap a route the host already has: a container address that is also "over
there" on the host's network makes both unreachable. We refuse such a subnet with a clear error
instead of guessing another one.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from mini_runtime import paths
from mini_runtime.errors import Conflict, InvalidParameter, Unavailable

#: The default bridge's subnet (docker uses 172.17.0.0/16; a different one lets both coexist).
DEFAULT_SUBNET = "172.29.0.0/16"
#: Where user-defined networks get their subnets from, a /24 each, unless --subnet says.
USER_POOL = "172.30.0.0/16"
USER_PREFIX = 24

Network = ipaddress.IPv4Network
Address = ipaddress.IPv4Address
Interface = ipaddress.IPv4Interface


def default_subnet() -> Network:
    """`MINI_SUBNET` in the environment, else DEFAULT_SUBNET."""
    return check_usable(parse_subnet(os.environ.get("MINI_SUBNET") or DEFAULT_SUBNET))


def parse_subnet(text: str) -> Network:
    if ":" in text:
        raise InvalidParameter(f"invalid subnet {text!r}: mini's networks are IPv4-only (as docker's "
                               "default bridge): give an IPv4 subnet in CIDR form, like 10.1.0.0/24")
    try:
        subnet = ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        raise InvalidParameter(f"invalid subnet {text!r}: {e}") from None
    if subnet.prefixlen > 30:
        raise InvalidParameter(f"invalid subnet {text!r}: too small for a gateway and a container")
    return subnet


# >>> usable
#: Ranges that cannot carry containers, and why (RFC 6890's special-purpose registry; what
#: Linux does with them decides: class E, 240.0.0.0/4, and link-local work, as in docker).
NOT_FOR_HOSTS = [
    (Network("0.0.0.0/8"), '"this network" (RFC 1122), a source address for a host that has none yet',
     "the kernel takes no gateway there (Network is unreachable)"),
    (Network("127.0.0.0/8"), "loopback", "in a container these are its own lo's addresses, so its "
                                         "gateway and the other containers would be itself"),
    (Network("224.0.0.0/4"), "multicast, addresses that name groups, not hosts",
     "the kernel takes no gateway there (Network is unreachable)"),
]


def check_usable(subnet: Network) -> Network:
    """Refuse a subnet (of --subnet or MINI_SUBNET) whose addresses cannot be given to
    containers, at once: else the bridge gets its address, and then every container's start
    fails with "Network is unreachable" (or, on loopback, it can reach only itself)."""
    for reserved, what, why in NOT_FOR_HOSTS:
        if subnet.overlaps(reserved):
            raise InvalidParameter(f"invalid subnet {subnet}: it overlaps {reserved}, {what}; {why}. "
                                   f"Choose one in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    return subnet
# <<< usable


# >>> overlap
def check_no_overlap(subnet: Network, routes: Iterable[tuple[str, str]], own_device: str = "") -> None:
    """Refuse `subnet` if a route of the host (destination, device) overlaps it. The default
    route overlaps everything and says nothing; a route through our own bridge is ours."""
    for destination, device in routes:
        network = ipaddress.ip_network(destination, strict=False)
        if network.version != 4 or network.prefixlen == 0 or (own_device and device == own_device):
            continue
        if network.overlaps(subnet):
            raise Conflict(f"subnet {subnet} overlaps the route {network} dev {device} on this "
                           f"host: choose another subnet (MINI_SUBNET, or --subnet)")
# <<< overlap


def pick_subnet(taken: Iterable[Network], routes: list[tuple[str, str]]) -> Network:
    """The first /24 of USER_POOL that no network of ours and no host route uses."""
    used = list(taken)
    for candidate in ipaddress.IPv4Network(USER_POOL).subnets(new_prefix=USER_PREFIX):
        if any(candidate.overlaps(u) for u in used):
            continue
        try:
            check_no_overlap(candidate, routes)
        except Conflict:
            continue
        return candidate
    raise Unavailable(f"no free subnet left in {USER_POOL}: remove a network or give --subnet")


def directory() -> Path:
    return paths.state_root() / "network" / "ipam"


# >>> pool
class Pool:
    """The addresses of one network, as a file: {"Subnet", "Gateway", "Allocated": {ip: owner}}."""

    def __init__(self, network: str, subnet: Network, gateway: Address | None = None,
                 ip_range: Network | None = None) -> None:
        self.network = network
        self.subnet = subnet
        self.gateway = gateway or next(subnet.hosts())      # (docker's default: the first host)
        self.ip_range = ip_range                             # (--ip-range: containers get these)
        self.file = directory() / f"{network}.json"

    def allocate(self, owner: str, wanted: Address | None = None) -> Address:
        """The lowest free address for `owner` (the same one again if it has one already), or
        `wanted` (--ip, of the subnet; its --ip-range does not matter, as in docker's IPAM)."""
        with paths.locked(self.file.with_suffix(".lock")):
            taken = self.load()
            for ip, who in taken.items():
                if who == owner:
                    return ipaddress.IPv4Address(ip)
            if wanted is not None:
                if str(wanted) in taken or wanted not in candidates(self.subnet, self.gateway):
                    raise Conflict("Address already in use")       # (docker's IPAM's words)
                taken[str(wanted)] = owner
                self.save(taken)
                return wanted
            for candidate in candidates(self.subnet, self.gateway, self.ip_range):
                if str(candidate) not in taken:
                    taken[str(candidate)] = owner
                    self.save(taken)
                    return candidate
        raise Unavailable(f"no available IPv4 addresses on this network's address pools: {self.network} "
                          f"({self.ip_range or self.subnet})")     # (docker's words; the subnet, not the id)

    def release(self, owner: str) -> bool:
        """Give back `owner`'s address; False when it had none."""
        with paths.locked(self.file.with_suffix(".lock")):
            taken = self.load()
            kept = {ip: who for ip, who in taken.items() if who != owner}
            if kept == taken:
                return False
            self.save(kept)
            return True

    def allocated(self) -> dict[str, str]:
        """{address: owner}, as stored."""
        with paths.locked(self.file.with_suffix(".lock")):
            return self.load()

    def load(self) -> dict[str, str]:
        """The allocations (call with the lock held). A file for another subnet is refused
        while it still has users: their addresses would be outside the new subnet."""
        try:
            record = json.loads(self.file.read_text())
        except FileNotFoundError:
            return {}
        if record["Subnet"] != str(self.subnet):
            if record["Allocated"]:
                raise Conflict(f"network {self.network} changed its subnet from {record['Subnet']} "
                               f"to {self.subnet} while containers use it: remove them first")
            return {}
        return dict(record["Allocated"])

    def save(self, taken: dict[str, str]) -> None:
        ordered = dict(sorted(taken.items(), key=lambda item: ipaddress.IPv4Address(item[0])))
        record = {"Subnet": str(self.subnet), "Gateway": str(self.gateway), "Allocated": ordered}
        paths.atomic_write(self.file, json.dumps(record, indent=1).encode() + b"\n")
# <<< pool


def candidates(subnet: Network, gateway: Address, ip_range: Network | None = None) -> Iterator[Address]:
    """The addresses a container may get, lowest first: those of `ip_range` (else the subnet)
    but never the subnet's network or broadcast address (they name the subnet) nor the gateway."""
    reserved = {subnet.network_address, subnet.broadcast_address, gateway}
    return (a for a in (ip_range or subnet) if a not in reserved)


def check_gateway(subnet: Network, text: str) -> Address:
    """--gateway: an address of the subnet that can be a host's (docker's words when it is not
    in the subnet at all)."""
    try:
        gateway = Address(text)
    except ValueError:
        raise InvalidParameter(f"no matching subnet for gateway {text}") from None
    if gateway not in subnet:
        raise InvalidParameter(f"no matching subnet for gateway {text}")
    if gateway in (subnet.network_address, subnet.broadcast_address):
        what = ("network", "it names the subnet") if gateway == subnet.network_address else \
            ("broadcast", "it reaches every host of the subnet")
        raise InvalidParameter(f"invalid gateway {gateway}: the {what[0]} address of {subnet} is no "
                               f"host's ({what[1]}), so the bridge cannot have it")
    return gateway


def check_range(subnet: Network, gateway: Address, text: str) -> Network:
    """--ip-range: a part of the subnet (docker's words when it is not) with at least one
    address left for a container."""
    try:
        ip_range = Network(text, strict=True)
    except ValueError as e:
        if "has host bits set" in str(e):
            raise InvalidParameter(f"invalid ip-range {text!r}: {e}") from None
        raise InvalidParameter(f"no matching subnet for range {text}") from None
    if not ip_range.subnet_of(subnet):
        raise InvalidParameter(f"no matching subnet for range {text}")
    if next(candidates(subnet, gateway, ip_range), None) is None:
        raise InvalidParameter(f"invalid ip-range {text}: no address in it for a container (not the "
                               f"gateway, nor the network or broadcast address of {subnet})")
    return ip_range


def owners() -> dict[str, list[str]]:
    """{owner: [networks]} over every network's file: what the sweep compares with the living."""
    found: dict[str, list[str]] = {}
    for file in sorted(directory().glob("*.json")) if directory().is_dir() else []:
        try:
            allocated = json.loads(file.read_text())["Allocated"]
        except (OSError, ValueError, KeyError):
            continue
        for owner in allocated.values():
            found.setdefault(owner, []).append(file.stem)
    return found


def release_everywhere(owner: str) -> list[str]:
    """Give back every address `owner` has, whatever the subnet: the networks it had one on."""
    released = []
    for file in sorted(directory().glob("*.json")) if directory().is_dir() else []:
        with paths.locked(file.with_suffix(".lock")):
            record = json.loads(file.read_text())
            kept = {ip: who for ip, who in record["Allocated"].items() if who != owner}
            if kept != record["Allocated"]:
                record["Allocated"] = kept
                paths.atomic_write(file, json.dumps(record, indent=1).encode() + b"\n")
                released.append(file.stem)
    return released


def forget(network: str) -> None:
    """Delete a network's file (`network rm`: it has no users left)."""
    (directory() / f"{network}.json").unlink(missing_ok=True)
    (directory() / f"{network}.lock").unlink(missing_ok=True)
