"""NAT and forwarding rules, as nftables JSON, in one table of our own: `ip mini`.

Three jobs, the ones docker does with iptables:

- **egress** (MASQUERADE): a packet from a container (172.29.0.2) leaving by another link gets
  the host's address of that link as its source, so that replies find their way back; conntrack
  undoes it on the replies. Needs `net.ipv4.ip_forward=1` (we set it, and put the old value
  back when our table goes).
- **published ports** (DNAT): a packet for a local address of the host, port 8080, gets the
  container's address and port 80 as destination. In `prerouting` for packets from elsewhere (other
  hosts, other namespaces), and in `output` for the host's own programs talking to its own
  addresses. 127.0.0.1 is left out: a packet from 127.0.0.1 may not leave `lo`, so that case
  is the userland proxy's (ports.py).
- **forwarding** only for what we own: replies and DNATed traffic into a bridge of ours,
  traffic inside one bridge, traffic out of a bridge to the world; anything else towards one of
  our bridges (another bridge of ours, a host that routes to 172.29.0.0/16) is dropped.

Our chains have policy accept and only speak about our bridges, so the host's other rules
are untouched; a drop in someone else's table still wins (nftables asks every base chain).
Each rule carries a comment naming its owner (`mini:net:<bridge>`, `mini:ct:<container id>`)
so that an owner's rules can be found and deleted by handle, and the table is deleted when no
rule is left. Never `flush ruleset`: that would wipe the host's firewall too.

Rules go through Debian's libnftables binding (`python3-nftables`) when it is importable,
otherwise through `nft -j -f -`: the same JSON document either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from mini_runtime import paths
from mini_runtime.errors import System, Unavailable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

FAMILY, TABLE = "ip", "mini"
#: Our base chains: (name, type, hook, priority). dstnat is -100, srcnat 100, filter 0.
CHAINS = (("prerouting", "nat", "prerouting", -100), ("output", "nat", "output", -100),
          ("postrouting", "nat", "postrouting", 100), ("forward", "filter", "forward", 0))
#: Every bridge of ours starts with this (`mini0`, `mini-<id>`): the "not one of ours" match.
OURS = "mini*"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
#: apply's libnftables contexts, one per network namespace (keyed by /proc/self/ns/net's inode).
CONTEXTS: dict[tuple[int, int], Any] = {}


# --- the adapter: one JSON document, two ways to apply it ---------------------------------------

# >>> nft-apply
def apply(commands: list[dict]) -> list[dict]:
    """Run nftables JSON commands atomically (all or none); the objects a `list` returns."""
    document = {"nftables": commands}
    try:
        import nftables  # Debian's python3-nftables (a system site package)
    except ImportError:
        nftables = None
    if nftables is not None:
        # A context is kept (a run applies ~8 times), but it keeps the netlink socket it opened,
        # which speaks to the namespace it was opened in: one per namespace, not per process.
        here = os.stat("/proc/self/ns/net")
        nft = CONTEXTS.get((here.st_dev, here.st_ino))
        if nft is None:
            nft = CONTEXTS[here.st_dev, here.st_ino] = nftables.Nftables()
            nft.set_json_output(True)
        code, output, error = nft.json_cmd(document)
    else:
        if not shutil.which("nft"):
            raise Unavailable("nftables is not installed (apt install nftables python3-nftables)")
        done = subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps(document),
                              capture_output=True, text=True)
        code, error = done.returncode, done.stderr
        output = json.loads(done.stdout) if done.stdout.strip() else {}
    if code != 0:
        raise System(f"nftables: {error.strip().splitlines()[0] if error.strip() else code}")
    return (output or {}).get("nftables", [])
# <<< nft-apply


def table() -> list[dict] | None:
    """The objects of our table (table, chains, rules with handles), None if there is none."""
    try:
        return apply([{"list": {"table": {"family": FAMILY, "name": TABLE}}}])
    except System as e:
        if "No such file or directory" in str(e):
            return None
        raise


def rules() -> list[dict]:
    return [item["rule"] for item in table() or [] if "rule" in item]


# --- expressions (what `nft list` prints is in the comments) ------------------------------------

def match(left: Any, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key: str) -> dict:
    return {"meta": {"key": key}}


def field(protocol: str, name: str) -> dict:
    return {"payload": {"protocol": protocol, "field": name}}


def prefix(network: str) -> dict:
    address, length = network.split("/")
    return {"prefix": {"addr": address, "len": int(length)}}


def rule(chain: str, comment: str, *expr: dict, verb: str = "add") -> dict:
    return {verb: {"rule": {"family": FAMILY, "table": TABLE, "chain": chain,
                            "comment": comment, "expr": list(expr)}}}


ACCEPT, DROP = {"accept": None}, {"drop": None}
LOCAL_DESTINATION = match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")  # fib daddr type local


# --- the table ---------------------------------------------------------------------------------

# >>> nat-table
def ensure_table() -> None:
    """Our table and its four base chains (idempotent: `add` of what exists is no error), and
    forwarding on, remembering what it was."""
    commands = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
    for name, kind, hook, priority in CHAINS:
        commands.append({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name, "type": kind,
                                           "hook": hook, "prio": priority, "policy": "accept"}}})
    apply(commands)
    before = forward_memory()
    if not before.exists():
        paths.atomic_write(before, IP_FORWARD.read_bytes())
    IP_FORWARD.write_text("1\n")
# <<< nat-table


def drop_table_if_unused() -> bool:
    """Delete our table when no rule is left in it, and put ip_forward back. True if it went."""
    objects = table()
    if objects is not None:
        if any("rule" in item for item in objects):
            return False
        apply([{"delete": {"table": {"family": FAMILY, "name": TABLE}}}])
    before = forward_memory()
    if before.exists():
        IP_FORWARD.write_bytes(before.read_bytes())
        before.unlink()
        try:
            before.parent.rmdir()
        except OSError:
            pass
    return True


def forward_memory() -> Path:
    """Where ip_forward's value from before our table is kept (volatile, like the sysctl)."""
    return paths.run_root() / "network" / "ip_forward.before"


def deletions(comment: str) -> list[dict]:
    """The commands that delete every rule of ours carrying `comment`."""
    return [{"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": r["chain"],
                                 "handle": r["handle"]}}} for r in rules() if r.get("comment") == comment]


def delete_rules(comment: str) -> int:
    """Delete every rule of ours carrying `comment`; how many there were."""
    doomed = deletions(comment)
    if doomed:
        apply(doomed)
    return len(doomed)


def owners() -> set[str]:
    """The container ids that have rules in our table (what the sweep compares with the living)."""
    return {r["comment"].removeprefix("mini:ct:") for r in rules()
            if r.get("comment", "").startswith("mini:ct:")}


# --- a bridge: egress and forwarding -----------------------------------------------------------

# >>> nat-network
def add_network(bridge: str, subnet: str) -> None:
    """MASQUERADE for the bridge's subnet, and the forwarding rules of the bridge."""
    tag = f"mini:net:{bridge}"
    out_of, into = match(meta("iifname"), bridge), match(meta("oifname"), bridge)
    apply(deletions(tag) + [          # one transaction: replacing them never opens a gap
        # ip saddr 172.29.0.0/16 oifname != "mini0" masquerade
        rule("postrouting", tag, match(field("ip", "saddr"), prefix(subnet)),
             match(meta("oifname"), bridge, "!="), {"masquerade": None}),
        # oifname "mini0" ct state established,related accept: the replies
        rule("forward", tag, into, match({"ct": {"key": "state"}}, ["established", "related"], "in"), ACCEPT),
        # iifname "mini0" oifname "mini0" accept: container to container on this bridge
        rule("forward", tag, out_of, into, ACCEPT),
        # iifname "mini0" oifname != "mini*" accept: out to the world, never to another bridge of ours
        rule("forward", tag, out_of, match(meta("oifname"), OURS, "!="), ACCEPT),
        # oifname "mini0" drop: nothing else gets in (published ports are inserted above this)
        rule("forward", tag, into, DROP),
    ])
# <<< nat-network


def remove_network(bridge: str) -> None:
    delete_rules(f"mini:net:{bridge}")


# --- a container's published ports ------------------------------------------------------------

# >>> nat-publish
def publish(container_id: str, bridge: str, container_ip: str, bindings: Iterable[Any]) -> None:
    """DNAT each binding (host_ip, host_port, container_port, proto) to the container, and let
    that traffic through the forward chain. Loopback host addresses are the proxy's job."""
    tag = f"mini:ct:{container_id}"
    commands = []
    for b in bindings:
        if b.host_ip.startswith("127."):
            continue
        to_host = [LOCAL_DESTINATION, match(field(b.proto, "dport"), b.host_port)]
        if b.host_ip not in ("", "0.0.0.0"):
            to_host.insert(1, match(field("ip", "daddr"), b.host_ip))
        dnat = {"dnat": {"addr": container_ip, "port": b.container_port}}
        # iifname != "mini0" fib daddr type local tcp dport 8080 dnat to 172.29.0.2:80
        commands.append(rule("prerouting", tag, match(meta("iifname"), bridge, "!="), *to_host, dnat))
        # fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to 172.29.0.2:80
        commands.append(rule("output", tag, match(field("ip", "daddr"), prefix("127.0.0.0/8"), "!="),
                             *to_host, dnat))
        # iifname != "mini0" oifname "mini0" ip daddr 172.29.0.2 tcp dport 80 accept (first in the chain)
        commands.append(rule("forward", tag, match(meta("iifname"), bridge, "!="),
                             match(meta("oifname"), bridge), match(field("ip", "daddr"), container_ip),
                             match(field(b.proto, "dport"), b.container_port), ACCEPT, verb="insert"))
    if commands:
        apply(commands)
# <<< nat-publish


def unpublish(container_id: str) -> int:
    return delete_rules(f"mini:ct:{container_id}")
