"""Chapter 05: image layers, the tar changesets an image is made of.

A layer is a tar of what changed: new and changed files as ordinary entries, a deletion as a
*whiteout* (an empty file `.wh.<name>`), and "hide everything the layers below have in this
directory" as an *opaque whiteout* (`<dir>/.wh..wh..opq`). A layer is applied in one of two ways:

- overlay=True: into its own empty directory, which becomes an overlayfs lowerdir. overlayfs has
  its own words for the same things: a char device 0/0 named like the deleted file, and the
  xattr `trusted.overlay.opaque=y` on an opaque directory.
- overlay=False ("flatten"): onto the files of the layers below, deleting what whiteouts name.

A layer comes from a stranger. Every path is resolved from a directory fd of the root, one
component at a time, with O_NOFOLLOW, so a symlink `a -> /etc` made by one entry can never
carry a later `a/passwd` onto the host. `tarfile.extractall` is never used: its path checks
have had escapes (specs §6.1), and its "data" filter rejects what real images contain.

The safe steps inside a root (by directory fds, never via a symlink) are in `tree.py`; the other
direction (`write_tar` for commit/export/save, and `changes`, docker diff) is in `pack.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

from mini_runtime import overlay
from mini_runtime.image.checked import decode_errors, describe
from mini_runtime.image.tarheaders import PATH_MAX, open_tar
from mini_runtime.image.tree import (DIR_FLAGS, NODES, ROOT_FLAGS, PathSet,
                                     UnsafeLayer, closing, entry_errors, is_at, lstat_at,
                                     make_opaque_at, open_dir, set_metadata, shown)
from mini_runtime.overlay import OPAQUE_XATTR  # noqa: F401 (part of this module's vocabulary)
from mini_runtime.paths import remove_at

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import BinaryIO

#: A layer may expand to at most this many bytes (a gzip bomb is a few KB that expand to TBs), and
#: so may a compressed archive (`load`). Read at each call (tests lower it).
DEFAULT_LIMIT = 16 << 30
#: A layer may have at most this many entries: each one is an inode on disk and a path in memory
#: (a tar of empty files is 512 bytes an entry, and compresses to far less).
MAX_ENTRIES = 1 << 20

_OCI = "application/vnd.oci.image.layer"
MEDIA_TYPES: dict[str, str | None] = {
    f"{_OCI}.v1.tar": None,
    f"{_OCI}.v1.tar+gzip": "gzip",
    f"{_OCI}.v1.tar+zstd": "zstd",
    f"{_OCI}.nondistributable.v1.tar": None,
    f"{_OCI}.nondistributable.v1.tar+gzip": "gzip",
    f"{_OCI}.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."                    # AUFS bookkeeping (.wh..wh.plnk, ...): not files


# --- reading a layer -------------------------------------------------------------------------

class _Tap(io.RawIOBase):
    """A read-only stream that shows every chunk to `seen` on its way through."""

    def __init__(self, raw: BinaryIO, seen: Callable[[bytes], object], what: str = "layer") -> None:
        self.raw, self.seen, self.what = raw, seen, what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            chunk = self.raw.read(len(buffer))
        except (*decode_errors(), OSError) as e:  # a truncated or corrupt compressed layer: one
            if (what := describe(e)) is None:     # line (an OSError with an errno: the system's)
                raise
            raise UnsafeLayer(f"{self.what}: {what}") from None
        self.seen(chunk)
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _at_most(limit: int, what: str = "layer") -> Callable[[bytes], None]:
    """A `seen` for _Tap that raises UnsafeLayer once more than `limit` bytes went by."""
    total = 0

    def seen(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)
        if total > limit:
            raise UnsafeLayer(f"{what} expands to more than {limit} bytes: refusing a possible "
                              "decompression bomb")
    return seen


# >>> open-layer
def open_layer(blob: BinaryIO, media_type: str, *, limit: int | None = None,
               what: str = "layer") -> BinaryIO:
    """The uncompressed tar inside a layer blob, decompressed here, in Python.

    Never by an external `gzip` or `zstd` (CVE-2014-9357: Docker ran `xz` as root, outside any
    chroot, on crafted input), and never more than `limit` bytes (CVE-2017-14992: a gzip bomb).
    """
    if media_type not in MEDIA_TYPES:
        raise UnsafeLayer(f"unknown layer media type {media_type!r} (mini reads: "
                          f"{', '.join(MEDIA_TYPES)})")
    stream = blob
    if MEDIA_TYPES[media_type] == "gzip":
        stream = gzip.GzipFile(fileobj=blob, mode="rb")
    elif MEDIA_TYPES[media_type] == "zstd":
        try:
            import zstandard
        except ImportError:
            raise UnsafeLayer("zstd layers need python3-zstandard "
                              "(apt-get install python3-zstandard)") from None
        stream = zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    limit = DEFAULT_LIMIT if limit is None else limit
    return io.BufferedReader(_Tap(stream, _at_most(limit, what), what), 1 << 20)
# <<< open-layer


#: The compressions `import` reads, told by their first bytes (as docker import's
#: DecompressStream): a tarball has no media type.
MAGIC = {"gzip": b"\x1f\x8b", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd"}


class _Prefixed(io.RawIOBase):
    """`head`, the bytes read to see what a stream is, then the rest of the stream."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self.head, self.raw = head, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        chunk = self.head[:len(buffer)] or self.raw.read(len(buffer))
        self.head = self.head[len(chunk):]
        buffer[:len(chunk)] = chunk
        return len(chunk)


def compression_of(head: bytes) -> str | None:
    """The compression whose magic bytes start `head`, None for none."""
    return next((c for c, magic in MAGIC.items() if head.startswith(magic)), None)


def open_tarball(source: BinaryIO, *, limit: int | None = None, what: str = "layer") -> BinaryIO:
    """The tar of `import` (or the archive of `load`), plain or compressed, read as a layer is:
    streamed, decompressed in Python, never more than `limit` bytes (bz2 and lzma are imported
    only for such input)."""
    limit = DEFAULT_LIMIT if limit is None else limit
    head = source.read(6)
    stream = io.BufferedReader(_Prefixed(head, source), 1 << 20)
    compression = compression_of(head)
    if compression == "bzip2":
        import bz2
        return io.BufferedReader(_Tap(bz2.BZ2File(stream), _at_most(limit, what), what), 1 << 20)
    if compression == "xz":
        import lzma
        return io.BufferedReader(_Tap(lzma.LZMAFile(stream), _at_most(limit, what), what), 1 << 20)
    return open_layer(stream, f"{_OCI}.v1.tar" + (f"+{compression}" if compression else ""),
                      limit=limit, what=what)


# >>> clean-name
def clean_name(name: str) -> tuple[str, ...]:
    """The components of a tar entry's path: `./etc/x` and `etc/x` are both ("etc", "x").

    Refused: what could point outside the root ("/..." or a ".." anywhere) and what is no
    path at all (empty, or with a NUL byte, where the kernel would cut the name; or longer
    than PATH_MAX, which mini, walking one name at a time, would otherwise make thousands of
    directories deep).
    """
    if not name or "\0" in name:
        raise UnsafeLayer(f"layer entry {shown(name)}: an empty name or a NUL byte is not a path")
    if name.startswith("/"):
        raise UnsafeLayer(f"layer entry {shown(name)} is absolute: layer paths are relative to the "
                          "image root")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if len("/".join(parts).encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise UnsafeLayer(f"layer entry {shown(name)}: file name too long (a path is at most {PATH_MAX} "
                          "bytes: the kernel takes no longer one, so no image can have made it)")
    if ".." in parts:
        raise UnsafeLayer(f"layer entry {shown(name)} has a '..' component, which could climb out of "
                          "the image root")
    return parts
# <<< clean-name


# --- applying a layer ------------------------------------------------------------------------

class Applier:
    """One layer being applied: the root, and what this layer has written so far. `whiteouts`:
    a layer's `.wh.` markers delete; in any other tar (`cp`'s) they are plain names."""

    whiteouts = True

    def __init__(self, root: int, overlay: bool, limit: int) -> None:
        self.root, self.overlay, self.limit = root, overlay, limit
        self.written = PathSet()                      # flatten: everything else is a lower layer's
        self.dir_times: dict[tuple[str, ...], float] = {}
        self.room, self.entries = limit, 0            # bytes of file contents, entries: left, seen

    def claim(self, member: tarfile.TarInfo) -> None:
        """Count an entry, and a file's size, against the layer's limits, before it is written.
        A sparse file's size is what it expands to: a few bytes of tar can declare a terabyte."""
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise UnsafeLayer(f"layer has more than {MAX_ENTRIES} entries: refusing it (each one "
                              "is an inode on disk)")
        if member.isreg():
            if member.size > self.room:
                sparse = " (a sparse file, expanded)" if member.issparse() else ""
                raise UnsafeLayer(f"layer entry {shown(member.name)}: its {member.size} bytes{sparse} "
                                  f"would make the layer's files larger than {self.limit} bytes: "
                                  "refusing a possible decompression bomb")
            self.room -= member.size

    # >>> apply-entry
    def entry(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        """Apply one tar entry: an opaque marker, a whiteout, or a file of some kind."""
        parts = clean_name(member.name)
        self.claim(member)
        if "\0" in member.linkname:
            raise UnsafeLayer(f"layer entry {shown(member.name)}: NUL byte in its link target")
        if not parts:                              # "./", the root itself: that one is mini's
            if member.isdir():
                return
            raise UnsafeLayer(f"layer entry {shown(member.name)} would replace the image root")
        if self.whiteouts and parts[-1] == OPAQUE:
            return self.opaque(member.name, parts[:-1])
        if self.whiteouts and any(part.startswith(AUFS_META) for part in parts):
            return
        if self.whiteouts and parts[-1].startswith(WHITEOUT):
            return self.whiteout(member.name, parts[:-1], parts[-1][len(WHITEOUT):])
        with closing(open_dir(self.root, parts[:-1], member.name, create=True)) as parent:
            self.create(parent, parts, member, tar)
        self.written.add(parts)
    # <<< apply-entry

    # >>> create-entry
    def create(self, parent: int, parts: tuple[str, ...], member: tarfile.TarInfo,
               tar: tarfile.TarFile) -> None:
        """Make one entry. A directory over a directory keeps it (attributes only); anything
        else replaces what was there, removed first: never written *through* a symlink."""
        name = parts[-1]
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk()
                or member.type in NODES):
            raise UnsafeLayer(f"layer entry {shown(member.name)} has tar type {member.type!r}, "
                              "which is not a kind of file a layer may carry")
        existing = lstat_at(parent, name)
        if not (member.isdir() and existing and stat.S_ISDIR(existing.st_mode)):
            if existing:
                remove_at(parent, name)
            if member.isdir():
                os.mkdir(name, 0o700, dir_fd=parent)
                if self.overlay and existing and overlay.is_whiteout(existing):
                    make_opaque_at(parent, name)   # deleted, then made anew
            elif member.isreg():
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=parent)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
            elif member.issym():
                os.symlink(member.linkname, name, dir_fd=parent)   # verbatim, even "/etc"
            elif member.islnk():
                return self.link(parent, name, member)             # shares the target's metadata
            else:
                os.mknod(name, NODES[member.type] | 0o600,
                         os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        set_metadata(parent, name, member)
        if member.isdir():
            self.dir_times[parts] = member.mtime
        else:
            self.dir_times.pop(parts, None)
    # <<< create-entry

    def link(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        """A hard link to an entry already in this root, found by the same no-symlink walk."""
        missing = UnsafeLayer(f"hard link {shown(member.name)} -> {shown(member.linkname)}: the target must "
                              "be a file already unpacked in this layer's root")
        try:
            target = clean_name(member.linkname) or (".",)
        except UnsafeLayer:      # (absolute, or with '..': it said "layer entry '<the target>'")
            raise missing from None
        try:
            source = open_dir(self.root, target[:-1], member.name, create=False)
        except FileNotFoundError:
            raise missing from None
        with closing(source):
            try:   # follow_symlinks=False: a link to a symlink links the symlink, not its target
                os.link(target[-1], name, src_dir_fd=source, dst_dir_fd=parent,
                        follow_symlinks=False)
            except (FileNotFoundError, PermissionError):   # no such file; a directory
                raise missing from None

    # >>> whiteout
    def whiteout(self, entry: str, dirs: tuple[str, ...], hidden: str) -> None:
        """`.wh.<hidden>`: delete <hidden> of the layers below; an entry of this same layer
        stays (so a directory this layer made only loses its lower children: it turns opaque)."""
        if hidden in ("", ".", ".."):
            raise UnsafeLayer(f"whiteout {shown(entry)} names nothing to delete: a whiteout is "
                              "'.wh.' followed by the name it deletes")
        if self.overlay:
            with closing(open_dir(self.root, dirs, entry, create=True)) as parent:
                existing = lstat_at(parent, hidden)
                if existing is None:
                    overlay.make_whiteout(parent, hidden)
                elif stat.S_ISDIR(existing.st_mode):
                    make_opaque_at(parent, hidden)
            return
        try:
            parent = open_dir(self.root, dirs, entry, create=False)
        except FileNotFoundError:
            return                                               # nothing there to delete
        with closing(parent):
            if dirs + (hidden,) not in self.written:
                remove_at(parent, hidden)
            elif is_at(parent, hidden, stat.S_ISDIR):
                self.opaque(entry, dirs + (hidden,))
    # <<< whiteout

    # >>> opaque
    def opaque(self, entry: str, dirs: tuple[str, ...]) -> None:
        """`<dir>/.wh..wh..opq`: hide every lower child of <dir>, wherever the marker stands
        in the tar; children this layer adds stay."""
        with closing(open_dir(self.root, dirs, entry, create=True)) as fd:
            if self.overlay:
                overlay.make_opaque(fd)
            else:
                self.clear_lower(fd, dirs)
        self.written.add(dirs)

    def clear_lower(self, fd: int, dirs: tuple[str, ...]) -> None:
        """Remove everything under fd that this layer did not write."""
        for name in os.listdir(fd):
            if dirs + (name,) not in self.written:
                remove_at(fd, name)
            elif is_at(fd, name, stat.S_ISDIR):   # written here, but may hold lower children
                with closing(os.open(name, DIR_FLAGS, dir_fd=fd)) as child:
                    self.clear_lower(child, dirs + (name,))
    # <<< opaque

    def set_dir_times(self) -> None:
        """Directory mtimes, now that no more children will be added."""
        for parts, mtime in self.dir_times.items():
            try:
                parent = open_dir(self.root, parts[:-1], "/".join(parts), create=False)
            except (UnsafeLayer, FileNotFoundError):
                continue                        # a later entry of the layer replaced a parent
            with closing(parent):
                os.utime(parts[-1], (mtime, mtime), dir_fd=parent, follow_symlinks=False)


# >>> apply-layer
def apply_layer(tar_stream: BinaryIO, root: Path, *, overlay: bool, known: str | None = None,
                limit: int | None = None) -> str:
    """Apply one uncompressed layer to `root` and return its DiffID.

    The DiffID is the sha256 of the tar bytes, hashed while they stream by (a layer is never
    held in memory), up to EOF, trailing zero blocks included; unless the caller `known` it
    already (a plain tar blob, hashed when it was stored). The files it makes hold at most
    `limit` bytes. On an error, `root` is left half done: apply into a temporary directory.
    """
    digest = hashlib.sha256()
    stream = _Tap(tar_stream, digest.update if known is None else lambda chunk: None)
    with closing(os.open(root, ROOT_FLAGS)) as root_fd:
        unpack(Applier(root_fd, overlay, DEFAULT_LIMIT if limit is None else limit), stream)
    while stream.read(1 << 20):
        pass
    return known or "sha256:" + digest.hexdigest()


def unpack(applier: Applier, stream: BinaryIO) -> None:
    """Every entry of the tar `stream`, applied; its headers read with bounds (tarheaders.py),
    a bad entry one line that names it."""
    try:
        with open_tar(stream, "r|") as tar:
            for member in tar:
                with entry_errors(member):
                    applier.entry(member, tar)
    except tarfile.TarError as e:
        raise UnsafeLayer(f"layer is not a valid tar: {e}") from None
    applier.set_dir_times()
# <<< apply-layer
