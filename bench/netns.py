"""The bridge rows' world: mini, podman and docker each on its default bridge network, each
inside a private network namespace of the harness's, never in this machine's own.

Why: a bridge network makes a bridge, a veth pair per container and NAT rules (mini: nftables,
table `ip mini`; docker and podman's CNI plugins: iptables, which is nftables here too), and it
sets ip_forward. Made in this machine's network namespace, all of that would change the network
of a shared machine for everyone on it, and a crash could leave it there. So each engine gets a
network namespace of its own (Workspace.namespace: `lo` up, no other link, no route, so that no
packet can leave it), held by a sleeping process: when the workspace closes, the holder and the
engine's processes go, and the kernel removes the namespace with every link and rule in it.

- mini: the launcher joins the namespace before its clock starts, as crun's row joins a mount
  namespace; `mini run --rm busybox true` with MINI_DEFAULT_NETWORK=bridge. Its roots and cgroup
  parent are its own, so that no mini of the other rows (in this machine's namespace) ever
  sweeps a bridge container's leftovers there.
- podman: a second podman (storage and mount namespace of its own), its commands run in its
  mount namespace and the network namespace; its default network `podman` (CNI: Debian's podman
  4.3 has no netavark here): bridge cni-podman0, 10.88.0.0/16, iptables rules.
- docker: a second dockerd with docker's network defaults (docker0, iptables, ip_forward),
  started inside the namespace, with its containerd and shims; the client talks to it over its
  socket from outside (a client makes no network).

One namespace per engine, not a shared one: each meets an empty network, as on a machine where
it is the only engine (no other's bridge, subnet, or rules in its chains).

In the mount namespaces of dockerd and of that podman, /etc/resolv.conf is a file of ours (a
TEST-NET-2 nameserver, routed nowhere: no container is handed the machine's resolver), and
modprobe is a stub that refuses and notes the attempt (the harness loads no kernel module; e.g.
dockerd runs `modprobe br_netfilter` where /proc/sys/net/bridge is missing). mini gets the same
resolv.conf through MINI_RESOLV_CONF. First of all, a probe in a throwaway network namespace
checks that the kernel can make what the rows need, so that a kernel without it gives one line.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench import engines, images
from bench.measure import Side
from bench.oci import Unavailable, tool
from bench.workspace import Workspace

#: What the engines make, tried in a namespace that ends with the probe (`unshare --net`).
PROBE = ("ip link add mini-bench-br type bridge && ip link add mini-bench-v0 type veth peer name mini-bench-v1 "
         "&& ip link set mini-bench-v0 master mini-bench-br && nft add table ip mini_bench "
         "&& iptables -t nat -A POSTROUTING -s 198.51.100.0/24 ! -o mini-bench-br -j MASQUERADE")
NAMESERVER = "198.51.100.53"  # TEST-NET-2 (RFC 5737): documentation only, routed nowhere


def probe() -> None:
    """Raise Unavailable, in one line, where this kernel cannot make a bridge network."""
    for name in ("unshare", "nsenter", "ip", "nft", "iptables"):
        tool(name)
    done = subprocess.run(["unshare", "--net", "/bin/sh", "-c", PROBE], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise Unavailable(f"this kernel cannot make a bridge, veth pair and NAT rule in a network "
                          f"namespace ({said}); no module is loaded for it")


def private_netns(ws: Workspace, engine: str) -> str:
    """A network namespace for `engine` alone: /proc/PID/ns/net of its holder. Checked to be
    another namespace than the harness's (which is this machine's)."""
    path = ws.namespace(f"{engine}'s bridge", "net", "ip link set lo up")
    if os.readlink(path) == os.readlink("/proc/self/ns/net"):
        raise Unavailable(f"{engine}'s network namespace is this machine's own: refusing")
    return path


def resolv_conf(ws: Workspace) -> Path:
    path = ws.dir / "resolv.conf"
    path.write_text(f"nameserver {NAMESERVER}\n")
    return path


def engine_mounts(ws: Workspace) -> str:
    """Shell steps for an engine's mount namespace: our resolv.conf over the machine's (or
    over where its symlink points: a /run target is on the namespace's fresh tmpfs), and the
    modprobe stub over modprobe (its real file: /usr/sbin/modprobe is a link to kmod)."""
    stub = ws.dir / "modprobe"
    stub.write_text(f"#!/bin/sh\necho \"$(cat /proc/$PPID/comm): modprobe $*\" >> {ws.dir / 'modprobe.log'}\n"
                    "echo 'mini-bench: no kernel module is loaded by the bench' >&2\nexit 1\n")
    stub.chmod(0o755)
    return (f"{{ t=$(readlink -f /etc/resolv.conf); [ -e \"$t\" ] || {{ mkdir -p \"${{t%/*}}\" && : > \"$t\"; }}; }} "
            f"&& mount --bind {resolv_conf(ws)} \"$t\" "
            f"&& {{ m=$(command -v modprobe) || true; [ -z \"$m\" ] || mount --bind {stub} \"$(readlink -f \"$m\")\"; }}")


def modprobe_attempts(ws: Workspace) -> list[str]:
    """What an engine tried to modprobe (refused by the stub), for the notes."""
    log = ws.dir / "modprobe.log"
    return log.read_text().splitlines() if log.exists() else []


def mini_side(ws: Workspace) -> Side:
    """`mini run --rm busybox true` on mini's default bridge, in a namespace of its own; run
    once untimed first (it also builds busybox in this mini's own root)."""
    net_ns = private_netns(ws, "mini")
    home = ws.path("mini-bridge")
    env = dict(ws.env, MINI_ROOT=str(home / "lib"), MINI_RUN=str(home / "run"),
               MINI_CGROUP_PARENT=f"{ws.cgroup_prefix}-bridge", MINI_DEFAULT_NETWORK="bridge",
               MINI_RESOLV_CONF=str(resolv_conf(ws)))
    argv = [*images.mini_argv(ws), "run", "--rm", "busybox", "true"]
    engines.run_checked([tool("nsenter"), f"--net={net_ns}", "--", *argv], env)
    return Side("mini run --rm (bridge)", [argv], env=env, net_ns=net_ns)


def docker(ws: Workspace) -> engines.Docker:
    """A dockerd with docker's network defaults, in a network namespace of its own."""
    return engines.Docker(ws, "docker-bridge", private_netns(ws, "docker"), engine_mounts(ws))


def podman(ws: Workspace) -> engines.Podman:
    """A podman of its own, its commands run in a network namespace of its own."""
    return engines.Podman(ws, "podman-bridge", private_netns(ws, "podman"), engine_mounts(ws))
