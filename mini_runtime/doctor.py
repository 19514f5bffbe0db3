"""`mini doctor`: is this machine ready for containers? One line per requirement, with a fix.

✓ fine · ✗ missing and needed now · ! missing, needed by a later chapter (named)
Exit status 0 when nothing needed now is missing.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from mini_runtime.image import busybox

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The namespaces chapters 02-04 put every container in, as /proc/self/ns names them.
NAMESPACES = ("mnt", "uts", "ipc", "pid", "net", "cgroup")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    later: str = ""   # the chapter that needs it, when it is not needed yet


def _kernel_version() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _in_container() -> str:
    """Why we think we are inside a container, or '' if we don't.

    A marker file alone is not enough (some VMs are built from container images): we also
    want to see that PID 1 sits below the root of its cgroup hierarchy, as it does in docker.
    """
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
    except OSError:
        return ""
    if any(w in cgroup for w in ("docker", "kubepods", "libpod", "lxc")):
        return "/proc/1/cgroup names a container engine"
    below_root = any(line.rsplit(":", 1)[-1] not in ("/", "/init.scope")
                     for line in cgroup.splitlines() if line)
    marker = next((m for m in ("/.dockerenv", "/run/.containerenv") if os.path.exists(m)), "")
    return f"{marker} and PID 1 below the cgroup root" if marker and below_root else ""


def cgroup_mode(root: Path = CGROUP_ROOT) -> str:
    """'v2' (unified), 'hybrid' (v1 controllers plus a v2 mount) or 'v1'."""
    from mini_runtime import cgroups

    return cgroups.mode(root)


def _controllers(mode: str, root: Path, proc_cgroups: Path) -> list[str]:
    """The controllers a container can use: v2's list, or v1's enabled *and* mounted ones."""
    if mode == "v2":
        return (root / "cgroup.controllers").read_text().split()
    names = []
    for line in proc_cgroups.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "1" and (root / fields[0]).is_dir():
            names.append(fields[0])
    return names


# One function per requirement that can be faked in a test: each takes where it looks.

def check_cgroups(root: Path = CGROUP_ROOT, proc_cgroups: Path = Path("/proc/cgroups")) -> Check:
    """Chapter 04: --memory, --cpus, --pids-limit need these three controllers."""
    mode = cgroup_mode(root)
    try:
        controllers = _controllers(mode, root, proc_cgroups)
    except OSError:
        controllers = []
    missing = sorted({"cpu", "memory", "pids"} - set(controllers))
    return Check("cgroups", not missing, f"{mode}; controllers: {' '.join(sorted(controllers)) or 'none'}",
                 f"enable and mount the {', '.join(missing)} controller(s) (a systemd host does both)")


def check_overlayfs(filesystems: Path = Path("/proc/filesystems"),
                    modules: Path = Path(f"/lib/modules/{platform.release()}")) -> Check:
    """Chapter 05: every container's root is an overlay of its image's layers."""
    try:
        loaded = "overlay" in filesystems.read_text().split()
    except OSError:
        loaded = False
    ok = loaded or (modules / "kernel" / "fs" / "overlayfs").exists()  # loaded on first mount
    return Check("overlayfs", ok, "available" if ok else "not in /proc/filesystems nor a module",
                 "modprobe overlay (a kernel with CONFIG_OVERLAY_FS)")


def check_namespaces(ns: Path = Path("/proc/self/ns")) -> Check:
    """Chapters 02-04: every container gets these (the cgroup one on v2 by default)."""
    missing = [kind for kind in NAMESPACES if not (ns / kind).exists()]
    return Check("namespaces", not missing,
                 " ".join(NAMESPACES) if not missing else f"missing: {' '.join(missing)}",
                 "a kernel with CONFIG_NAMESPACES, CONFIG_UTS_NS, CONFIG_IPC_NS, CONFIG_PID_NS, "
                 "CONFIG_NET_NS and CONFIG_CGROUPS")


def _is_static(path: Path) -> bool:
    """An ELF binary with no PT_INTERP program header needs no dynamic loader."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
            return False
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def checks() -> list[Check]:
    result = []
    root = os.geteuid() == 0
    result.append(Check("root", root, "running as root" if root else f"running as uid {os.geteuid()}",
                        "containers need root here: sudo -i (or sudo mini ...)"))
    kernel = _kernel_version()
    result.append(Check("kernel", kernel >= (5, 11), f"Linux {platform.release()}",
                        "use a kernel >= 5.11 (Ubuntu 24.04 or Debian 12 backports)"))
    where = _in_container()
    result.append(Check("not in a container", not where, where or "a VM or a real machine",
                        "run the course in a VM (see README: Vagrant), not inside docker"))
    result += [check_cgroups(), check_overlayfs(), check_namespaces()]
    try:
        userns = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except OSError:
        userns = False
    result.append(Check("user namespaces", userns, "enabled" if userns else "disabled",
                        "sysctl user.max_user_namespaces=15000", later="chapter 08"))
    nft = shutil.which("nft")
    result.append(Check("nftables", bool(nft), nft or "nft not found", "apt-get install nftables",
                        later="chapter 07"))
    bb = busybox.BUSYBOX
    static = bb.is_file() and _is_static(bb)
    result.append(Check("busybox-static", static,
                        f"{bb} (static)" if static else f"{bb} missing or dynamically linked",
                        "apt-get install busybox-static"))
    py = sys.version_info >= (3, 11)
    result.append(Check("python", py, f"{platform.python_implementation()} {platform.python_version()}",
                        "Python >= 3.11 (Debian 12, Ubuntu 24.04)"))
    return result


def main(found: list[Check] | None = None) -> int:
    failed = False
    for check in checks() if found is None else found:
        if check.ok:
            mark, tail = "✓", ""
        elif check.later:
            mark, tail = "!", f"  → {check.fix} (needed from {check.later})"
        else:
            mark, tail, failed = "✗", f"  → {check.fix}", True
        print(f"{mark} {check.name:<20} {check.detail}{tail}")
    return 1 if failed else 0
