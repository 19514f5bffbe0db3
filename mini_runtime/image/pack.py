"""Making a layer from a tree (`commit`, `export`, `save`), and `docker diff`.

The reverse of `layers.py`: overlayfs's whiteouts (char devices 0/0) and opaque directories in an
upper dir become OCI's `.wh.` markers; everything is read by directory fds, never via a symlink
(a container can plant them in its upper dir).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from mini_runtime import overlay, paths
from mini_runtime.image import layers
from mini_runtime.image.layers import OPAQUE, WHITEOUT
from mini_runtime.image.tree import (DIR_FLAGS, FILE_FLAGS, PAX_XATTR, ROOT_FLAGS, TAR_TYPES,
                                     UnsafeLayer, allowed_xattr, closing, is_opaque_at,
                                     lstat_at, open_dir, shown, xattrs_at)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import BinaryIO


def walk(dir_fd: int, same_device: int | None = None) -> Iterator[tuple[str, int, str, os.stat_result]]:
    """(path, parent fd, name, lstat) of everything below dir_fd: sorted, parents first,
    never following a symlink (a container can plant them in its upper dir); with
    `same_device`, never into a directory of another file system (a mount point is listed). At any depth: a
    container can make its tree deeper than Python's recursion limit, so the walk climbs back
    by ".." (as paths.remove_at does) and holds two fds, not one per level."""
    here = os.dup(dir_fd)
    up: list[tuple[os.stat_result, list[str], str]] = []  # per level: parent, its rest, prefix
    names, prefix = sorted(os.listdir(here), reverse=True), ""
    try:
        while names or up:
            if not names:
                parent, names, prefix = up.pop()
                above = paths.climb(here, parent, prefix)
                os.close(here)
                here = above
                continue
            name = names.pop()
            st = os.stat(name, dir_fd=here, follow_symlinks=False)
            yield prefix + name, here, name, st
            if stat.S_ISDIR(st.st_mode) and same_device in (None, st.st_dev):
                child = os.open(name, DIR_FLAGS, dir_fd=here)
                up.append((os.fstat(here), names, prefix))
                os.close(here)
                here = child
                names, prefix = sorted(os.listdir(here), reverse=True), f"{prefix}{name}/"
    finally:
        os.close(here)


def tar_info(path: str, dir_fd: int, name: str, st: os.stat_result,
              first_link: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """A tar header for one file: numeric owners only, second-precision mtime, allowed xattrs.
    A file seen before under another name (same inode) becomes a tar hard link."""
    kind = TAR_TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None                                            # a socket: tar has no type for it
    info = tarfile.TarInfo(path)
    info.type, info.mode, info.uid, info.gid = kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    inode = (st.st_dev, st.st_ino)
    if info.isreg() and inode in first_link:
        info.type, info.linkname = tarfile.LNKTYPE, first_link[inode]
    elif info.isreg():
        info.size = st.st_size
        if st.st_nlink > 1:
            first_link[inode] = path
    elif info.issym():
        info.linkname = os.readlink(name, dir_fd=dir_fd)
    elif info.ischr() or info.isblk():
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if info.isreg() or info.isdir():
        info.pax_headers = {PAX_XATTR + key: value.decode("utf-8", "surrogateescape")
                            for key, value in sorted(xattrs_at(dir_fd, name).items())
                            if allowed_xattr(key)}
    return info


def _marker(path: str, st: os.stat_result) -> tarfile.TarInfo:
    """An empty regular file, mode 0600: how a layer tar says "whiteout"."""
    info = tarfile.TarInfo(path)
    info.mode, info.uid, info.gid, info.mtime = 0o600, st.st_uid, st.st_gid, int(st.st_mtime)
    return info


# >>> write-tar
def write_tar(out: BinaryIO, root: Path, *, upper: bool = False) -> None:
    """A deterministic PAX tar of the tree at `root`: same tree, same bytes, same digest.

    upper=True: `root` is an overlayfs upper dir, and overlay's markers become the layer's:
    a char device 0/0 -> `.wh.<name>`; a dir with trusted.overlay.opaque=y -> `dir/.wh..wh..opq`.
    The layer may hold what a layer may unpack to, DEFAULT_LIMIT bytes: no more is written.
    """
    first_link: dict[tuple[int, int], str] = {}
    room = layers.DEFAULT_LIMIT if upper else None
    with closing(os.open(root, ROOT_FLAGS)) as root_fd, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, dir_fd, name, st in walk(root_fd):
            if upper and overlay.is_whiteout(st):
                head, _, tail = path.rpartition("/")
                tar.addfile(_marker(f"{head}/{WHITEOUT}{tail}".lstrip("/"), st))
                continue
            info = tar_info(path, dir_fd, name, st, first_link)
            if info is None:
                continue
            if info.isreg() and room is not None:
                room = _claim(room, path, info)
            add(tar, info, dir_fd, name)
            if upper and info.isdir() and is_opaque_at(dir_fd, name):
                tar.addfile(_marker(f"{path}/{OPAQUE}", st))
# <<< write-tar


def add(tar: tarfile.TarFile, info: tarfile.TarInfo, dir_fd: int, name: str) -> None:
    """One entry, a regular file's bytes read by an fd opened with O_NOFOLLOW (never via a
    symlink planted meanwhile)."""
    if info.isreg():
        with os.fdopen(os.open(name, FILE_FLAGS, dir_fd=dir_fd), "rb") as data:
            tar.addfile(info, data)
    else:
        tar.addfile(info)


def _claim(room: int, path: str, info: tarfile.TarInfo) -> int:
    """What is left of a layer's limit once the file is in: a sparse file of a terabyte
    (`truncate -s 1T`, no disk at all) is a terabyte of tar."""
    if info.size > room:
        raise UnsafeLayer(f"{shown('/' + path)}: {info.size} bytes would make the layer larger than "
                          f"{layers.DEFAULT_LIMIT} bytes, more than mini unpacks of a layer (a "
                          "sparse file counts whole: a tar holds its holes as zeros)")
    return room - info.size


def _in_lowers(lowers: list[int], parts: tuple[str, ...]) -> bool:
    """Do the lower layers (top first) show this path? The top one that has the name decides;
    a whiteout there means deleted."""
    for lower in lowers:
        try:
            parent = open_dir(lower, parts[:-1], "/".join(parts), create=False)
        except (UnsafeLayer, FileNotFoundError):
            continue
        with closing(parent):
            st = lstat_at(parent, parts[-1])
        if st is not None:
            return not overlay.is_whiteout(st)
    return False


# >>> changes
def changes(upper: Path, lowers: list[Path]) -> list[tuple[str, str]]:
    """`docker diff`: ("A"dded | "C"hanged | "D"eleted, "/path") for an overlay upper dir.

    Everything in the upper dir was written by the container: a whiteout is a deletion, a name
    the lower layers have is a change (so is a directory copied up only because a child
    changed: docker lists it too), anything else is new. `lowers` are top first.
    """
    found: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack:
        upper_fd, *lower_fds = [stack.enter_context(closing(os.open(p, ROOT_FLAGS)))
                                for p in [upper, *lowers]]
        for path, _, _, st in walk(upper_fd):
            if overlay.is_whiteout(st):
                found.append(("D", "/" + path))
            elif _in_lowers(lower_fds, tuple(path.split("/"))):
                found.append(("C", "/" + path))
            else:
                found.append(("A", "/" + path))
    return sorted(found, key=lambda change: change[1])
# <<< changes
