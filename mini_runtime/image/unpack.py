"""Unpack a layer tar into an empty directory, without ever writing outside it.

Chapter 01's version handles what the built-in image contains (directories, regular files,
symlinks, hard links) and refuses everything else. It never calls `tarfile.extractall`, whose
path checks have had escapes (specs §6.1). Chapter 05 grows this into a full layer applier
(whiteouts, devices, xattrs, a malicious-layer corpus).
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO


class UnsafeLayer(ValueError):
    """A tar entry that would land outside the target, or that this unpacker does not handle."""


def _clean_name(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts:
        raise UnsafeLayer(f"layer entry {name!r} points outside the image root")
    return "/".join(parts)


def _parent_inside(root: Path, rel: str) -> Path:
    """Create the parents of root/rel, refusing any parent that is not a real directory."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeLayer(f"layer entry {rel!r} goes through {part!r}, which is not a directory")
    return current


def unpack(layer: BinaryIO, root: Path) -> None:
    """Extract `layer` (an uncompressed tar stream) into the directory `root`."""
    dir_times: list[tuple[Path, int]] = []
    with tarfile.open(fileobj=layer, mode="r|") as tar:
        for member in tar:
            rel = _clean_name(member.name)
            target = _parent_inside(root, rel) / rel.rsplit("/", 1)[-1]
            if member.isdir():
                if not target.is_dir():
                    os.mkdir(target)
                dir_times.append((target, int(member.mtime)))
            elif member.isreg():
                src = tar.extractfile(member)
                assert src is not None
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                source = root / _clean_name(member.linkname)
                if not stat.S_ISREG(os.lstat(source).st_mode):
                    raise UnsafeLayer(f"hard link {rel!r} must point at a regular file in the layer")
                os.link(source, target, follow_symlinks=False)
                continue
            else:
                raise UnsafeLayer(f"layer entry {rel!r}: this unpacker handles files, dirs and links only")
            os.chown(target, member.uid, member.gid, follow_symlinks=False)
            if not member.issym():
                os.chmod(target, member.mode)
                os.utime(target, (member.mtime, member.mtime))
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime))
