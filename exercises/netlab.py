"""A private network world of two hosts: what chapter 07's tests and checks run the runtime in.

    machine (never touched)      test host                                 outside
                                 mth0 198.51.100.1/24  ==veth==  mto0 198.51.100.2/24
                                 (the runtime runs here: mini0, containers, table ip mini)

Both are network namespaces kept by a bind mount on a file: under /run/netns for the tests
(tests/netharness.py: `ip -n NAME` knows them), on the check's scratch tmpfs for the grader
(exercises/07_network: gone with the checker's mount namespace, whatever happens).
198.51.100.0/24 is TEST-NET-2 (RFC 5737): documentation only, routed nowhere. Neither namespace
has a default route, so no packet can leave for a real address, and nothing resolves a name.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

from mini_runtime import syscalls

HOST_IP, OUTSIDE_IP, PREFIX = "198.51.100.1", "198.51.100.2", 24
HOST_LINK, OUTSIDE_LINK = "mth0", "mto0"


def make_netns(path: str | Path) -> None:
    """A new network namespace kept by a bind mount at `path`, made by util-linux's unshare:
    `ip netns add` would also turn /run/netns into a shared mount of its own and leave that."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    open(path, "x").close()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)


def delete_netns(path: str | Path) -> None:
    """Unmount and remove (idempotent): the namespace ends with the last thing that holds it."""
    try:
        syscalls.umount2(str(path), syscalls.MNT_DETACH)
    except OSError:
        pass
    if os.path.exists(path):
        os.unlink(path)


def joiner(netns: str | Path) -> Callable[[], None]:
    """A preexec_fn (or a call): the calling thread joins `netns`."""
    def enter() -> None:
        fd = os.open(netns, os.O_RDONLY)
        syscalls.setns(fd, syscalls.CLONE_NEWNET)
        os.close(fd)
    return enter


def run_in(netns: str | Path, argv: list[str], timeout: float = 20, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, preexec_fn=joiner(netns), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def wire(host: str | Path, outside: str | Path) -> None:
    """The cable between the two hosts, both ends addressed and up, `lo` up on each."""
    def ip(netns: str | Path, *args: str) -> None:
        run_in(netns, ["ip", *args]).check_returncode()

    # (a path with a '/' is a namespace file to iproute2: no /run/netns name needed)
    ip(host, "link", "add", HOST_LINK, "type", "veth", "peer", "name", OUTSIDE_LINK, "netns", str(outside))
    for netns, link, address in ((host, HOST_LINK, HOST_IP), (outside, OUTSIDE_LINK, OUTSIDE_IP)):
        ip(netns, "addr", "add", f"{address}/{PREFIX}", "dev", link)
        ip(netns, "link", "set", link, "up")
        ip(netns, "link", "set", "lo", "up")


@contextlib.contextmanager
def two_hosts(host: str | Path, outside: str | Path) -> Iterator[None]:
    """Make the test host and the outside host at these paths, wired; delete both after."""
    try:
        make_netns(host)
        make_netns(outside)
        wire(host, outside)
        yield
    finally:
        delete_netns(outside)
        delete_netns(host)
