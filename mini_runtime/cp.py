"""Chapter 06: `cp`, files between a container and the host, in both directions.

docker cp has two halves, and so has this module:

- the engine's, the Engine API's archive verbs: `stat_in` (HEAD /containers/ID/archive), `archive_of`
  (GET: a tar of one file or directory of the container) and `extract_into` (PUT: a tar
  unpacked into one directory of the container);
- the client's (docker's pkg/archive/copy.go): what the source and the destination are on the
  host, the tar of a host path, a tar unpacked into a host directory, and the renaming that makes
  `cp a b` create b when b does not exist.

The container's files are the attacker's, and it may change them *while* we copy. docker once
resolved a path in the container to a host path first and opened it afterwards: between the two,
the container swapped a directory for a symlink to / and docker cp read or wrote the host's
files (CVE-2018-15664). Here the kernel resolves every path: openat2(2) with RESOLVE_IN_ROOT on
an fd of the container's "/" treats that fd as the root for the whole lookup ("..", "/etc", a
symlink to "../../.." all end inside it), and RESOLVE_NO_MAGICLINKS refuses /proc/PID/root and
/proc/PID/fd/N, which jump anywhere. Past that fd everything is relative to a directory fd, and
no symlink is followed (O_NOFOLLOW, image/tree.py), so a swap made later finds nothing to redirect.

Where the container's "/" comes from: a running (or paused) container's init's root,
/proc/PID/root, through a pidfd checked against the recorded start time (nsenter.open_init), the
very tree its processes see, so a file copied in is there for them at once. A created or exited
container's overlay is mounted by nobody: a forked child mounts it in a mount namespace of its
own (to read, as `export` does; to write, with the container's upper dir), and the mount goes
with the child. Nothing of the container's runs here: no chroot into it (CVE-2019-14271: docker's
chrooted docker-tar loaded the container's libnss; a chrooted Python would import the container's
modules), no decompressor found in it (GHSA-x86f-5xw2-fm2r): tarfile reads and writes, here.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import posixpath
import stat
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from mini_runtime import syscalls
from mini_runtime.errors import Conflict, InvalidParameter, MiniError, NotFound, System, reason
from mini_runtime.image import layers
from mini_runtime.image.pack import add, tar_info, walk
from mini_runtime.image.tree import DIR_FLAGS, ROOT_FLAGS, closing, lstat_at

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from mini_runtime.overlay import Overlay

    Kept = tuple[Path, dict[str, Any], Overlay]   # a container's directory, record and overlay

IN_ROOT = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
#: Go's os.FileMode bits: the Engine API's path stat ("mode") is one.
GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27
GO_TYPES = {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: 1 << 26,
            stat.S_IFCHR: 1 << 26 | 1 << 21, stat.S_IFIFO: 1 << 25, stat.S_IFSOCK: 1 << 24}
GO_SPECIAL = ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20))


def go_mode(mode: int) -> int:
    return GO_TYPES.get(stat.S_IFMT(mode), 0) | (mode & 0o777) | sum(g for u, g in GO_SPECIAL if mode & u)


def go_base(path: str) -> str:
    """Go's filepath.Base: the last name, trailing slashes aside ("/" for the root)."""
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else ("/" if path else ".")


def asserts_directory(path: str) -> bool:
    """`dir/` or `dir/.`: the path says it is a directory (docker's assertsDirectory)."""
    return path.endswith("/") or posixpath.basename(path) == "."


def entry_base(path: str) -> str:
    """The first name of a path's tar entries: its last name; "." for `dir/.` and for "/"
    (what is in the directory)."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    return "." if clean == "/" or posixpath.basename(path) == "." else go_base(clean)


def split_entry(path: str) -> tuple[str, str]:
    """docker's SplitPathDirEntry: the directory and the last name, a trailing "/." kept as "."."""
    cleaned = posixpath.normpath(path)
    if posixpath.basename(path) == ".":
        cleaned = cleaned.rstrip("/") + "/."
    return posixpath.dirname(cleaned) or ".", go_base(cleaned)


# --- the engine's half: paths inside the container ------------------------------------------

def open_in(root: int, path: str) -> int:
    """The directory `path` of the container (a symlink to one followed, inside it), as an fd.
    EAGAIN: a rename raced a ".." of the lookup, and the kernel asks to look again."""
    for _ in range(64):
        try:
            return syscalls.openat2(root, path, os.O_RDONLY | os.O_DIRECTORY, resolve=IN_ROOT)
        except BlockingIOError:
            continue
    raise OSError(errno.EAGAIN, "the container kept renaming directories during the lookup", path)


def locate(root: int, path: str) -> tuple[int, str]:
    """The directory that holds what `path` names (an fd) and its name there, "." for a directory
    itself. The last name is not followed (cp copies a symlink as a symlink) unless the path says
    it is a directory (`link/`), as the kernel does."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    if clean == "/" or asserts_directory(path):
        return open_in(root, clean), "."
    parent = open_in(root, posixpath.dirname(clean))
    if lstat_at(parent, posixpath.basename(clean)) is None:
        os.close(parent)
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    return parent, posixpath.basename(clean)


def resolved_name(root: int, path: str) -> str:
    """Where `path` leads in the container once its symlinks are followed there (docker's
    FollowSymlinkInScope): the stat's linkTarget, a name to show and look up again, never opened."""
    done: list[str] = []
    todo, hops = path.split("/")[::-1], 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            done = done[:-1]
            continue
        try:
            with closing(open_in(root, "/" + "/".join(done))) as here:
                target = os.readlink(part, dir_fd=here)
        except OSError:                         # not a symlink, or not there: the name as it is
            done.append(part)
            continue
        hops += 1
        if hops > 255:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        done = [] if target.startswith("/") else done
        todo.extend(target.split("/")[::-1])
    return "/" + "/".join(done)


def stat_path(root: int, path: str) -> dict[str, Any]:
    """ContainerPathStat: name, size, Go's mode, mtime, and where a symlink leads."""
    parent, name = locate(root, path)
    with closing(parent):
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    clean = posixpath.normpath("/" + path.lstrip("/"))
    link = resolved_name(root, clean) if stat.S_ISLNK(st.st_mode) else ""
    mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.st_mtime_ns // 10**9))
    return {"name": "." if posixpath.basename(path) == "." else go_base(clean), "size": st.st_size,
            "mode": go_mode(st.st_mode), "mtime": f"{mtime}.{st.st_mtime_ns % 10**9:09d}Z",
            "linkTarget": link}


def archive(root: int, path: str, out: BinaryIO) -> None:
    """A PAX tar of what `path` names: a file `f` as `f`; a directory `d` as `d`, `d/...`; `d/.`
    and `/` as `.`, `./...` (what is in them). Other file systems mounted in a running container
    (/proc, /sys, /dev) are not entered: its files are its image's and its own, as with docker."""
    base = entry_base(path)
    parent, name = locate(root, path)
    first_link: dict[tuple[int, int], str] = {}
    with closing(parent), tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        info = tar_info(base, parent, name, st, first_link)
        if info is None:
            return
        add(tar, info, parent, name)
        if info.isdir():
            with closing(os.open(name, DIR_FLAGS, dir_fd=parent)) as top:
                for sub, dir_fd, entry, sub_st in walk(top, same_device=st.st_dev):
                    if (info := tar_info(f"{base}/{sub}", dir_fd, entry, sub_st, first_link)) is not None:
                        add(tar, info, dir_fd, entry)


class Unpacker(layers.Applier):
    """A tar unpacked as `cp` unpacks it (docker's Untar): `.wh.` names are plain names; a
    directory never replaces a non-directory, nor the reverse; owners are `owner` (uid, gid) if
    given. Onto the host (`host`): no device node and no setuid or setgid bit, ever: a file the
    container made must not become a privilege on the host. Entries are renamed by `rename`."""

    whiteouts = False

    def __init__(self, root: int, where: str, *, owner: tuple[int, int] | None, host: bool = False,
                 rename: Callable[[str], str] | None = None) -> None:
        super().__init__(root, False, layers.DEFAULT_LIMIT)
        self.where, self.owner, self.host, self.rename = where, owner, host, rename

    def entry(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if self.rename is not None:
            member.name = self.rename(member.name)
            member.linkname = self.rename(member.linkname) if member.islnk() else member.linkname
        if self.owner is not None:
            member.uid, member.gid = self.owner
        if self.host and (member.ischr() or member.isblk()):
            return
        if self.host:
            member.mode &= ~(stat.S_ISUID | stat.S_ISGID)
        super().entry(member, tar)

    def create(self, parent: int, parts: tuple[str, ...], member: tarfile.TarInfo,
               tar: tarfile.TarFile) -> None:
        existing = lstat_at(parent, parts[-1])
        if existing is not None and stat.S_ISDIR(existing.st_mode) != member.isdir():
            was, now = ("non-directory", "directory") if member.isdir() else ("directory", "non-directory")
            path = posixpath.join(self.where, *parts)
            raise InvalidParameter(f'cannot overwrite {was} "{path}" with {now} "{member.name}"')
        super().create(parent, parts, member, tar)


def extract(root: int, path: str, source: BinaryIO, owner: tuple[int, int] | None) -> None:
    """Unpack the tar `source` (plain or compressed: read as a layer is, with its bounds) into
    the directory `path` of the container."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    try:
        where = open_in(root, clean)
    except NotADirectoryError:
        raise InvalidParameter("extraction point is not a directory") from None
    with closing(where):
        layers.unpack(Unpacker(where, clean, owner=owner), layers.open_tarball(source, what="archive"))


@contextlib.contextmanager
def looked_up(path: str, name: str) -> Iterator[None]:
    """The errors of a lookup in a container, in the daemon's words."""
    try:
        yield
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {name}") from None
    except NotADirectoryError:
        raise InvalidParameter(f"{path}: not a directory") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidParameter(f"{path}: too many levels of symbolic links") from None
        raise


@contextlib.contextmanager
def container_root(directory: Path, layout: Overlay, *, write: bool) -> Iterator[int]:
    """(In a forked child.) An fd of the container's "/", as its processes see it."""
    from mini_runtime import container, nsenter, overlay, paths

    record = container.load(directory)
    if write and (record.get("HostConfig") or {}).get("ReadonlyRootfs"):
        raise Conflict("container rootfs is marked read-only")
    state = container.run_dir(directory.name) / "state.json"
    if container.status(record).has_process and state.exists():
        running = json.loads(state.read_text())
        init = nsenter.open_init(directory.name, running["pid"], running.get("started"))
        os.close(init.pidfd)
        with closing(init.root):
            yield init.root
    elif not write:
        with overlay.view(layout) as merged, closing(os.open(merged, ROOT_FLAGS)) as root:
            yield root
    else:   # a start waits for the lock (reopen); the overlay is then this child's alone
        with paths.locked(paths.state_root() / "containers.lock"):
            if container.status(container.load(directory)).has_process:
                raise Conflict(f"container {directory.name} started during the copy: try again")
            syscalls.unshare(syscalls.CLONE_NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
            layout.work.mkdir(exist_ok=True)          # (an exited container's is gone: finish())
            overlay.mount(layout)
            try:
                with closing(os.open(layout.merged, ROOT_FLAGS)) as root:
                    yield root
            finally:
                syscalls.umount2(str(layout.merged))
                if container.status(record) is not container.Status.CREATED:
                    paths.remove_tree(layout.work)


def forked(opened: Callable[[], Any], work: Callable[[int], object]) -> tuple[int, io.TextIOWrapper]:
    """A child that does `work` with the container's root and reports one JSON line: {"ok": its
    value} or {"error": kind, "message": ...}. Its own process: the mount namespace it may
    make, and the root fd, die with it; mini's own process is never in the container's."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, "w") as report:
                try:
                    with opened() as root:
                        message = {"ok": work(root)}
                    code = 0
                except BrokenPipeError:       # the reader stopped reading: its own choice
                    message, code = {"ok": None}, 0
                except BaseException as e:
                    message = failure(e)
                report.write(json.dumps(message) + "\n")
        finally:
            os._exit(code)
    os.close(write)
    return pid, os.fdopen(read, "r")


def failure(error: BaseException) -> dict[str, str]:
    if isinstance(error, MiniError):
        kind = next((k.__name__ for k in (NotFound, Conflict, InvalidParameter) if isinstance(error, k)), "System")
        return {"error": kind, "message": str(error)}
    if isinstance(error, OSError):
        return {"error": "System", "message": reason(error)}
    if os.environ.get("MINI_DEBUG"):
        import traceback
        traceback.print_exception(error, file=sys.stderr)
    return {"error": "System", "message": f"internal error: {type(error).__name__}: {error}"}


def answer(pid: int, report: io.TextIOWrapper) -> Any:
    """The child's report (its error raised here); the child reaped."""
    try:
        line = report.readline()
    finally:
        report.close()
        os.waitpid(pid, 0)
    message = json.loads(line) if line else {"error": "System", "message": "the copy ended early"}
    if "error" in message:
        kinds = {"NotFound": NotFound, "Conflict": Conflict, "InvalidParameter": InvalidParameter}
        raise kinds.get(message["error"], System)(message["message"])
    return message["ok"]


class Stream(io.FileIO):
    """The read end of the child's tar: closing it reaps the child, and raises what it failed of."""

    def __init__(self, fd: int, pid: int, report: io.TextIOWrapper) -> None:
        super().__init__(fd, "rb")
        self.pid, self.report = pid, report

    def close(self) -> None:
        if not self.closed:
            super().close()
            answer(self.pid, self.report)


def stat_in(kept: Kept, name: str, path: str) -> dict[str, Any]:
    """HEAD /containers/{name}/archive?path=: the stat of a path in the container."""
    directory, _, layout = kept
    def work(root: int) -> dict[str, Any]:
        with looked_up(path, name):
            return stat_path(root, path)
    return answer(*forked(lambda: container_root(directory, layout, write=False), work))


def archive_of(kept: Kept, name: str, path: str) -> tuple[dict[str, Any], BinaryIO]:
    """GET /containers/{name}/archive?path=: the path's stat, and its tar as a stream."""
    directory, _, layout = kept
    read, write = os.pipe()

    def work(root: int) -> None:
        os.close(read)
        with looked_up(path, name):
            found = stat_path(root, path)
        os.write(stats, (json.dumps(found) + "\n").encode())
        os.close(stats)
        with os.fdopen(write, "wb") as out:
            archive(root, path, out)

    stats_read, stats = os.pipe()
    pid, report = forked(lambda: container_root(directory, layout, write=False), work)
    os.close(write)
    os.close(stats)
    with os.fdopen(stats_read, "r") as first:
        line = first.readline()
    if not line:                               # no stat: the child failed; its report says why
        os.close(read)
        answer(pid, report)
        raise System("the copy ended early")
    return json.loads(line), Stream(read, pid, report)


def extract_into(kept: Kept, name: str, path: str, source: BinaryIO, copy_uid_gid: bool = False) -> None:
    """PUT /containers/{name}/archive?path=: unpack the tar `source` into the directory `path`.
    Owned by the container's root unless `copy_uid_gid` (-a) keeps the tar's owners."""
    directory, _, layout = kept
    def work(root: int) -> None:
        with looked_up(path, name):
            extract(root, path, source, None if copy_uid_gid else (0, 0))
    answer(*forked(lambda: container_root(directory, layout, write=True), work))
