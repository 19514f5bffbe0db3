"""What this engine and this machine are: docker's `GET /version` and `GET /info`.

`mini version` and `mini info` print them as docker's client does; chapter 09's daemon serves
the same dicts, so the real `docker version` and `docker info` read them. Everything here is
read from the machine when asked (uname, /proc, /etc/os-release, the cgroup tree), so it is
never out of date.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mini_runtime import __version__, cgroups, paths
from mini_runtime.stats import host_memory
from mini_runtime.units import now_rfc3339

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: The Engine API version the daemon of chapter 09 speaks (docker 20.10's), and the oldest it takes.
API_VERSION, MIN_API_VERSION = "1.41", "1.12"
#: Go's names for the machine (GOARCH), which docker's OS/Arch shows; uname's otherwise.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}


def version() -> dict[str, Any]:
    """GET /version: the engine as one component (mini is its own runtime: no containerd, no
    runc), with the Python that runs it where docker names its Go."""
    uname = os.uname()
    details = {"ApiVersion": API_VERSION, "Arch": GOARCH.get(uname.machine, uname.machine),
               "Experimental": "false", "KernelVersion": uname.release,
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "PythonVersion": python_version()}
    return {"Platform": {"Name": "mini"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux", "Arch": details["Arch"], "KernelVersion": uname.release,
            "PythonVersion": details["PythonVersion"]}


def info(containers: list[dict[str, Any]], images: int) -> dict[str, Any]:
    """GET /info, from the container list (`ps -a`'s summaries) and the number of images:
    counts, storage, cgroups, what the kernel can limit, and the machine."""
    running = sum(c.get("State") == "running" for c in containers)
    paused = sum(c.get("State") == "paused" for c in containers)
    root = paths.state_root()
    release = os_release()
    limits = cgroup_support()
    return {
        "Containers": len(containers), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused, "Images": images,
        "Driver": "overlayfs", "DriverStatus": [["Backing Filesystem", filesystem_of(root)]],
        "Plugins": {"Volume": [], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        **limits, "Debug": False, "SystemTime": now_rfc3339(),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if cgroups.mode() == "v2" else "1",
        "KernelVersion": os.uname().release,
        "OperatingSystem": release.get("PRETTY_NAME", "Linux"), "OSVersion": release.get("VERSION_ID", ""),
        "OSType": "linux", "Architecture": os.uname().machine,
        "NCPU": len(os.sched_getaffinity(0)), "MemTotal": host_memory(),
        "DockerRootDir": str(root), "Name": os.uname().nodename, "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {"mini": {"path": "mini_runtime.runtime"}}, "DefaultRuntime": "mini",
        "LiveRestoreEnabled": False, "InitBinary": "mini-init",
        "SecurityOptions": [],            # (chapter 08: seccomp, capabilities, user namespaces)
        "Warnings": warnings(limits) or None,
    }


def cgroup_support() -> dict[str, bool]:
    """Which limits this kernel's cgroups can set (docker's MemoryLimit, SwapLimit, ...): a v1
    controller is a directory of its own; v2's are listed in the root's cgroup.controllers."""
    root = cgroups.ROOT
    if cgroups.mode() == "v2":
        controllers = set((root / "cgroup.controllers").read_text().split())
        memory, cpu = "memory" in controllers, "cpu" in controllers
        return {"MemoryLimit": memory, "SwapLimit": memory, "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu,
                "CPUShares": cpu, "CPUSet": "cpuset" in controllers, "PidsLimit": "pids" in controllers}
    cpu = (root / "cpu" / "cpu.cfs_quota_us").exists()
    return {"MemoryLimit": (root / "memory" / "memory.limit_in_bytes").exists(),
            "SwapLimit": (root / "memory" / "memory.memsw.limit_in_bytes").exists(),
            "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu, "CPUShares": (root / "cpu" / "cpu.shares").exists(),
            "CPUSet": (root / "cpuset").is_dir(), "PidsLimit": (root / "pids").is_dir()}


def warnings(limits: dict[str, bool]) -> list[str]:
    """docker's lines for the limits `run` would have to refuse on this machine."""
    words = {"MemoryLimit": "memory limit", "SwapLimit": "swap limit", "CpuCfsQuota": "cpu cfs quota",
             "CPUShares": "cpu shares", "CPUSet": "cpuset", "PidsLimit": "pids limit"}
    return [f"WARNING: No {what} support" for key, what in words.items() if not limits[key]]


def os_release() -> dict[str, str]:
    """/etc/os-release (os-release(5)): KEY=value lines, the value maybe quoted."""
    found = {}
    for name in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(name).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, eq, value = line.partition("=")
            if eq and not key.startswith("#"):
                found[key.strip()] = value.strip().strip("'\"")
        break
    return found


def filesystem_of(path: Path) -> str:
    """The type of the filesystem `path` (or its nearest existing parent) is on: the mount in
    /proc/self/mountinfo with the longest mount point above it (proc_pid_mountinfo(5))."""
    while not path.exists() and path != path.parent:
        path = path.parent
    target, best, kind = os.path.realpath(path), -1, "unknown"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")    # (\040 for a space)
            fstype = fields[fields.index("-") + 1]
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= best:
                best, kind = len(point), fstype
    return kind


def python_version() -> str:
    return "python" + ".".join(map(str, sys.version_info[:3]))

