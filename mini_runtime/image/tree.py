"""Safe steps inside a tree that came from a stranger (a layer's files, a container's upper dir).

Every path is resolved from a directory fd of the root, one component at a time, with O_NOFOLLOW,
so a symlink `a -> /etc` made by one entry can never carry a later `a/passwd` onto the host.
Unpacking (`layers.py`) and packing (`pack.py`) both walk trees this way.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import tarfile
from collections.abc import Callable, Iterator

from mini_runtime import overlay
from mini_runtime.errors import InvalidParameter
from mini_runtime.paths import DIRECTORY

PAX_XATTR = "SCHILY.xattr."

# Directories inside a tree: real ones, never a symlink to one (O_NOFOLLOW); O_RDONLY so they
# can be listed and carry xattrs. The tree's own root comes from mini and may be a symlink.
DIR_FLAGS = DIRECTORY  # (paths.py's: remove_at and climb open directories the same way)
ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NODES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
          tarfile.FIFOTYPE: stat.S_IFIFO}
TAR_TYPES = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
              stat.S_IFLNK: tarfile.SYMTYPE, **{kind: t for t, kind in NODES.items()}}


class UnsafeLayer(InvalidParameter, ValueError):
    """A layer mini will not apply: an entry could escape the root, or the layer is unreadable."""


def shown(name: str) -> str:
    """An entry's name for a message: quoted, and cut (a name may be thousands of characters)."""
    return repr(name) if len(name) <= 100 else f"{name[:100]!r}... ({len(name)} characters)"


#: A file's owner: what chown(2) takes, but (uid_t)-1, which means "leave it as it is".
MAX_OWNER = (1 << 32) - 2
#: Errors of the host, not of the layer: they pass as they are (`mini: no space left on device`).
HOST_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE,
               errno.ENFILE}


@contextlib.contextmanager
def entry_errors(member: tarfile.TarInfo) -> Iterator[None]:
    """Applying one entry: a header the kernel cannot take (an owner beyond uid_t, an mtime that
    is NaN or beyond time_t: Go's archive/tar refuses those as an invalid header), and what the
    kernel refuses of it (a name too long, a bad xattr), as one line that names the entry."""
    for what, owner in (("uid", member.uid), ("gid", member.gid)):
        if not 0 <= owner <= MAX_OWNER:
            raise UnsafeLayer(f"layer entry {shown(member.name)}: {what} {owner} is not in 0-{MAX_OWNER}")
    if not (math.isfinite(member.mtime) and -(2.0 ** 63) <= member.mtime < 2.0 ** 63):
        raise UnsafeLayer(f"layer entry {shown(member.name)}: mtime {member.mtime} is not a time")
    try:
        yield
    except OSError as e:
        if e.errno in HOST_ERRNOS:
            raise
        why = (e.strerror or str(e)).lower()
        if e.errno == errno.ENAMETOOLONG:
            why += " (a name is at most 255 bytes; a path or a link target, 4095)"
        raise UnsafeLayer(f"layer entry {shown(member.name)}: {why}") from None
    except OverflowError as e:
        raise UnsafeLayer(f"layer entry {shown(member.name)}: {e}") from None


class PathSet:
    """Paths (tuples of names) with every prefix of each one: the tree of the names, so a path
    of n names costs n nodes. A set of its prefixes as tuples would cost n*n/2 names: a layer
    entry 2000 names deep is 4 KB of tar, and a few hundred of them would fill the memory."""

    def __init__(self) -> None:
        self.tree: dict[str, dict] = {}

    def add(self, parts: tuple[str, ...]) -> None:
        """`parts`, and with it each of its prefixes."""
        node = self.tree
        for part in parts:
            node = node.setdefault(part, {})

    def __contains__(self, parts: tuple[str, ...]) -> bool:
        node: dict[str, dict] | None = self.tree
        for part in parts:
            node = node.get(part) if node is not None else None
        return node is not None


@contextlib.contextmanager
def closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


# >>> open-dir
def open_dir(root: int, parts: tuple[str, ...], entry: str, *, create: bool) -> int:
    """An fd of the directory root/parts, walked one component at a time, never via a symlink.

    O_NOFOLLOW makes the kernel refuse a symlink instead of following it, so `a -> /etc`
    followed by `a/passwd` stops at `a`. Missing directories are made (mode 0755) if `create`.
    """
    fd = os.dup(root)
    try:
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                kind = "a symlink" if is_at(fd, part, stat.S_ISLNK) else "not a directory"
                raise UnsafeLayer(f"layer entry {shown(entry)} goes through {shown(part)}, which is "
                                  f"{kind} (mini never follows a symlink while unpacking)") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise
# <<< open-dir


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_at(dir_fd: int, name: str, test: Callable[[int], bool]) -> bool:
    st = lstat_at(dir_fd, name)
    return st is not None and test(st.st_mode)


def make_opaque_at(dir_fd: int, name: str) -> None:
    """Mark the directory `name` opaque, overlay's way."""
    with closing(os.open(name, FILE_FLAGS, dir_fd=dir_fd)) as fd:
        overlay.make_opaque(fd)


def is_opaque_at(dir_fd: int, name: str) -> bool:
    with closing(os.open(name, FILE_FLAGS, dir_fd=dir_fd)) as fd:
        return overlay.is_opaque(fd)


def allowed_xattr(name: str) -> bool:
    """File capabilities and user attributes only: trusted.* (overlay's own markers) and
    security labels are the host's business, not an image's."""
    return name == "security.capability" or name.startswith("user.")


def xattrs_at(dir_fd: int, name: str) -> dict[str, bytes]:
    """Every xattr of a regular file or directory."""
    with closing(os.open(name, FILE_FLAGS, dir_fd=dir_fd)) as fd:
        return {key: os.getxattr(fd, key) for key in os.listxattr(fd)}


def set_xattr_at(dir_fd: int, name: str, key: str, value: bytes) -> None:
    with closing(os.open(name, FILE_FLAGS, dir_fd=dir_fd)) as fd:
        os.setxattr(fd, key, value)


def set_metadata(dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
    """Owner, mode, xattrs, mtime, in that order (chown clears setuid bits and capabilities).

    follow_symlinks=False throughout: a symlink's own owner and time are set, never its target's.
    """
    os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
    if not member.issym():
        os.chmod(name, member.mode, dir_fd=dir_fd, follow_symlinks=False)
    if member.isreg() or member.isdir():
        for key, value in member.pax_headers.items():
            xattr = key[len(PAX_XATTR):]
            if key.startswith(PAX_XATTR) and allowed_xattr(xattr):
                try:
                    set_xattr_at(dir_fd, name, xattr, value.encode("utf-8", "surrogateescape"))
                except OSError as e:   # (E2BIG: a value over 64 KiB; EINVAL: a bad capability)
                    raise OSError(e.errno, f"xattr {xattr[:60]}: {e.strerror}") from None
    if not member.isdir():  # a directory's mtime changes with every child: set at the end
        os.utime(name, (member.mtime, member.mtime), dir_fd=dir_fd, follow_symlinks=False)
