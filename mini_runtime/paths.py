"""Where mini keeps its state, and the two environment variables that move it.

- `MINI_ROOT` (default `/var/lib/mini`): images (an OCI image layout), unpacked layers,
  containers. Lives on the machine's own disk: overlay, mknod and pivot_root need a real
  filesystem, not a synced folder.
- `MINI_RUN` (default `/run/mini`): runtime state that must not survive a reboot (pids, sockets).

Tests and the grader point both at private temporary directories.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def state_root() -> Path:
    return Path(os.environ.get("MINI_ROOT", "/var/lib/mini"))


def run_root() -> Path:
    return Path(os.environ.get("MINI_RUN", "/run/mini"))


#: How a directory is opened to be emptied: never through a symlink.
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def log_file(directory: Path) -> str:
    """A container's log (its record's LogPath, chapter 06): `<id>-json.log` in its directory,
    as docker's json-file driver names it."""
    return str(directory / f"{directory.name}-json.log")


def remove_tree(path: Path) -> None:
    """`rm -rf path`, as far as it goes: what cannot be removed (a busy mount point) stays."""
    remove_at(None, str(path), ignore_errors=True)


def remove_at(dir_fd: int | None, name: str, ignore_errors: bool = False) -> None:
    """`rm -rf --one-file-system` of `name` in the directory `dir_fd` (None: the working one).

    A container or a layer can plant a symlink that points out, or make a tree deeper than
    Python's recursion limit (which shutil.rmtree, recursive, dies of). So this walks by
    directory fds, removes a symlink and never follows one, never enters another file system
    (a mount left behind is not emptied through), and holds two fds at any depth: it climbs back
    by "..", checked to be the directory it came from. `ignore_errors`: go on past what cannot
    be removed. (And `run --rm` need not import shutil, with its bz2, lzma and threading.)"""
    try:
        os.unlink(name, dir_fd=dir_fd)  # anything but a directory; a symlink to one too
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        here = os.open(name, DIRECTORY, dir_fd=dir_fd)
    except OSError:
        if ignore_errors:
            return
        raise
    device = os.fstat(here).st_dev
    up: list[tuple[os.stat_result, list[str], str]] = []  # per level: parent, its rest, name
    try:
        todo = _unlink_all_but_directories(here, ignore_errors)
        while True:
            if todo:
                sub = todo.pop()
                try:
                    child = os.open(sub, DIRECTORY, dir_fd=here)
                except OSError as e:
                    _failed(e, ignore_errors)
                    continue
                if os.fstat(child).st_dev != device:
                    os.close(child)
                    _failed(OSError(errno.EXDEV, "another file system: not emptied", sub), ignore_errors)
                    continue
                up.append((os.fstat(here), todo, sub))
                os.close(here)
                here = child
                todo = _unlink_all_but_directories(here, ignore_errors)
                continue
            if not up:
                break
            expected, todo, sub = up.pop()
            parent = climb(here, expected, sub)
            os.close(here)
            here = parent
            try:
                os.rmdir(sub, dir_fd=here)
            except OSError as e:
                _failed(e, ignore_errors)
    except OSError:
        if not ignore_errors:
            raise
    finally:
        os.close(here)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError as e:
        _failed(e, ignore_errors)


def climb(here: int, parent: os.stat_result, name: str) -> int:
    """The directory above `here` (opened by ".."), which must be `parent`, the one the walk
    came down from: a directory moved meanwhile would take the walk somewhere else."""
    above = os.open("..", DIRECTORY, dir_fd=here)
    found = os.fstat(above)
    if (found.st_dev, found.st_ino) != (parent.st_dev, parent.st_ino):
        os.close(above)
        raise OSError(errno.ESTALE, "moved while the tree was walked", name)
    return above


def _unlink_all_but_directories(here: int, ignore_errors: bool) -> list[str]:
    """Unlink everything in `here` that is not a directory; the names of its subdirectories."""
    subdirectories = []
    with os.scandir(here) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append(entry.name)
                continue
            try:
                os.unlink(entry.name, dir_fd=here)
            except FileNotFoundError:
                pass
            except OSError as e:
                _failed(e, ignore_errors)
    return subdirectories


def disk_usage(path: Path) -> int:
    """The bytes of the files under `path`, an inode with several names once (docker's
    directory.Size, for `ps -s` and `inspect -s`). A walk: that is why docker asks for -s."""
    total, seen, stack = 0, set(), [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:                 # gone meanwhile, or not a directory
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif st.st_nlink == 1 or (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def _failed(error: OSError, ignore_errors: bool) -> None:
    if not ignore_errors:
        raise error


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write a file so that readers see the old content or the new, never half of it.

    `durable`: fsync before the rename, so that after a crash the file holds the old content or
    the new, not nothing (1-3 ms, a disk flush). Worth it for what must outlive a crash (images,
    a kept container's record); not for what is rebuilt or removed anyway (a `--rm` container's
    files, whatever lives under the run root, a tmpfs gone at reboot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def try_lock(path: Path) -> int | None:
    """An exclusive lock on `path` unless another process holds it (None): its descriptor,
    closed to let go (or by the kernel, when the holder dies). Its directory is not made:
    FileNotFoundError when that is gone."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive file lock: concurrent `mini` commands take turns here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- scratch: what a killed `mini` was writing --------------------------------------------------

SCRATCH = ".scratch-"
_scratch: dict[Path, tuple[Path, int]] = {}     # parent -> (our scratch directory, its locked fd)


def scratch(parent: Path) -> Path:
    """This process's own directory under `parent`, for a file or a tree written before it is
    renamed into place (a blob, an unpacked layer: one filesystem, so the rename is atomic). It
    is locked (flock) for as long as this process lives, and the kernel drops that lock when the
    process dies, however it dies (SIGKILL too): so `sweep_scratch` tells what a killed `mini`
    left from what a live one is still writing."""
    if parent in _scratch:
        if _scratch[parent][0].is_dir():
            return _scratch[parent][0]
        os.close(_scratch.pop(parent)[1])   # (its store was removed meanwhile: a test's)
    import tempfile

    parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = Path(tempfile.mkdtemp(prefix=SCRATCH, dir=parent))
        fd = os.open(path, DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                _scratch[parent] = (path, fd)
                return path
        os.close(fd)          # a sweep took it between mkdtemp and flock (it looked abandoned)


def release_scratch(parent: Path) -> None:
    """Remove our scratch directory under `parent` once nothing of ours is left in it."""
    if parent not in _scratch:
        return
    path, fd = _scratch[parent]
    try:
        os.rmdir(path)
    except OSError:
        return                # another file of ours is still waiting there
    del _scratch[parent]
    os.close(fd)


def sweep_scratch(parent: Path) -> None:
    """Remove the scratch directories under `parent` whose process has died: their lock is free."""
    try:
        names = [name for name in os.listdir(parent) if name.startswith(SCRATCH)]
    except FileNotFoundError:
        return
    for name in names:
        try:
            fd = os.open(parent / name, DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            remove_tree(parent / name)
        except BlockingIOError:
            pass              # its process lives, and writes there
        finally:
            os.close(fd)
