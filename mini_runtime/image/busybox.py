"""The built-in base image, `busybox:latest`, made locally from Debian's `busybox-static`.

No network: the one static binary becomes a one-layer OCI image. Every applet (`sh`, `ls`,
`echo`, ...) is a *hard link* to `bin/busybox`, as in Docker Hub's busybox image. Why hard links
and not symlinks? In chapter 01 the container is not yet confined to its root: an absolute
symlink `bin/ls -> /bin/busybox` would resolve on the host. A hard link names the same inode
wherever the root is.

The layer is reproducible: same binary, same bytes, same digests (mtime is the binary's).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

from mini_runtime.config import DEFAULT_PATH

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

BUSYBOX = Path(os.environ.get("MINI_BUSYBOX", "/bin/busybox"))

_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
         "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
         "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777}
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
}

def go_arch() -> str:
    """The machine's architecture as OCI names it (Go's GOARCH)."""
    from mini_runtime.image.manifest import host_platform

    return host_platform()["architecture"]


def applets(busybox: Path = BUSYBOX) -> list[str]:
    """Every applet path the binary offers, e.g. `bin/ls`, `usr/bin/awk` (relative)."""
    out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True, text=True)
    return sorted({line.strip().lstrip("/") for line in out.stdout.splitlines()
                   if line.strip() and line.strip().lstrip("/") not in ("bin/busybox", "linuxrc")})


def build_layer(busybox: Path = BUSYBOX) -> bytes:
    """The layer as an uncompressed tar (so its digest is also its DiffID)."""
    if not busybox.is_file():
        raise FileNotFoundError(
            f"{busybox} not found: the built-in image is made from it (apt-get install busybox-static)")
    mtime = int(busybox.stat().st_mtime)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, mtime, link
            info.uname = info.gname = "root"
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        for name, mode in sorted(_DIRS.items()):
            add(name + "/", tarfile.DIRTYPE, mode)
        for name, text in sorted(_FILES.items()):
            add(name, tarfile.REGTYPE, 0o644, text.encode())
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for name in applets(busybox):
            add(name, tarfile.LNKTYPE, 0o755, link="bin/busybox")
    return buf.getvalue()


def image_config(diff_id: str, created: float) -> dict[str, Any]:
    """The image config: what to run by default and which layers make the filesystem."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    return {
        "architecture": go_arch(),
        "os": "linux",
        "created": stamp,
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": stamp,
                     "created_by": f"mini: busybox-static ({BUSYBOX}) with hard-linked applets"}],
    }
