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

The other direction: `write_tar` makes a layer from a container's overlay upper dir (`commit`)
or any tree (`export`, `save`), and `changes` is `docker diff`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from mini_runtime import overlay
from mini_runtime.errors import MiniError
from mini_runtime.image.checked import decode_errors, describe
from mini_runtime.overlay import OPAQUE_XATTR  # noqa: F401 (part of this module's vocabulary)

#: A layer may expand to at most this many bytes (a gzip bomb is a few KB that expand to TBs).
DEFAULT_LIMIT = 16 << 30

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
PAX_XATTR = "SCHILY.xattr."

# Directories inside a tree: real ones, never a symlink to one (O_NOFOLLOW); O_RDONLY so they
# can be listed and carry xattrs. The tree's own root comes from mini and may be a symlink.
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOT = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NODES = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
          tarfile.FIFOTYPE: stat.S_IFIFO}
_TAR_TYPES = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE,
              stat.S_IFLNK: tarfile.SYMTYPE, **{kind: t for t, kind in _NODES.items()}}


class UnsafeLayer(MiniError, ValueError):
    """A layer mini will not apply: an entry could escape the root, or the layer is unreadable."""


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


# --- reading a layer -------------------------------------------------------------------------

class _Tap(io.RawIOBase):
    """A read-only stream that shows every chunk to `seen` on its way through."""

    def __init__(self, raw: BinaryIO, seen: Callable[[bytes], object]) -> None:
        self.raw, self.seen = raw, seen

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            chunk = self.raw.read(len(buffer))
        except decode_errors() as e:   # a truncated or corrupt compressed layer: one line
            raise UnsafeLayer(f"layer: {describe(e)}") from None
        self.seen(chunk)
        buffer[:len(chunk)] = chunk
        return len(chunk)


def _at_most(limit: int) -> Callable[[bytes], None]:
    """A `seen` for _Tap that raises UnsafeLayer once more than `limit` bytes went by."""
    total = 0

    def seen(chunk: bytes) -> None:
        nonlocal total
        total += len(chunk)
        if total > limit:
            raise UnsafeLayer(f"layer expands to more than {limit} bytes: refusing a possible "
                              "decompression bomb")
    return seen


# >>> open-layer
def open_layer(blob: BinaryIO, media_type: str, *, limit: int = DEFAULT_LIMIT) -> BinaryIO:
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
    return io.BufferedReader(_Tap(stream, _at_most(limit)), 1 << 20)
# <<< open-layer


# >>> clean-name
def clean_name(name: str) -> tuple[str, ...]:
    """The components of a tar entry's path: `./etc/x` and `etc/x` are both ("etc", "x").

    Refused: what could point outside the root ("/..." or a ".." anywhere) and what is no
    path at all (empty, or with a NUL byte, where the kernel would cut the name).
    """
    if not name or "\0" in name:
        raise UnsafeLayer(f"layer entry {name!r}: an empty name or a NUL byte is not a path")
    if name.startswith("/"):
        raise UnsafeLayer(f"layer entry {name!r} is absolute: layer paths are relative to the "
                          "image root")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeLayer(f"layer entry {name!r} has a '..' component, which could climb out of "
                          "the image root")
    return parts
# <<< clean-name


# --- safe steps inside a root ----------------------------------------------------------------

# >>> open-dir
def _open_dir(root: int, parts: tuple[str, ...], entry: str, *, create: bool) -> int:
    """An fd of the directory root/parts, walked one component at a time, never via a symlink.

    O_NOFOLLOW makes the kernel refuse a symlink instead of following it, so `a -> /etc`
    followed by `a/passwd` stops at `a`. Missing directories are made (mode 0755) if `create`.
    """
    fd = os.dup(root)
    try:
        for part in parts:
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR, dir_fd=fd)
            except NotADirectoryError:
                kind = "a symlink" if _is(fd, part, stat.S_ISLNK) else "not a directory"
                raise UnsafeLayer(f"layer entry {entry!r} goes through {part!r}, which is {kind} "
                                  "(mini never follows a symlink while unpacking)") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise
# <<< open-dir


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is(dir_fd: int, name: str, test: Callable[[int], bool]) -> bool:
    st = _lstat(dir_fd, name)
    return st is not None and test(st.st_mode)


def _opaque_at(dir_fd: int, name: str) -> None:
    """Mark the directory `name` opaque, overlay's way."""
    with _closing(os.open(name, _FILE, dir_fd=dir_fd)) as fd:
        overlay.make_opaque(fd)


def _is_opaque_at(dir_fd: int, name: str) -> bool:
    with _closing(os.open(name, _FILE, dir_fd=dir_fd)) as fd:
        return overlay.is_opaque(fd)


def _remove(dir_fd: int, name: str) -> None:
    """rm -rf of one name; rmtree with dir_fd walks by fds and never follows a symlink."""
    if _is(dir_fd, name, stat.S_ISDIR):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)


def _allowed_xattr(name: str) -> bool:
    """File capabilities and user attributes only: trusted.* (overlay's own markers) and
    security labels are the host's business, not an image's."""
    return name == "security.capability" or name.startswith("user.")


def _xattrs(dir_fd: int, name: str) -> dict[str, bytes]:
    """Every xattr of a regular file or directory."""
    with _closing(os.open(name, _FILE, dir_fd=dir_fd)) as fd:
        return {key: os.getxattr(fd, key) for key in os.listxattr(fd)}


def _set_xattr(dir_fd: int, name: str, key: str, value: bytes) -> None:
    with _closing(os.open(name, _FILE, dir_fd=dir_fd)) as fd:
        os.setxattr(fd, key, value)


def _set_metadata(dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
    """Owner, mode, xattrs, mtime, in that order (chown clears setuid bits and capabilities).

    follow_symlinks=False throughout: a symlink's own owner and time are set, never its target's.
    """
    os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
    if not member.issym():
        os.chmod(name, member.mode, dir_fd=dir_fd, follow_symlinks=False)
    if member.isreg() or member.isdir():
        for key, value in member.pax_headers.items():
            xattr = key[len(PAX_XATTR):]
            if key.startswith(PAX_XATTR) and _allowed_xattr(xattr):
                _set_xattr(dir_fd, name, xattr, value.encode("utf-8", "surrogateescape"))
    if not member.isdir():  # a directory's mtime changes with every child: set at the end
        os.utime(name, (member.mtime, member.mtime), dir_fd=dir_fd, follow_symlinks=False)


# --- applying a layer ------------------------------------------------------------------------

class _Applier:
    """One layer being applied: the root, and what this layer has written so far."""

    def __init__(self, root: int, overlay: bool) -> None:
        self.root, self.overlay = root, overlay
        self.written: set[tuple[str, ...]] = set()    # flatten: everything else is a lower layer's
        self.dir_times: dict[tuple[str, ...], float] = {}

    # >>> apply-entry
    def entry(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        """Apply one tar entry: an opaque marker, a whiteout, or a file of some kind."""
        parts = clean_name(member.name)
        if "\0" in member.linkname:
            raise UnsafeLayer(f"layer entry {member.name!r}: NUL byte in its link target")
        if not parts:                              # "./", the root itself: that one is mini's
            if member.isdir():
                return
            raise UnsafeLayer(f"layer entry {member.name!r} would replace the image root")
        if parts[-1] == OPAQUE:
            return self.opaque(member.name, parts[:-1])
        if any(part.startswith(AUFS_META) for part in parts):
            return
        if parts[-1].startswith(WHITEOUT):
            return self.whiteout(member.name, parts[:-1], parts[-1][len(WHITEOUT):])
        with _closing(_open_dir(self.root, parts[:-1], member.name, create=True)) as parent:
            self.create(parent, parts, member, tar)
        self.written.update(parts[:i] for i in range(1, len(parts) + 1))
    # <<< apply-entry

    # >>> create-entry
    def create(self, parent: int, parts: tuple[str, ...], member: tarfile.TarInfo,
               tar: tarfile.TarFile) -> None:
        """Make one entry. A directory over a directory keeps it (attributes only); anything
        else replaces what was there, removed first: never written *through* a symlink."""
        name = parts[-1]
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk()
                or member.type in _NODES):
            raise UnsafeLayer(f"layer entry {member.name!r} has tar type {member.type!r}, which "
                              "is not a kind of file a layer may carry")
        existing = _lstat(parent, name)
        if not (member.isdir() and existing and stat.S_ISDIR(existing.st_mode)):
            if existing:
                _remove(parent, name)
            if member.isdir():
                os.mkdir(name, 0o700, dir_fd=parent)
                if self.overlay and existing and overlay.is_whiteout(existing):
                    _opaque_at(parent, name)   # deleted, then made anew
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
                os.mknod(name, _NODES[member.type] | 0o600,
                         os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        _set_metadata(parent, name, member)
        if member.isdir():
            self.dir_times[parts] = member.mtime
        else:
            self.dir_times.pop(parts, None)
    # <<< create-entry

    def link(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        """A hard link to an entry already in this root, found by the same no-symlink walk."""
        target = clean_name(member.linkname) or (".",)
        missing = UnsafeLayer(f"hard link {member.name!r} -> {member.linkname!r}: the target must "
                              "be a file already unpacked in this layer's root")
        try:
            source = _open_dir(self.root, target[:-1], member.name, create=False)
        except FileNotFoundError:
            raise missing from None
        with _closing(source):
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
            raise UnsafeLayer(f"whiteout {entry!r} names nothing to delete: a whiteout is "
                              "'.wh.' followed by the name it deletes")
        if self.overlay:
            with _closing(_open_dir(self.root, dirs, entry, create=True)) as parent:
                existing = _lstat(parent, hidden)
                if existing is None:
                    overlay.make_whiteout(parent, hidden)
                elif stat.S_ISDIR(existing.st_mode):
                    _opaque_at(parent, hidden)
            return
        try:
            parent = _open_dir(self.root, dirs, entry, create=False)
        except FileNotFoundError:
            return                                               # nothing there to delete
        with _closing(parent):
            if dirs + (hidden,) not in self.written:
                _remove(parent, hidden)
            elif _is(parent, hidden, stat.S_ISDIR):
                self.opaque(entry, dirs + (hidden,))
    # <<< whiteout

    # >>> opaque
    def opaque(self, entry: str, dirs: tuple[str, ...]) -> None:
        """`<dir>/.wh..wh..opq`: hide every lower child of <dir>, wherever the marker stands
        in the tar; children this layer adds stay."""
        with _closing(_open_dir(self.root, dirs, entry, create=True)) as fd:
            if self.overlay:
                overlay.make_opaque(fd)
            else:
                self.clear_lower(fd, dirs)
        self.written.update(dirs[:i] for i in range(1, len(dirs) + 1))

    def clear_lower(self, fd: int, dirs: tuple[str, ...]) -> None:
        """Remove everything under fd that this layer did not write."""
        for name in os.listdir(fd):
            if dirs + (name,) not in self.written:
                _remove(fd, name)
            elif _is(fd, name, stat.S_ISDIR):   # written here, but may hold lower children
                with _closing(os.open(name, _DIR, dir_fd=fd)) as child:
                    self.clear_lower(child, dirs + (name,))
    # <<< opaque

    def set_dir_times(self) -> None:
        """Directory mtimes, now that no more children will be added."""
        for parts, mtime in self.dir_times.items():
            try:
                parent = _open_dir(self.root, parts[:-1], "/".join(parts), create=False)
            except (UnsafeLayer, FileNotFoundError):
                continue                        # a later entry of the layer replaced a parent
            with _closing(parent):
                os.utime(parts[-1], (mtime, mtime), dir_fd=parent, follow_symlinks=False)


# >>> apply-layer
def apply_layer(tar_stream: BinaryIO, root: Path, *, overlay: bool) -> str:
    """Apply one uncompressed layer to `root` and return its DiffID.

    The DiffID is the sha256 of the tar bytes, hashed while they stream by (a layer is never
    held in memory), up to EOF, trailing zero blocks included. On an error, `root` is left half
    done: apply into a temporary directory.
    """
    digest = hashlib.sha256()
    stream = _Tap(tar_stream, digest.update)
    with _closing(os.open(root, _ROOT)) as root_fd:
        applier = _Applier(root_fd, overlay)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    applier.entry(member, tar)
        except tarfile.TarError as e:
            raise UnsafeLayer(f"layer is not a valid tar: {e}") from None
        applier.set_dir_times()
    while stream.read(1 << 20):
        pass
    return "sha256:" + digest.hexdigest()
# <<< apply-layer


# --- making a layer, and docker diff ---------------------------------------------------------

def _walk(dir_fd: int, prefix: str = "") -> Iterator[tuple[str, int, str, os.stat_result]]:
    """(path, parent fd, name, lstat) of everything below dir_fd: sorted, parents first,
    never following a symlink (a container can plant them in its upper dir)."""
    for name in sorted(os.listdir(dir_fd)):
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        yield prefix + name, dir_fd, name, st
        if stat.S_ISDIR(st.st_mode):
            with _closing(os.open(name, _DIR, dir_fd=dir_fd)) as child:
                yield from _walk(child, f"{prefix}{name}/")


def _tar_info(path: str, dir_fd: int, name: str, st: os.stat_result,
              first_link: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """A tar header for one file: numeric owners only, second-precision mtime, allowed xattrs.
    A file seen before under another name (same inode) becomes a tar hard link."""
    kind = _TAR_TYPES.get(stat.S_IFMT(st.st_mode))
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
                            for key, value in sorted(_xattrs(dir_fd, name).items())
                            if _allowed_xattr(key)}
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
    """
    first_link: dict[tuple[int, int], str] = {}
    with _closing(os.open(root, _ROOT)) as root_fd, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, dir_fd, name, st in _walk(root_fd):
            if upper and overlay.is_whiteout(st):
                head, _, tail = path.rpartition("/")
                tar.addfile(_marker(f"{head}/{WHITEOUT}{tail}".lstrip("/"), st))
                continue
            info = _tar_info(path, dir_fd, name, st, first_link)
            if info is None:
                continue
            if info.isreg():
                with os.fdopen(os.open(name, _FILE, dir_fd=dir_fd), "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
            if upper and info.isdir() and _is_opaque_at(dir_fd, name):
                tar.addfile(_marker(f"{path}/{OPAQUE}", st))
# <<< write-tar


def _in_lowers(lowers: list[int], parts: tuple[str, ...]) -> bool:
    """Do the lower layers (top first) show this path? The top one that has the name decides;
    a whiteout there means deleted."""
    for lower in lowers:
        try:
            parent = _open_dir(lower, parts[:-1], "/".join(parts), create=False)
        except (UnsafeLayer, FileNotFoundError):
            continue
        with _closing(parent):
            st = _lstat(parent, parts[-1])
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
        upper_fd, *lower_fds = [stack.enter_context(_closing(os.open(p, _ROOT)))
                                for p in [upper, *lowers]]
        for path, _, _, st in _walk(upper_fd):
            if overlay.is_whiteout(st):
                found.append(("D", "/" + path))
            elif _in_lowers(lower_fds, tuple(path.split("/"))):
                found.append(("C", "/" + path))
            else:
                found.append(("A", "/" + path))
    return sorted(found, key=lambda change: change[1])
# <<< changes
