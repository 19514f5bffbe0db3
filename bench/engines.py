"""podman and docker, each made private to the harness and removed with it.

podman is daemonless: each command gets `--root`, `--runroot`, `--tmpdir`, `--volumepath` and
`--network-config-dir` under the workspace (never /var/lib/containers), the runc runtime (crun
would need its mask here, see oci.py), cgroupfs, file events, and a containers.conf of our own.
podman 4.3 still writes a few fixed paths whatever its roots (its blob-info cache in
/var/lib/containers/cache, runtime state dirs in /run): every podman command runs in a mount
namespace of ours where /run and /var/lib are empty tmpfs, which also keeps its storage's
mounts (c/storage bind-mounts its overlay directory onto itself) off the host. In containers.conf:
podman raises RLIMIT_NOFILE/NPROC of containers to 1048576, which root may not do without
CAP_SYS_RESOURCE (this machine), so the defaults are the limits we already have.
Container cgroups (and conmon's) go under `/mini-bench-<pid>-podman`; its cpuacct counter
is the CPU podman's helpers use (conmon, runc, the container), which podman never waits for.

dockerd gets a data root, exec root, pidfile, key and socket under the workspace, no bridge,
no iptables rules, no sysctls (NO_NETWORK), and runs in a mount namespace of its own in which
/run and /opt are fresh tmpfs (dockerd 20.10 and containerd 1.6 write /run/docker,
/run/containerd and /opt/containerd whatever their roots): its mounts and those files vanish
with it. It and its containerd and shims live in the cgroup `/mini-bench-<pid>-docker`
(cpuacct: the daemon side's CPU per run), containers below it. It is stopped by PID (SIGTERM,
then SIGKILL) at the end.

The bridge rows have a podman and a dockerd of their own (`name`), each with its network
defaults, run inside a private network namespace (`net_ns`): see netns.py.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

from bench.measure import Side
from bench.oci import Unavailable, tool, version
from bench.workspace import Workspace, die_with_parent

START_TIMEOUT = 60.0


def cpuacct_seconds(directory: Path) -> float:
    """CPU time charged to a v1 cpuacct cgroup and its descendants, in seconds."""
    return int((directory / "cpuacct.usage").read_text()) / 1e9


def run_checked(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise Unavailable(f"`{' '.join(argv[:1] + argv[-3:])}` failed: {lines[-1][:300]}")
    return result.stdout


class Podman:
    """podman with private everything. `name` keeps two apart (the bridge rows' own, which
    runs in the private network namespace `net_ns`, with `mounts` added to its mount
    namespace: see netns.py)."""

    def __init__(self, ws: Workspace, name: str = "podman", net_ns: str | None = None,
                 mounts: str = "") -> None:
        binary = tool("podman")
        tool("conmon")
        self.ws, self.net_ns = ws, net_ns
        home = ws.path(name)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # conmon leaves runc a hard NPROC of at most pid_max (measured: 32768 here), and runc
        # may not raise it: ask for no more than that.
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1] % (1 << 62),
                    int(Path("/proc/sys/kernel/pid_max").read_text()))
        (home / "containers.conf").write_text(
            f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            f'[engine]\nevents_logger = "file"\nevents_logfile_path = "{home}/events.log"\n')
        self.env = dict(ws.env, CONTAINERS_CONF=str(home / "containers.conf"),
                        TMPDIR=str(ws.path(f"{name}/tmp")))
        self.base = [binary, "--root", str(home / "root"), "--runroot", str(home / "runroot"),
                     "--tmpdir", str(home / "libpod"), "--volumepath", str(home / "volumes"),
                     "--network-config-dir", str(ws.path(f"{name}/networks")),
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--runtime", "runc"]
        self.cgroup = f"/{ws.cgroup_prefix}-{name}"
        self.cpuacct = ws.cgroup(name, "cpuacct")
        self.mount_ns = ws.mount_namespace(name, "mount -t tmpfs -o size=64m mini-bench-podman /run"
                                           " && mount -t tmpfs -o size=16m mini-bench-podman /var/lib"
                                           + (f" && {mounts}" if mounts else ""))
        self.nsenter = [tool("nsenter"), f"--mount={self.mount_ns}",
                        *([f"--net={net_ns}"] if net_ns else []), "--"]
        ws.on_close(f"{name}'s storage", self.reset)
        self.version = version([binary, "--version"]) + ", " + version([tool("conmon"), "--version"])

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return run_checked([*self.nsenter, *self.base, *args], self.env, timeout)

    def side(self, label: str, *args: str) -> Side:
        return Side(label, [[*self.base, *args]], env=self.env, mount_ns=self.mount_ns,
                    net_ns=self.net_ns, extra_cpu=lambda: cpuacct_seconds(self.cpuacct))

    def run_args(self, *extra: str) -> list[str]:
        return ["run", "--rm", "--pull=never", "--network=none", f"--cgroup-parent={self.cgroup}",
                *extra, "busybox", "true"]

    def reset(self) -> None:
        """Remove its containers and images, then unmount its storage (c/storage bind-mounts
        its overlay directory onto itself); the workspace removes the files."""
        for args in (["rm", "-af"], ["system", "reset", "-f"]):
            subprocess.run([*self.nsenter, *self.base, *args], capture_output=True, env=self.env,
                           timeout=120)


#: The no-network rows' dockerd: no bridge, no iptables rules, no sysctls.
NO_NETWORK = ["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-forward=false",
              "--ip-masq=false", "--userland-proxy=false"]


class Docker:
    """A dockerd of our own. `name` keeps two apart: the bridge rows' one runs with docker's
    defaults (bridge, iptables, ip_forward) inside the private network namespace `net_ns`,
    with `mounts` added to its mount namespace (see netns.py); the other has no network."""

    def __init__(self, ws: Workspace, name: str = "docker", net_ns: str | None = None,
                 mounts: str = "") -> None:
        dockerd, self.client, unshare = tool("dockerd"), "/usr/bin/docker", tool("unshare")
        if not os.access(self.client, os.X_OK):
            self.client = tool("docker")
        self.ws = ws
        home = ws.path(name)
        (home / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(home / "key.json")}))
        self.cpuacct = ws.cgroup(name, "cpuacct")
        self.cgroup_parent = f"/{ws.cgroup_prefix}-{name}/containers"
        launch = ("echo $$ > \"$1\" && shift && mount -t tmpfs -o mode=0755,size=64m mini-bench /run "
                  "&& mount -t tmpfs -o mode=0755,size=64m mini-bench /opt "
                  + (f"&& {mounts} " if mounts else "") + "&& exec \"$@\"")
        enter = [tool("nsenter"), f"--net={net_ns}", "--"] if net_ns else []
        argv = [*enter, unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", launch,
                "mini-bench-dockerd", str(self.cpuacct / "cgroup.procs"),
                dockerd, "--config-file", str(home / "daemon.json"),
                "--data-root", str(home / "data"), "--exec-root", str(home / "exec"),
                "--pidfile", str(home / "docker.pid"), "--host", f"unix://{home / 'docker.sock'}",
                *([] if net_ns else NO_NETWORK),
                "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent]
        self.env = {k: v for k, v in ws.env.items() if not k.startswith("DOCKER_")}
        self.env.update(DOCKER_HOST=f"unix://{home / 'docker.sock'}",
                        DOCKER_CONFIG=str(ws.path(f"{name}/client")))
        self.log = home / "dockerd.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
                                            start_new_session=True)
        ws.on_close(f"dockerd (pid {self.process.pid})", self.stop)
        self._wait_ready()
        server = self("version", "--format", "{{.Server.Version}}").strip()
        info = json.loads(self("info", "--format", "{{json .}}"))
        self.version = (f"docker {server} (client {version([self.client, '--version'])}), "
                        f"containerd {info.get('ContainerdCommit', {}).get('ID', '?')[:10]}, "
                        f"storage {info.get('Driver', '?')}, runtime {info.get('DefaultRuntime', '?')}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(f"dockerd exited ({self.process.returncode}): {self.log_tail()}")
            probe = subprocess.run([self.client, "info", "--format", "{{.ServerVersion}}"],
                                   capture_output=True, text=True, env=self.env, timeout=10)
            if probe.returncode == 0 and probe.stdout.strip():
                return
            time.sleep(0.3)
        raise Unavailable(f"dockerd did not answer within {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines()
                     if "level=error" in line or "level=fatal" in line]
        except OSError:
            return "(no log)"
        return lines[-1][:300] if lines else "(no error in its log)"

    def __call__(self, *args: str, timeout: float = 300) -> str:
        return run_checked([self.client, *args], self.env, timeout)

    def side(self, label: str, *args: str) -> Side:
        return Side(label, [[self.client, *args]], env=self.env,
                    extra_cpu=lambda: cpuacct_seconds(self.cpuacct))

    def resident_mib(self) -> float:
        """RSS of the daemon side at rest (dockerd, containerd): what docker costs besides."""
        total = 0
        for pid in (self.cpuacct / "cgroup.procs").read_text().split():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return total / 1024

    def stop(self) -> None:
        """SIGTERM (it stops containerd and its containers), then SIGKILL after 20 s; what
        is left in its cgroup is killed by the workspace's close()."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
