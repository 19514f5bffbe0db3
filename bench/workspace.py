"""Where the harness keeps everything it makes, and how all of it goes away again.

One temporary directory `mini-bench-*` holds mini's private roots, the OCI bundles, podman's
storage, dockerd's data and exec roots, the test images. Every cgroup the harness or a peer
makes is named `mini-bench-<pid>...` at the top of each hierarchy. Peers that run in the
background (dockerd, the holders of private mount and network namespaces) are registered here
with a way to stop them. `close()` undoes it all in reverse order, then checks: nothing mounted
under the directory, no cgroup of ours, no process of ours, no namespace of ours still held by
anything, no default state directory of a peer that was not there before (runc, crun, podman
and docker write some whatever their roots are), and this machine's own network (links,
addresses, nftables and iptables rules, ip_forward, /run/netns) as it was at the start.
It runs on a normal end, on an exception and on ctrl-C or SIGTERM (see __main__.py).
"""

from __future__ import annotations

import compileall
import contextlib
import ctypes
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CGROUP_ROOT = Path("/sys/fs/cgroup")
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
MNT_DETACH = 2
#: Where peers keep state by default. The harness moves each elsewhere; if one appears anyway,
#: close() says so (and removes it when it is an empty directory that we made appear).
PEER_DEFAULTS = ("/run/runc", "/run/crun", "/run/containers", "/run/libpod", "/var/lib/containers",
                 "/var/lib/cni", "/var/lib/docker", "/run/docker", "/run/containerd",
                 "/opt/containerd", "/etc/docker/key.json", "/etc/containers/networks")

_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """For a background peer's preexec: SIGTERM when the harness dies, even by SIGKILL."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def cgroup_hierarchies() -> list[Path]:
    """The mount points of the cgroup hierarchies (each v1 controller, named ones, v2)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith(str(CGROUP_ROOT)):
                found.append(Path(fields[4]))
    return found


def mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p == str(root) or p.startswith(prefix)]


class Workspace:
    """The temporary directory, the cgroup names, and the stack of things to undo."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.dir = Path(tempfile.mkdtemp(prefix="mini-bench-", dir="/tmp"))
        self.cgroup_prefix = f"mini-bench-{self.pid}"
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._defaults_before = {p for p in PEER_DEFAULTS if os.path.lexists(p)}
        self._namespaces: list[tuple[str, str]] = []  # (what, "net:[INODE]"), checked at the end
        self._network_before = host_network()
        # Orphans of our peers (conmon double-forks) come back to us, not to init: we see them.
        _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        self.mini_root = self.dir / "mini"
        # No mini the harness starts may make a bridge or NAT rules in this machine's network
        # namespace: rows say `--network none`, and this catches any that forgets (the bridge
        # row runs inside a private network namespace of its own, see rows.py).
        self.env = dict(os.environ, MINI_ROOT=str(self.mini_root / "lib"),
                        MINI_RUN=str(self.mini_root / "run"), MINI_CGROUP_PARENT=self.cgroup_prefix,
                        MINI_DEFAULT_NETWORK="none",
                        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        os.environ.update(self.env)  # for the image store used in-process (images.py)
        # Byte-code ahead of time, as provision.sh does: where PYTHONDONTWRITEBYTECODE is set
        # and nothing was compiled, every `mini` would compile its modules (~16 ms) each time.
        compileall.compile_dir(str(REPO / "mini_runtime"), quiet=1)
        # The `mini` command as `make setup` installs it (scripts/launcher.py), for this Python.
        self.mini_launcher = self.dir / "mini-command"
        runpy.run_path(str(REPO / "scripts" / "launcher.py"))["write"](str(self.mini_launcher), sys.executable)

    def path(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def on_close(self, what: str, undo: Callable[[], None]) -> None:
        """Register `undo`; close() calls it (last registered first) and reports a failure."""
        self._undo.append((what, undo))

    def cgroup(self, suffix: str, controller: str) -> Path:
        """`mini-bench-<pid>-SUFFIX` in one v1 hierarchy (made; removed by close())."""
        directory = CGROUP_ROOT / controller / f"{self.cgroup_prefix}-{suffix}"
        directory.mkdir(exist_ok=True)
        return directory

    def reap(self) -> None:
        """Collect orphans that died (we are their subreaper)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def mount_namespace(self, name: str, script: str) -> str:
        """A private mount namespace, set up by the shell `script` (mounts): its
        /proc/PID/ns/mnt, for the launcher (or nsenter) to run a peer in. Whatever is mounted
        in it never reaches the host, and vanishes with its last process."""
        return self.namespace(name, "mnt", script)

    def namespace(self, name: str, kind: str, script: str = "true") -> str:
        """A new namespace of `kind` ("mnt" or "net"), set up by the shell `script` run in it
        and held by a sleeping process until close(): its /proc/PID/ns/KIND. A holder process
        rather than a bind mount: nothing to unmount, nothing under /run/netns, and the
        namespace ends with the last process in it. close() checks that none is left."""
        flags = {"mnt": ["--mount", "--propagation", "private"], "net": ["--net"]}[kind]
        holder = subprocess.Popen(
            ["unshare", *flags, "--", "/bin/sh", "-c", f"{script} && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)

        def stop() -> None:
            holder.kill()
            holder.wait(10)

        self.on_close(f"{name}'s {kind} namespace (holder pid {holder.pid})", stop)
        if holder.stdout is None or holder.stdout.readline().strip() != "ready":
            holder.wait(10)
            error = (holder.stderr.read().strip().splitlines() or ["?"])[-1] if holder.stderr else "?"
            raise OSError(f"{name}: could not set up its {kind} namespace: {error}")
        path = f"/proc/{holder.pid}/ns/{kind}"
        self._namespaces.append((f"{name}'s {kind} namespace", os.readlink(path)))
        return path

    # --- the end ---------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Undo everything; the problems found on the way (empty: the host is as it was)."""
        problems: list[str] = []
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as e:  # keep going: the rest must still be undone
                problems.append(f"{what}: {type(e).__name__}: {e}")
        problems += self._kill_children()
        for point in sorted(mounts_under(self.dir), key=lambda p: p.count("/"), reverse=True):
            _LIBC.umount2(point.encode(), MNT_DETACH)
            problems.append(f"mount left at {point}: lazily unmounted")
        problems += self._remove_cgroups()
        problems += namespaces_held(self._namespaces)
        problems += network_changes(self._network_before, host_network())
        for path in sorted(set(PEER_DEFAULTS) - self._defaults_before):
            if os.path.lexists(path):
                try:
                    os.rmdir(path)
                    problems.append(f"{path} appeared (empty): removed")
                except OSError:
                    problems.append(f"{path} appeared during the run: left alone, please check")
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.dir.exists():
            problems.append(f"{self.dir} could not be removed")
        return problems

    def our_cgroups(self) -> list[Path]:
        found = []
        for hierarchy in cgroup_hierarchies():
            try:
                found += [hierarchy / n for n in os.listdir(hierarchy)
                          if n == self.cgroup_prefix or n.startswith(self.cgroup_prefix + "-")]
            except OSError:
                pass
        return found

    def _kill_children(self) -> list[str]:
        """SIGKILL by PID whatever process is still ours: a child, or in one of our cgroups."""
        def ours() -> set[int]:
            pids = set()
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            if int(f.read().rsplit(")", 1)[1].split()[1]) == self.pid:
                                pids.add(int(entry))
                    except (OSError, ValueError, IndexError):
                        pass
            for directory in self.our_cgroups():
                for procs in directory.rglob("cgroup.procs"):
                    try:
                        pids.update(int(p) for p in procs.read_text().split())
                    except OSError:
                        pass
            return pids - {self.pid}

        problems = []
        deadline = time.monotonic() + 5
        while (left := ours()) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        for pid in sorted(left):
            try:
                os.kill(pid, signal.SIGKILL)
                problems.append(f"process {pid} was still running: killed")
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        self.reap()
        return problems

    def _remove_cgroups(self) -> list[str]:
        problems = []
        for top in self.our_cgroups():
            subs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                          reverse=True)
            for directory in [*subs, top]:
                for attempt in range(20):
                    try:
                        directory.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError as e:
                        if attempt == 19:
                            problems.append(f"cgroup {directory} not removed: {e.strerror}")
                        time.sleep(0.05)
        return problems


def host_network() -> dict[str, list[str]]:
    """This machine's own network, as the harness (which never leaves it) sees it: links,
    addresses, nftables and iptables rulesets, ip_forward, /run/netns. No row may change any of
    it: the bridge rows run in private network namespaces (netns.py). Counters, lifetimes and
    the tools' timestamps are left out: they change by themselves."""
    def lines(*argv: str) -> list[str]:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return [f"({argv[0]} could not run)"]
        return [re.sub(r"\[\d+:\d+\]|valid_lft .*|qlen \d+", "", line).rstrip()
                for line in out.splitlines() if line.strip() and not line.startswith("#")]

    return {"links": lines("ip", "-o", "link"), "addresses": lines("ip", "-o", "addr"),
            "nftables": lines("nft", "-s", "list", "ruleset"), "iptables": lines("iptables-save"),
            "ip6tables": lines("ip6tables-save"),
            "ip_forward": [Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()],
            "/run/netns": sorted(n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                                 if not n.startswith("mini-test-"))}  # (other sessions' tests)


def network_changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """One line per part of the host's network that differs (with what came and went)."""
    problems = []
    for part in before:
        if before[part] != after.get(part):
            gone = [x for x in before[part] if x not in after.get(part, [])]
            new = [x for x in after.get(part, []) if x not in before[part]]
            problems.append(f"this machine's {part} changed during the run (another session, or us: "
                            f"please check): new {new[:3]}, gone {gone[:3]}")
    return problems


def namespaces_held(namespaces: list[tuple[str, str]]) -> list[str]:
    """Each of our namespaces (`net:[INODE]`) that a process or a mount still holds: its
    links and rules would live on. None should be left once the holders and peers are gone."""
    if not namespaces:
        return []
    held: dict[str, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for kind in ("net", "mnt"):
                with contextlib.suppress(OSError):
                    held.setdefault(os.readlink(f"/proc/{entry}/ns/{kind}"), f"process {entry}")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            root = line.split()[3]
            held.setdefault(root, f"a mount at {line.split()[4]}")
    return [f"{what} ({ns}) is still held by {held[ns]}" for what, ns in namespaces if ns in held]


def report_problems(problems: list[str]) -> None:
    for line in problems:
        print(f"bench: cleanup: {line}", file=sys.stderr)
