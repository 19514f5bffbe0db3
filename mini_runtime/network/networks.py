"""Networks: the default `bridge`, `host`, `none`, and user-defined ones (`mini network create`).

A user-defined network is a bridge of its own (`mini-<id10>`) on a subnet of its own (a free /24
of 172.30.0.0/16, or --subnet), with its own MASQUERADE and forwarding rules; nat.py keeps
bridges apart, so containers on different networks cannot reach each other. The record is a
JSON file under the state root in the Engine API's shape (`docker network inspect`), with the
containers attached to it.

**Names.** On a user-defined network containers reach each other by name (and alias); on the
default bridge they do not (docker's rule: there, only the legacy `--link`). Docker answers names
with an embedded DNS server at 127.0.0.11 in every container; we keep **/etc/hosts current**
instead: when a container joins or leaves a network, or is renamed, the hosts file of every
member is rewritten with the others' names. Why: it needs no process living beside each container (a DNS
server would have to run inside every container's namespace, be restarted with it and forward
other queries to the host's resolvers), it works with any libc, static busybox included, and
the learner can `cat /etc/hosts` and see exactly why a name resolves. What it costs: a program
that read the file once does not see later changes, and there is no resolution of names of
other hosts through us (docker's server forwards those). The file is rewritten in place, because
it is bind-mounted into the container (etcfiles.rewrite).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from mini_runtime import paths
from mini_runtime.errors import Conflict, InvalidParameter, NotFound
from mini_runtime.network import bridge, etcfiles, ipam, nat
from mini_runtime.units import now_rfc3339

DEFAULT, DEFAULT_BRIDGE = "bridge", "mini0"
BUILTIN = ("bridge", "host", "none")
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
NAME_MAX = 200                      # (a file name has at most 255 bytes: ".<name>.json.tmp-<pid>")
#: A key of our own in a record, never shown: the subnet was given (--subnet), so --ip may be.
SUBNET_GIVEN = "MiniSubnetGiven"


def directory() -> Path:
    return paths.state_root() / "network" / "networks"


@contextlib.contextmanager
def lock() -> Iterator[None]:
    """One lock for every change to networks, bridges and rules: concurrent `mini` take turns."""
    with paths.locked(paths.state_root() / "network" / "lock"):
        yield


def network_id(name: str, salt: str = "") -> str:
    return hashlib.sha256(f"{name}\0{salt}".encode()).hexdigest()


def builtin(name: str) -> dict:
    """The record of a pre-defined network (its membership is kept like any other's)."""
    record = {"Name": name, "Id": network_id(name), "Created": "0001-01-01T00:00:00Z", "Scope": "local",
              "Driver": {"bridge": "bridge", "host": "host", "none": "null"}[name], "EnableIPv6": False,
              "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
              "Attachable": False, "Containers": {}, "Options": {}, "Labels": {}}
    if name == DEFAULT:
        subnet = ipam.default_subnet()
        record["IPAM"]["Config"] = [{"Subnet": str(subnet), "Gateway": str(next(subnet.hosts()))}]
        record["Options"] = {"com.docker.network.bridge.name": DEFAULT_BRIDGE}
    return record


def load(name: str) -> dict | None:
    """A network's record. A pre-defined one keeps only its members on disk: its subnet is
    MINI_SUBNET's of now (ipam refuses a change while containers use the old one). A name no
    network can have is none: it names a file, and `--network ../../x` must not read ../../x.json."""
    if not NAME.fullmatch(name) or len(name) > NAME_MAX:
        return None
    try:
        record = json.loads((directory() / f"{name}.json").read_text())
    except FileNotFoundError:
        return builtin(name) if name in BUILTIN else None
    return builtin(name) | {"Containers": record.get("Containers", {})} if name in BUILTIN else record


def save(record: dict) -> None:
    paths.atomic_write(directory() / f"{record['Name']}.json", json.dumps(record, indent=1).encode() + b"\n")


def user_records() -> list[dict]:
    found = []
    for file in sorted(directory().glob("*.json")) if directory().is_dir() else []:
        record = json.loads(file.read_text())
        if record["Name"] not in BUILTIN:
            found.append(record)
    return found


def ls() -> list[dict]:
    """Every network, the pre-defined ones first (`mini network ls`)."""
    return [load(name) for name in BUILTIN] + user_records()


def inspect(ref: str) -> dict:
    """A network by name, full id or unique id prefix, as docker shows it."""
    everything = ls()
    for record in everything:
        if ref in (record["Name"], record["Id"]):
            return shown(record)
    matches = [r for r in everything if r["Id"].startswith(ref)] if len(ref) >= 1 else []
    if len(matches) == 1:
        return shown(matches[0])
    raise NotFound(f"network {ref} not found")


def shown(record: dict) -> dict:
    """The record without the keys of our own (docker's NetworkResource)."""
    return {k: v for k, v in record.items() if k != SUBNET_GIVEN}


def bridge_of(record: dict) -> str:
    return record["Options"].get("com.docker.network.bridge.name", "")


def subnet_of(record: dict) -> ipam.Network:
    return ipam.parse_subnet(record["IPAM"]["Config"][0]["Subnet"])


def pool_of(record: dict) -> ipam.Pool:
    """The network's addresses: its subnet, gateway and (--ip-range) the part containers get."""
    config = record["IPAM"]["Config"][0]
    ip_range = config.get("IPRange")
    return ipam.Pool(record["Name"], subnet_of(record), ipam.Address(config["Gateway"]),
                     ipam.Network(ip_range) if ip_range else None)


# >>> network-create
def create(name: str, subnet: str | None = None, gateway: str | None = None, ip_range: str | None = None,
           labels: dict[str, str] | None = None) -> dict:
    """A user-defined network: a record, a bridge, its rules. Nothing stays if a step fails."""
    if not NAME.fullmatch(name):
        raise InvalidParameter(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if len(name) > NAME_MAX:
        raise InvalidParameter(f"invalid network name {name[:20]}...: {len(name)} characters, at most "
                               f"{NAME_MAX} (its record is a file named after it)")
    if (gateway or ip_range) and not subnet:
        raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
    with lock():
        if name in (*BUILTIN, "default") or load(name) is not None:    # (default: the bridge's alias)
            raise Conflict(f"network with name {name} already exists")
        config = ipam_config(subnet, gateway, ip_range)
        ident = network_id(name, now_rfc3339() + os.urandom(8).hex())
        record = builtin(DEFAULT) | {"Name": name, "Id": ident, "Created": now_rfc3339(), "Containers": {},
                                     "IPAM": {"Driver": "default", "Options": {}, "Config": [config]},
                                     "Options": {"com.docker.network.bridge.name": f"mini-{ident[:10]}"},
                                     "Labels": dict(sorted((labels or {}).items())),   # (as Go writes a map)
                                     SUBNET_GIVEN: bool(subnet)}
        try:
            wire(record)
            save(record)
        except BaseException:
            with contextlib.suppress(Exception):   # the first error is the one to report
                unwire(record)
            raise
    return record


def ipam_config(subnet: str | None, gateway: str | None, ip_range: str | None) -> dict:
    """A new network's IPAM Config (lock() held): --subnet if it can carry containers and
    overlaps no route and no network of ours, else a free /24; --gateway and --ip-range in it."""
    routes = bridge.routes()
    taken = [subnet_of(r) for r in user_records()] + [ipam.default_subnet()]
    if subnet:
        chosen = ipam.check_usable(ipam.parse_subnet(subnet))
        for other in taken:                         # (first: our bridges' routes are there too)
            if other.overlaps(chosen):
                raise Conflict(f"invalid pool request: Pool overlaps with other one on this address space ({other})")
        ipam.check_no_overlap(chosen, routes)
    else:
        chosen = ipam.pick_subnet(taken, routes)
    first = ipam.check_gateway(chosen, gateway) if gateway else next(chosen.hosts())
    config = {"Subnet": str(chosen), "Gateway": str(first)}
    if ip_range:
        config["IPRange"] = str(ipam.check_range(chosen, first, ip_range))
    return config
# <<< network-create


# >>> check-wanted
def check_wanted(record: dict, text: str) -> ipam.Address:
    """--ip: an IPv4 address of the network's subnet, which must have been given (--subnet):
    a subnet mini picked may be another one on the next machine, and the address with it."""
    try:
        wanted = ipam.Address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IPv4 address: {text}") from None
    if not record.get(SUBNET_GIVEN):
        raise InvalidParameter("user specified IP address is supported only when connecting to networks "
                               "with user configured subnets")
    if wanted not in subnet_of(record):
        raise InvalidParameter(f"Invalid address {wanted}: It does not belong to any of this network's subnets")
    return wanted
# <<< check-wanted


def wire(record: dict) -> None:
    """The network's bridge with its gateway address, and its rules (idempotent)."""
    subnet = subnet_of(record)
    gateway = record["IPAM"]["Config"][0]["Gateway"]
    bridge.ensure_bridge(bridge_of(record), ipam.Interface(f"{gateway}/{subnet.prefixlen}"))
    nat.ensure_table()
    nat.add_network(bridge_of(record), str(subnet))


def unwire(record: dict) -> None:
    nat.remove_network(bridge_of(record))
    bridge.remove_bridge(bridge_of(record))
    nat.drop_table_if_unused()


def remove(ref: str) -> str:
    """`mini network rm`: only a network without containers. Returns its name."""
    with lock():
        record = inspect(ref)
        if record["Name"] in BUILTIN:
            raise Conflict(f"{record['Name']} is a pre-defined network and cannot be removed")
        if record["Containers"]:
            raise Conflict(f"error while removing network: network {record['Name']} id {record['Id']} "
                           f"has active endpoints")
        unwire(record)
        ipam.forget(record["Name"])
        (directory() / f"{record['Name']}.json").unlink(missing_ok=True)
    return record["Name"]


# --- membership, and the hosts files that follow it ----------------------------------------------

def join(name: str, container_id: str, endpoint: dict) -> None:
    """Record the container on the network (call with lock() held) and, on a user-defined
    network, tell every member's /etc/hosts about it and the others."""
    record = load(name)
    record["Containers"][container_id] = endpoint
    save(record)
    refresh_hosts(record)


def leave(container_id: str, only: str | None = None) -> list[str]:
    """Take the container off every network it is on, or `only` that one (lock() held), and
    rewrite its own hosts file and the other members'. The networks it left."""
    hosts = Path((members_entry(container_id) or {}).get("HostsPath") or "")
    left = change_member(container_id, lambda found: found.pop(container_id), only)
    if only and hosts.is_file():
        rewrite_hosts(container_id, ls(), hosts)
    return left


def rename(container_id: str, name: str) -> list[str]:
    """`mini rename`: the container's new name on every network it is on, in every member's
    /etc/hosts too (docker renames its DNS records), under lock(). The networks."""
    with lock():
        return change_member(container_id, lambda found: found[container_id].update(Name=name))


def change_member(container_id: str, change: Callable[[dict], object], only: str | None = None) -> list[str]:
    """`change` the Containers of each network the container is on (`only` that one; lock()
    held), and rewrite its members' hosts files. The networks changed."""
    changed = []
    for record in ls():
        if container_id in record["Containers"] and only in (None, record["Name"]):
            change(record["Containers"])
            save(record)
            refresh_hosts(record)
            changed.append(record["Name"])
    return changed


def members() -> dict[str, str]:
    """{container id: network name} over every network."""
    return {cid: r["Name"] for r in ls() for cid in r["Containers"]}


def members_entry(container_id: str) -> dict | None:
    """The container's entry in the first network it is on (its hosts file, name, hostname)."""
    return next((r["Containers"][container_id] for r in ls() if container_id in r["Containers"]), None)


# >>> refresh-hosts
def peers(record: dict, container_id: str) -> list[tuple[str, str]]:
    """The (ip, names) lines a member's /etc/hosts gets for the other members: name, aliases,
    short id. None on the pre-defined networks (docker resolves no names there)."""
    if record["Name"] in BUILTIN:
        return []
    lines = []
    for other, ep in sorted(record["Containers"].items()):
        if other != container_id:
            names = [n for n in [ep.get("Name", "")] + list(ep.get("Aliases") or []) + [other[:12]] if n]
            lines.append((ep["IPv4Address"].split("/")[0], " ".join(dict.fromkeys(names))))
    return lines


def refresh_hosts(record: dict) -> None:
    """Every member's hosts file, after a change of this network's members."""
    if record["Name"] in BUILTIN:
        return
    everything = ls()
    for cid, ep in record["Containers"].items():
        path = Path(ep.get("HostsPath") or "")
        if path.is_file():
            rewrite_hosts(cid, everything, path)


def rewrite_hosts(container_id: str, everything: list[dict], path: Path) -> None:
    """One container's hosts file from every network it is on (`network connect` adds more):
    its own address on each (the first network's first), the others' of each, --add-host's."""
    mine = [(r, r["Containers"][container_id]) for r in everything if container_id in r["Containers"]]
    if not mine:
        return
    first = mine[0][1]
    own = [(ep["IPv4Address"].split("/")[0], first["Hostname"]) for _, ep in mine[1:] if ep["IPv4Address"]]
    lines = own + [line for record, _ in mine for line in peers(record, container_id)]
    etcfiles.rewrite(path, etcfiles.hosts(first["Hostname"], first["IPv4Address"].split("/")[0] or None,
                                          lines + [tuple(e) for e in first.get("ExtraHosts") or ()]))
# <<< refresh-hosts
