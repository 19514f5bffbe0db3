"""The network tests' private world: a "test host" and an "outside" host, both network namespaces.

    machine (never touched)      mini-test-host-<pid>                      mini-test-out-<pid>
                                 mth0 198.51.100.1/24  ==veth==  mto0 198.51.100.2/24
                                 (the runtime runs here: mini0, containers, table ip mini)

198.51.100.0/24 is TEST-NET-2 (RFC 5737): documentation only, routed nowhere. Neither namespace
has a default route, so no packet can leave for a real address, and no test resolves a name.

The `test_host` fixture moves the test's thread (pytest's main thread) into the test host
namespace for the duration of the test, so that everything the test calls, the processes it
starts and the threads it makes act there, and comes back afterwards. Before it comes back it
checks the test host the way conftest checks the machine: the links, addresses, nftables tables
and ip_forward of the test host, the netns mounts under $MINI_RUN/netns and the address
allocations must be as they were. Then it deletes both namespaces (and with them anything a
failed test left inside).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from mini_runtime import syscalls

from exercises.netlab import (HOST_IP, OUTSIDE_IP, delete_netns, joiner, make_netns,  # noqa: F401
                             run_in, two_hosts)

NETNS = Path("/run/netns")


class TestHost(NamedTuple):
    name: str
    outside: str
    host_ip: str = HOST_IP
    outside_ip: str = OUTSIDE_IP

    @property
    def outside_path(self) -> str:
        return f"/run/netns/{self.outside}"


def popen_in(netns: str | Path, argv: list[str], **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, preexec_fn=joiner(netns), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def python_in(netns: str | Path, script: str, **kwargs) -> subprocess.Popen[str]:
    """A Python program in `netns`; it prints a line when it is ready."""
    return popen_in(netns, [sys.executable, "-c", script], **kwargs)


def wait_ready(proc: subprocess.Popen[str]) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"helper did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"


def inner_state() -> dict:
    """What the runtime may change in the test host (read from inside it)."""
    from mini_runtime.network import ipam, namespace, nat
    links = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
    # (an IPv6 link-local address, fe80::/64, is the kernel's own, added a moment after a link
    # comes up: whether a snapshot sees it is timing, not something a test left behind)
    return {
        "links": sorted(f"{l['ifname']} {[a['local'] + '/' + str(a['prefixlen']) for a in l.get('addr_info', []) if not a['local'].startswith('fe80:')]}"
                        for l in links),
        "nftables": sorted(line for line in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                                             text=True).stdout.splitlines()),
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        "netns mounts": namespace.names(),
        "addresses": sorted(ipam.owners()),
        "forward memory": nat.forward_memory().exists(),
    }


_NAT: list[str | None] = []


def nat_missing() -> str | None:
    """None if this kernel's nftables has the ip family; else what nft said. Probed in a network
    namespace of its own (the probe's table goes with it)."""
    if not _NAT:
        probe = subprocess.run(["unshare", "--net", "nft", "add", "table", "ip", "mini-probe"],
                               capture_output=True, text=True)
        _NAT.append(None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[0])
    return _NAT[0]


NO_NAT = "nftables has no ip family on this kernel: NAT, DNAT and bridge networks need it"


def require_nat() -> None:
    """For a test that needs NAT: skipped in the cgroup-v2 guest (Debian's UML kernel builds
    nf_tables with the bridge family only), with one reason; anywhere else a failure, never a
    silent skip."""
    why = nat_missing()
    if why is None:
        return
    if os.environ.get("MINI_V2_GUEST") == "1":
        pytest.skip(f"v2 guest: {NO_NAT} (they run on the host)")
    pytest.fail(f"{NO_NAT}: {why}")


@pytest.fixture
def test_host(request):
    if request.node.get_closest_marker("nat"):
        require_nat()
    pid = os.getpid()
    host = TestHost(f"mini-test-host-{pid}", f"mini-test-out-{pid}")
    with two_hosts(NETNS / host.name, NETNS / host.outside):
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield from inside(host, home)
        finally:
            os.close(home)


def no_container_left(timeout: float = 5) -> None:
    """Nothing of any container in the test host: no netns mount, address or rule of its own,
    and no veth pair once the kernel has torn the namespaces down (it does so soon, not at
    once: bridge.unplug). mini0 and its rules may stay, as docker0 and docker's do."""
    from mini_runtime.network import bridge, ipam, namespace, nat
    deadline = time.monotonic() + timeout
    while (pairs := [n for n in bridge.links() if n.startswith(("mv", "mp"))]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pairs, f"veth pairs left: {pairs}"
    assert namespace.names() == [] and ipam.owners() == {} and nat.owners() == set()
    assert bridge.bridge_ports("mini0") == []


def settled(before: dict, timeout: float = 5) -> dict:
    """The test host's state once mini's pending work is done: mini0 and its rules taken down
    as `mini network prune` does (they stay between containers, as docker0 does), and every
    container's veth pair gone, which the kernel deletes with the container's namespace, soon
    but not at once."""
    from mini_runtime import network
    network.prune_default_bridge()      # (nothing, while a leaked container is still on it)
    deadline = time.monotonic() + timeout
    while (after := inner_state()) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    return after


def inside(host: TestHost, home: int):
    target = f"/run/netns/{host.name}"
    joiner(target)()
    try:
        assert os.stat("/proc/thread-self/ns/net").st_ino == os.stat(target).st_ino, "not in the test host"
        before = inner_state()
        yield host
        after = settled(before)
        if after != before:
            from mini_runtime import network
            network.sweep(lambda _id: False)      # tidy up, so that one failure stays one
            network.prune_default_bridge()
            changed = {k: (before[k], after[k]) for k in after if after[k] != before[k]}
            pytest.fail(f"the test left this behind in the test host: {changed}")
    finally:
        syscalls.setns(home, syscalls.CLONE_NEWNET)
