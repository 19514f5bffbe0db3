"""Chapter 07 exercise: wire a container to the bridge, and docker's --add-host.
Your copy of `mini_runtime/network/bridge.py` (the three functions the grader plugs in).

    parent, before the child starts (network.wire): an address from IPAM, the netns made,
        the bridge up → connect(id, bridge, netns, address, gateway) → the DNAT rules, /etc files
    child:  setns into that netns → exec: the command finds eth0 wired, lo up, a default route
    mini run --add-host NAME:IP → extra_hosts(specs), before anything is made (the extension)

    python -m exercises grade 07          (one check: --only 7.1)

Every TODO has a hint, the man page to read, and a pitfall. Chapter text: chapters/07-network.md.
"""

from __future__ import annotations

import contextlib  # noqa: F401
import errno  # noqa: F401 - for predicted_errnos
import ipaddress
import os  # noqa: F401
from pathlib import Path

from mini_runtime.errors import UsageError  # noqa: F401 - for the extension's errors
from mini_runtime.network.rtnetlink import NetlinkError  # noqa: F401 - a refusal, with its errno

# Given (the same as the reference): the host end's name, the MAC for an address, and netlink
# sockets (`with netlink() as nl:` here, `with netlink(netns) as ns:` inside a namespace), whose
# methods send one rtnetlink message each: read mini_runtime/network/rtnetlink.py.
from mini_runtime.network.bridge import Interface, host_end, mac_for, more_end, netlink  # noqa: F401


def connect(container_id: str, bridge: str, netns: str | Path, address: Interface,
            gateway: ipaddress.IPv4Address, inside: str = "eth0") -> str:
    """A veth pair from `bridge` to `inside` in `netns`, addressed, and for eth0 routed. Returns
    the MAC. If a step fails the pair is deleted: nothing is left half-wired."""
    # TODO: the steps, each one netlink message (nl.add_veth(...), nl.set_link(...),
    #   ns.add_address(...), ns.add_default_route(...): rtnetlink.py, each method says which `ip`
    #   command it is): a veth pair whose host end is host_end(container_id) and whose other end
    #   is born inside the namespace (peer_netns_fd: an open fd of `netns`) as eth0 with
    #   mac_for(address.ip); the host end plugged into the bridge and up; inside: the address,
    #   eth0 up, lo up, the default route via gateway.
    #   `inside` is eth0 for `run`; `network connect` asks for eth1, eth2, ... (that pair's host
    #   end is more_end(container_id, inside), and it gets no default route: the container's
    #   default route stays eth0's, its subnet's route comes with the address).
    #   man: ip-link(8) (veth, master, netns, name, address), veth(4), rtnetlink(7) (RTM_NEWLINK,
    #   IFLA_NET_NS_FD, RTM_NEWADDR, RTM_NEWROUTE). Try each step by hand first, in a namespace of
    #   your own (`ip netns add demo`, `ip -n demo ...`).
    #   Pitfalls, each of which the kernel answers with an errno (see predicted_errnos):
    #   - the order. Some steps need another first (one of them is a "why?" below): which?
    #   - why is the other end made inside the namespace, not made on the host and moved there
    #     (`ip link set mpX netns NS`, then renamed)? Both work: time both by hand with `ip`
    #     (chapter 07 says why one is slower).
    #   - a failure after the pair exists must not leave it behind (deleting one end deletes both).
    raise NotImplementedError("connect")


def predicted_errnos() -> dict[str, int]:
    """Why? Three wiring mistakes the kernel refuses. Predict its errno for each (errno.E...),
    then check 7.3 makes each mistake in a namespace of its own and compares."""
    # TODO: return {"name_too_long": ..., "gateway_not_on_link": ..., "master_not_a_bridge": ...}
    #   name_too_long: a link named with 16 characters (your host end's name is built to fit:
    #       why 12 hex digits after "mv"?). netdevice(7), IFNAMSIZ; rtnetlink(7), IFLA_IFNAME.
    #   gateway_not_on_link: a default route via a gateway when no address of the namespace is
    #       in the gateway's subnet. ip-route(8) "via"; what would "onlink" change?
    #   master_not_a_bridge: `ip link set vethB master vethA`: a port plugged into a link that
    #       is not a switch. ip-link(8) "master"; which kinds of link take ports?
    raise NotImplementedError("predicted_errnos")


# --- the extension (11 of 16 points): a docker feature the reference runtime does not have ----
# `mini run` has the flag --add-host (repeatable) and, before it makes anything, calls this hook
# with the specs as given. The reference's says "exercise 07's extension" and exits 125. Yours
# returns the /etc/hosts entries as (ip, name) pairs, or raises UsageError with docker's message:
# mini prints it as `mini: MESSAGE` and exits 125, with nothing made. Read the README's "Extend".

def extra_hosts(specs: list[str]) -> list[tuple[str, str]]:
    """docker's --add-host NAME:IP (or NAME=IP, or NAME:host-gateway) as /etc/hosts entries
    (ip, name), in the order given; docker's errors for a bad spec ([] when none is given)."""
    # TODO: what docker accepts and refuses, and with which words: `docker run --help`,
    #   https://docs.docker.com/reference/cli/docker/container/run/#add-host and the docker CLI's
    #   opts/hosts.go (ValidateExtraHost) and cli/command/container/opts.go (how a bad value of a
    #   flag is reported).
    #   host-gateway: which address is "the host" for a container on mini's default bridge? It
    #   depends on MINI_SUBNET (mini_runtime/network/ipam.py), so it cannot be a constant.
    #   why? An IPv6 address has colons too: where must NAME:IP be split?
    raise NotImplementedError("extra_hosts")
