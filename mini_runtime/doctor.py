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


def cgroup_mode() -> str:
    """'v2' (unified), 'hybrid' (v1 controllers plus a v2 mount) or 'v1'."""
    from mini_runtime import cgroups

    return cgroups.mode()


def _controllers(mode: str) -> list[str]:
    if mode == "v2":
        return Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    names = []
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "1":
            names.append(fields[0])
    return names


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
    mode = cgroup_mode()
    controllers = _controllers(mode)
    wanted = {"cpu", "memory", "pids"}
    missing = sorted(wanted - set(controllers))
    result.append(Check("cgroups", not missing, f"{mode}; controllers: {' '.join(sorted(controllers))}",
                        f"enable the {', '.join(missing)} controller(s)", later="chapter 04"))
    overlay = "overlay" in Path("/proc/filesystems").read_text() or \
        Path(f"/lib/modules/{platform.release()}/kernel/fs/overlayfs").exists()
    result.append(Check("overlayfs", overlay, "available" if overlay else "not in /proc/filesystems",
                        "modprobe overlay", later="chapter 05"))
    try:
        userns = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except OSError:
        userns = False
    result.append(Check("user namespaces", userns, "enabled" if userns else "disabled",
                        "sysctl user.max_user_namespaces=15000", later="chapter 08"))
    netns = Path("/proc/self/ns/net").exists()
    result.append(Check("network namespaces", netns, "available" if netns else "no /proc/self/ns/net",
                        "a kernel with CONFIG_NET_NS", later="chapter 03"))
    nft = shutil.which("nft")
    result.append(Check("nftables", bool(nft), nft or "nft not found", "apt-get install nftables",
                        later="chapter 06"))
    bb = busybox.BUSYBOX
    static = bb.is_file() and _is_static(bb)
    result.append(Check("busybox-static", static,
                        f"{bb} (static)" if static else f"{bb} missing or dynamically linked",
                        "apt-get install busybox-static"))
    py = sys.version_info >= (3, 11)
    result.append(Check("python", py, f"{platform.python_implementation()} {platform.python_version()}",
                        "Python >= 3.11 (Debian 12, Ubuntu 24.04)"))
    return result


def main() -> int:
    failed = False
    for check in checks():
        if check.ok:
            mark, tail = "✓", ""
        elif check.later:
            mark, tail = "!", f"  → {check.fix} (needed from {check.later})"
        else:
            mark, tail, failed = "✗", f"  → {check.fix}", True
        print(f"{mark} {check.name:<20} {check.detail}{tail}")
    return 1 if failed else 0
