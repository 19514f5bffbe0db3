"""The inputs of the rows: one busybox for everyone, a 100 MB image, a 10 MB change.

Every peer runs the same busybox: mini's built-in image (made from Debian's busybox-static),
flattened into a tree for runc and crun, and given to docker and podman as a `mini save`
archive. The load row's image is written here as a docker-archive (`manifest.json`, a config,
one uncompressed tar per layer) that mini, docker and podman all read: five layers of 20 MiB of
random bytes each, so that neither compression nor deduplication makes the work smaller.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

from bench.workspace import Workspace

LOAD_IMAGE = "mini-bench-load:latest"
COMMIT_IMAGE = "mini-bench-commit:latest"
COMMIT_CONTAINER = "mini-bench-commit"
#: What the commit rows' container changed: 10 MiB written to one file.
CHANGE = ["dd", "if=/dev/urandom", "of=/change", "bs=1048576", "count=10"]


def mini_argv(ws: Workspace, *python_flags: str) -> list[str]:
    """How a user starts mini: the `mini` launcher that `make setup` installs (scripts/launcher.py:
    `python -S`, and the paths `site` would add), written into the workspace for this
    interpreter; the checkout's code comes first through PYTHONPATH. `python_flags` (e.g.
    -X importtime) go to the interpreter, before the launcher's own -S."""
    import sys

    return [sys.executable, "-S", *python_flags, str(ws.mini_launcher)]


def mini(ws: Workspace, *args: str) -> str:
    result = subprocess.run([*mini_argv(ws), *args], capture_output=True, text=True, env=ws.env,
                            timeout=600, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"mini {' '.join(args)}: {result.stderr.strip()[-300:]}")
    return result.stdout


def busybox_rootfs(ws: Workspace) -> Path:
    """The built-in busybox image as one plain tree (built on first use, in our private root)."""
    from mini_runtime.image.store import BUILTIN, Store

    store = Store(ws.mini_root / "lib")
    return store.rootfs(store.get(BUILTIN))


def busybox_archive(ws: Workspace) -> Path:
    """`mini save busybox` once: what docker and podman load to run the same image."""
    archive = ws.dir / "busybox.tar"
    if not archive.exists():
        mini(ws, "save", "-o", str(archive), "busybox")
    return archive


def _layer(index: int, size: int) -> bytes:
    """An uncompressed layer tar: one file of `size` random bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        directory = tarfile.TarInfo(f"layer{index}")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(directory)
        info = tarfile.TarInfo(f"layer{index}/data")
        info.size, info.mode = size, 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def docker_archive(path: Path, tag: str, layers: list[bytes]) -> None:
    """Write a docker-archive: layers as `<digest>/layer.tar`, the config, manifest.json."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({
        "architecture": _go_arch(), "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"bench layer {i}"}
                    for i in range(len(layers))],
    }, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members = {config_name: config}
    for diff_id, layer in zip(diff_ids, layers):
        members[f"{diff_id.removeprefix('sha256:')}/layer.tar"] = layer
    members["manifest.json"] = json.dumps([{
        "Config": config_name, "RepoTags": [tag],
        "Layers": [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]}]).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def load_archive(ws: Workspace, layers: int = 5, total: int = 100 * 1024 * 1024) -> Path:
    archive = ws.dir / "load-100mb.tar"
    if not archive.exists():
        docker_archive(archive, LOAD_IMAGE, [_layer(i, total // layers) for i in range(layers)])
    return archive


def _go_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
