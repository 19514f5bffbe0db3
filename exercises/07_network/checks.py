"""The graded checks of chapter 07. Rebuild (7.1-7.3, 5 points): your `connect` plugged into the
real runtime wires real containers; your predicted errnos against the kernel's. Extend (7.4-7.6,
11 points, in checks_extend.py beside this file): docker's --add-host, black-box.

Every check runs its containers inside a private pair of network namespaces it makes (a "test
host" where mini runs, and an "outside" host: exercises/netlab.py), never in the machine's own
network: the bridge, its addresses and its nftables rules exist only in there, and go with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, NamedTuple

from exercises import netlab
from exercises.feedback import clip
from exercises.grading import Chapter, CheckFailed, Context
from exercises.why import expect_predictions
from mini_runtime import syscalls


def nat_missing() -> str | None:
    """Why this machine cannot grade chapter 07 (containers on a bridge need nftables' ip
    family for MASQUERADE), or None. Probed in a throwaway namespace, never the machine's."""
    if os.geteuid() != 0:
        return "chapter 07's checks make network namespaces: run the grader as root (sudo)"
    try:
        probe = subprocess.run(["unshare", "--net", "nft", "add", "table", "ip", "mini-probe"],
                               capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"chapter 07 needs nftables (apt install nftables): {e}"
    if probe.returncode != 0:
        return ("chapter 07 needs nftables with the ip family (NAT for the bridge), which this "
                f"kernel lacks ({(probe.stderr.strip().splitlines() or ['?'])[0][:80]}): grade it on the host or the VM")
    return None


CHAPTER = Chapter(number="07", slug="network", module="mini_runtime.network.bridge",
                  learner_file="bridge.py", given=("Interface", "host_end", "mac_for", "more_end", "netlink"),
                  requires=nat_missing)
check = CHAPTER.check


class Lab(NamedTuple):
    host: Path          # the test host's namespace file (mini runs there: this thread is in it)
    outside: Path       # the outside host's
    subnet: str         # mini's default bridge subnet for this check (MINI_SUBNET)
    gateway: str        # the bridge's own address: the first host of the subnet


@contextlib.contextmanager
def lab(ctx: Context) -> Iterator[Lab]:
    """The check's private network world, with a random bridge subnet and a resolv.conf of its
    own (containers never get the machine's resolvers). The checker's thread is in the test
    host until the end, so the jail and every `mini` it starts are too."""
    base = ctx.scratch or Path(tempfile.mkdtemp(prefix="mini-grade-"))
    ctx.private_state_root()                # IPAM and network records: this check's own
    second = ctx.rng.randrange(0, 256)
    subnet = f"10.{second}.0.0/16"
    os.environ["MINI_SUBNET"] = subnet
    resolv = base / "resolv.conf"
    resolv.write_text(f"nameserver {netlab.OUTSIDE_IP}\n")
    os.environ["MINI_RESOLV_CONF"] = str(resolv)
    host, outside = base / "netns" / "host", base / "netns" / "outside"
    with netlab.two_hosts(host, outside):
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            netlab.joiner(host)()
            yield Lab(host, outside, subnet, f"10.{second}.0.1")
        finally:
            syscalls.setns(home, syscalls.CLONE_NEWNET)
            os.close(home)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return (result.stderr.strip().splitlines() or [""])[-1]


def leftovers(timeout: float = 5) -> dict[str, list[str]]:
    """What mini made in the test host for its containers and should have removed (read from
    inside it). mini0 and its rules stay for the next container, as docker0 does; a container's
    veth pair goes with its namespace, which the kernel tears down soon but not at once, so a
    pair counts as left only if it is still there after `timeout` seconds."""
    from mini_runtime.network import bridge, ipam, namespace, nat, networks

    deadline = time.monotonic() + timeout
    while True:
        links = [name for name in bridge.links() if name not in ("lo", netlab.HOST_LINK, networks.DEFAULT_BRIDGE)]
        found = {"links": links, "netns mounts": namespace.names(), "addresses": sorted(ipam.owners()),
                 "rules": sorted(nat.owners()), "ports of mini0": bridge.bridge_ports(networks.DEFAULT_BRIDGE)}
        found = {k: v for k, v in found.items() if v}
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


SCRIPT = ("ip -o -4 addr show eth0; cat /sys/class/net/eth0/address; ip route; ip -o link show lo; "
          "ping -c 1 -W 2 {gateway} >/dev/null && echo gateway-answers")


@check("7.1", "connect: eth0 with its address and MAC, lo up, the default route; the gateway answers",
       points=2, section="§ A cable: the veth pair", plug=("connect",), timeout=90)
def wired(ctx: Context) -> None:
    with lab(ctx) as net:
        result = ctx.mini("run", "--rm", "--network", "bridge", "busybox", "sh", "-c",
                          SCRIPT.format(gateway=net.gateway), timeout=60)
        ctx.expect(result.returncode == 0, "the container to run (exit 0)",
                   f"exit {result.returncode}, {clip(last_line(result), 200)!r}")
        lines = result.stdout.splitlines()
        ip = f"10.{net.gateway.split('.')[1]}.0.2"
        mac = "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
        address = next((line for line in lines if " eth0 " in line and " inet " in line), "")
        ctx.expect(f" inet {ip}/16 " in address, f"eth0 to have {ip}/16 (the first free address)",
                   repr(address or lines[:1]))
        ctx.expect(mac in lines, f"eth0's MAC to be {mac} (mac_for)", repr(lines[1:2]))
        ctx.expect(f"default via {net.gateway} dev eth0" in result.stdout,
                   f"a default route via {net.gateway} dev eth0", repr([l for l in lines if "default" in l]))
        lo = next((line for line in lines if ": lo:" in line), "")
        ctx.expect("UP" in lo.split(">")[0], "lo flagged UP", repr(lo[:80]))
        ctx.expect("gateway-answers" in lines, f"`ping {net.gateway}` (the bridge) to be answered",
                   repr(lines[-1:]))
        left = leftovers()
        ctx.expect(not left, "nothing left after the container ended", repr(left))


@check("7.2", "connect: two containers at once reach each other; nothing left after both", points=1.5,
       section="§ A switch: the bridge", plug=("connect",), timeout=90)
def two(ctx: Context) -> None:
    with lab(ctx) as net:
        token = f"t{ctx.rng.randrange(10**6)}"
        proc, pid = ctx.start("run", "--rm", "--network", "bridge", "busybox", "sh", "-c",
                              f"echo ready; ip -o -4 addr show eth0; echo {token} | nc -l -p 7777")
        try:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            first = line.split(" inet ")[1].split("/")[0] if " inet " in line else ""
            ctx.expect(bool(first), "the first container to have an address on eth0", repr(line))
            result = ctx.mini("run", "--rm", "--network", "bridge", "busybox", "sh", "-c",
                              f"sleep 0.5; nc -w 3 {first} 7777 </dev/null", timeout=60)
            ctx.expect(result.stdout.strip() == token,
                       f"the second container to read {token!r} from {first}:7777 over the bridge",
                       f"{result.stdout.strip()!r} {clip(last_line(result), 150)!r}")
        finally:
            ctx.stop(proc, pid)
        left = leftovers()
        ctx.expect(not left, "nothing left after both containers ended", repr(left))
        del net


# The three mistakes, made by a throwaway process in a network namespace of its own (unshare):
# nothing of them can reach the machine's network or the check's test host.
PROBE = """
import json, os
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
def errno_of(action):
    try:
        action()
    except NetlinkError as e:
        return e.code
    return 0
ipr = IPRoute()
ipr.link("add", ifname="mwhy0", kind="veth", peer={"ifname": "mwhy1"})
index = {name: ipr.link_lookup(ifname=name)[0] for name in ("mwhy0", "mwhy1")}
print(json.dumps({
    "name_too_long": errno_of(lambda: ipr.link("add", ifname="mwhy" + "x" * 12, kind="bridge")),
    "gateway_not_on_link": errno_of(lambda: ipr.route("add", dst="0.0.0.0/0", gateway="203.0.113.1")),
    "master_not_a_bridge": errno_of(lambda: ipr.link("set", index=index["mwhy1"], master=index["mwhy0"])),
}))
"""


def kernel_errnos() -> dict[str, int]:
    """What the kernel answers here and now to the three mistakes."""
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", PROBE], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        raise CheckFailed(f"the check's own probe failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:150]}")
    return json.loads(done.stdout)


@check("7.3", "why? predict the kernel's errno for three wiring mistakes", points=1.5,
       section="§ A cable: the veth pair", plug=("predicted_errnos",))
def why(ctx: Context) -> None:
    predicted = ctx.learner.predicted_errnos()
    kernel = kernel_errnos()
    expect_predictions(ctx, predicted, kernel)

