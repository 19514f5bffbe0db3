"""Chapter 06: the client's half of `cp` (docker's pkg/archive/copy.go), on the host's side.

`cp.py` has the engine's half, in the container. This half decides what the copy means: what
the source and the destination are on the host, the tar of a host path, a container's tar
unpacked into a host directory, and the renaming that makes `cp a b` create b when b does not
exist (and `cp dir/. b` copy what is in dir). It runs where the user runs `mini cp`, as docker's
client does, with the user's files.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator

from mini_runtime.cp import GO_DIR, GO_SYMLINK, GO_TYPES, Unpacker, asserts_directory, entry_base, go_base, split_entry
from mini_runtime.errors import InvalidParameter
from mini_runtime.image import layers
from mini_runtime.image.pack import tar_info, walk
from mini_runtime.image.tree import DIR_FLAGS, FILE_FLAGS, ROOT_FLAGS, closing
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import BinaryIO



@named_tuple
class CopyInfo:
    """docker's CopyInfo: a side of a copy."""
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase: str = ""      # the name its entries take instead of the path's last (cp -L, `link/`)


def is_dir(found: dict) -> bool:
    """Is the Engine API's path stat (its Go os.FileMode) a directory's?"""
    return bool(found["mode"] & GO_DIR)


def is_symlink(found: dict) -> bool:
    return bool(found["mode"] & GO_SYMLINK)


def is_device(found: dict) -> bool:
    return bool(found["mode"] & GO_TYPES[stat.S_IFBLK])


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """docker's GetRebaseName: the resolved path, keeping the `/` or `/.` that `path` ended
    with, and the name its entries must take if following changed the last name."""
    if posixpath.basename(path) == "." and posixpath.basename(resolved) != ".":
        resolved = resolved.rstrip("/") + "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, go_base(path) if go_base(path) != go_base(resolved) else ""


def host_source(path: str, follow: bool) -> CopyInfo:
    """docker's CopyInfoSourcePath: the symlinks before the last name followed (all with -L)."""
    try:
        if follow:
            resolved, rebase = rebase_name(path, os.path.realpath(path, strict=True))
        else:
            head, base = os.path.split(path)
            resolved = os.path.realpath(head or ".", strict=True) + "/" + base
            rebase = go_base(path) if path.endswith("/") and go_base(path) != go_base(resolved) else ""
        st = os.lstat(resolved)
    except OSError as e:
        raise InvalidParameter(f"lstat {e.filename or path}: {(e.strerror or str(e)).lower()}") from None
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def host_destination(path: str) -> CopyInfo:
    """docker's CopyInfoDestinationPath: symlinks followed (10 at most); if it does not exist,
    its directory must."""
    for _ in range(11):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parent = split_entry(path)[0]
            if not os.path.isdir(parent):
                kind = "not a directory" if os.path.exists(parent) else "no such file or directory"
                raise InvalidParameter(f"stat {parent}: {kind}") from None
            return CopyInfo(path)
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        path = target if target.startswith("/") else posixpath.join(split_entry(path)[0], target)
    raise InvalidParameter(f"too many symlinks in {path}")


def prepare(source: CopyInfo, destination: CopyInfo) -> tuple[str, str]:
    """docker's PrepareArchiveCopy: the directory to unpack into, and the first name the
    entries must have there (the destination's own name when `cp a b` makes b)."""
    into, new = split_entry(destination.path)
    old = source.rebase or entry_base(source.path)
    if destination.exists and destination.is_dir:
        return destination.path, old
    if destination.exists and source.is_dir:
        raise InvalidParameter("cannot copy directory")
    if not destination.exists and not source.is_dir and asserts_directory(destination.path):
        raise InvalidParameter("no such directory")
    return into, new


def renamer(old: str, new: str) -> Callable[[str], str]:
    """docker's RebaseArchiveEntries: an entry's first name `old` becomes `new`."""
    def rename(name: str) -> str:
        head, sep, rest = name.partition("/")
        return new + sep + rest if head == old else name
    return rename


def host_tar(source: CopyInfo, name: str) -> BinaryIO:
    """A tar of a host path, its first name `name`, made as it is read: no thread, no temporary
    file (the extracting side reads it, in its own process)."""
    return io.BufferedReader(Pulled(tar_chunks(source.path, name)), 1 << 20)


def tar_chunks(path: str, name: str) -> Iterator[bytes]:
    directory, last = split_entry(path)
    first_link: dict[tuple[int, int], str] = {}
    with closing(os.open(directory, ROOT_FLAGS)) as parent:
        st = os.stat(last, dir_fd=parent, follow_symlinks=False)
        yield from entry_chunks(tar_info(name, parent, last, st, first_link), parent, last)
        if stat.S_ISDIR(st.st_mode):
            with closing(os.open(last, DIR_FLAGS, dir_fd=parent)) as top:
                for sub, dir_fd, entry, sub_st in walk(top):
                    yield from entry_chunks(tar_info(f"{name}/{sub}", dir_fd, entry, sub_st, first_link),
                                            dir_fd, entry)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


def entry_chunks(info: tarfile.TarInfo | None, dir_fd: int, name: str) -> Iterator[bytes]:
    if info is None:
        return
    yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if info.isreg():
        with os.fdopen(os.open(name, FILE_FLAGS, dir_fd=dir_fd), "rb") as data:
            left = info.size
            while left:
                chunk = data.read(min(left, 1 << 20))
                if not chunk:
                    raise InvalidParameter(f"{info.name}: the file shrank while it was copied")
                left -= len(chunk)
                yield chunk
        yield tarfile.NUL * (-info.size % tarfile.BLOCKSIZE)


class Pulled(io.RawIOBase):
    """A readable stream of the chunks an iterator makes, each made when it is read."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.rest = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        while not self.rest:
            self.rest = next(self.chunks, None)
            if self.rest is None:
                self.rest = b""
                return 0
        size = min(len(buffer), len(self.rest))
        buffer[:size], self.rest = self.rest[:size], self.rest[size:]
        return size


def copy_to_host(stream: BinaryIO, source: CopyInfo, destination: str, keep_owner: bool) -> None:
    """docker's CopyTo: the container's tar unpacked at `destination` as `cp` would copy; owned
    by whoever runs mini unless `keep_owner` (-a)."""
    into, name = prepare(source, host_destination(destination))
    owner = None if keep_owner else (os.getuid(), os.getgid())
    rename = renamer(entry_base(source.path), name)
    with closing(os.open(into, ROOT_FLAGS)) as where:
        layers.unpack(Unpacker(where, into, owner=owner, host=True, rename=rename), stream)
