"""Chapter 02: the image's files become the container's whole world.

Three ideas, in the order the child uses them:
1. A mount table of its own (a mount namespace), made *private* before anything is mounted,
   so no mount made for the container ever shows up on the host.
2. A new root: pivot_root(2) swaps the root of that mount table for the image's directory and
   the old root is detached, so no path leads back to the host. chroot(2) only changes how
   "/" is resolved for one process; the host is still there, and a root process can walk
   back out of it (`--no-pivot` keeps it, to show exactly that).
3. The kernel's own filesystems, made fresh for the container: /proc, /dev, /sys.

Everything is mounted *after* the new root is in place. A path like "/proc" is then resolved
inside the container, so an image whose `proc` is a symlink to `/` can only mount over its
own files, never over the host's.

Chapter 05 gives each container a copy-on-write view of the image (overlayfs), so what it
writes cannot change the image or another container.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from mini_runtime import syscalls
from mini_runtime.errors import Exercise, System
from mini_runtime.syscalls import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY,
                                   MS_REC, MS_REMOUNT, MS_STRICTATIME)

#: The devices every container gets (OCI runtime spec, "Default Devices"): name, major, minor.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))

#: /dev links every container gets: /dev/fd and the three standard streams.
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))


# >>> make-mounts-private
def make_mounts_private() -> None:
    """A mount namespace of our own, sharing nothing with the host's.

    unshare(CLONE_NEWNS) copies the mount table; but mounts marked *shared* (systemd makes /
    shared) would still propagate both ways. MS_PRIVATE|MS_REC cuts every such link.
    """
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)
# <<< make-mounts-private


# >>> pivot-into
def pivot_into(rootfs: str) -> None:
    """Make `rootfs` the root of this mount namespace and detach the host's root.

    pivot_root(2) wants the new root to be a mount point, so we bind-mount the directory onto
    itself first. With new_root = put_old = ".", the old root ends up stacked on top of the
    new one; umount2(".", MNT_DETACH) takes it away, and with it every path to the host.
    """
    syscalls.mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    os.chdir(rootfs)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")
# <<< pivot-into


# >>> chroot-into
def chroot_into(rootfs: str) -> None:
    """The teaching mode (`--no-pivot`): only path lookup changes; the host root stays mounted."""
    syscalls.mount(rootfs, rootfs, None, MS_BIND | MS_REC)   # so --read-only can remount it
    os.chroot(rootfs)
    os.chdir("/")
# <<< chroot-into


class UnsafeMountTarget(OSError):
    """An image's /proc, /dev or /sys that is not a plain directory."""


def mountpoint(path: str) -> str:
    """Make sure a mount target is a real directory (created if missing).

    We are inside the new root already, so even a symlink `proc -> /` could only lead to the
    container's own files. But mounting there would hide them: an image that ships such a
    link is broken or hostile, and we refuse it with a clear message.
    """
    if os.path.islink(path):
        raise UnsafeMountTarget(f"the image's {path} is a symlink (to {os.readlink(path)!r}): "
                                "refusing to mount over what it points to")
    if not os.path.lexists(path):
        os.makedirs(path, 0o755, exist_ok=True)
    elif not os.path.isdir(path):
        raise UnsafeMountTarget(f"the image's {path} is not a directory: cannot mount on it")
    return path


# >>> mount-proc
def mount_proc() -> None:
    """A fresh procfs: it shows the processes of the PID namespace we are in (chapter 03)."""
    syscalls.mount("proc", mountpoint("/proc"), "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)
# <<< mount-proc


# >>> mount-dev
def mount_dev() -> None:
    """/dev as a small tmpfs with only the devices a container may use; the image's own /dev
    (and the host's, with its disks) stays hidden underneath."""
    syscalls.mount("tmpfs", mountpoint("/dev"), "tmpfs", MS_NOSUID | MS_STRICTATIME,
                   "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        path = f"/dev/{name}"
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(path, 0o666)  # mknod's mode is filtered by the umask
    os.mkdir("/dev/pts")
    syscalls.mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.mkdir("/dev/shm", 0o1777)
    syscalls.mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                   "mode=1777,size=65536k")
    for name, target in DEV_LINKS:
        os.symlink(target, f"/dev/{name}")
# <<< mount-dev


# >>> mount-sys
def mount_sys() -> None:
    """sysfs, read-only: a container may look at the kernel's devices but not reconfigure them."""
    syscalls.mount("sysfs", mountpoint("/sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV)
# <<< mount-sys


# >>> mount-cgroup
def mount_cgroup() -> None:
    """With a cgroup namespace on v2 (chapter 04): the container's own cgroup, read-only, where
    programs look for their limits. (The namespace makes its cgroup this mount's root.)"""
    syscalls.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV)
# <<< mount-cgroup


#: How many symlinks a path may go through before it is taken for a loop (moby's limit).
MAX_LINKS = 255


def resolve_in_root(root: str, path: str) -> str:
    """`path` as seen from inside `root`, every symlink followed but kept in: an absolute target
    starts again at `root`, and `..` stops there (docker's FollowSymlinkInScope; runc's
    securejoin). Returns an absolute path, relative to `root`, that names no symlink up to its
    first missing part (the rest is taken as written: nothing there can be a link yet).
    docker's words for a loop, or for a part that is a file."""
    done: list[str] = []
    todo = [part for part in path.split("/") if part not in ("", ".")]
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            done = done[:-1]
            continue
        try:
            target = os.readlink(os.path.join(root, *done, part))
        except FileNotFoundError:
            done += [part, *todo]
            break
        except OSError as e:
            if e.errno != errno.EINVAL:             # (EINVAL: there, and not a symlink)
                raise System(f"lstat {'/'.join(['', *done, part])}: {e.strerror.lower()}") from None
            done.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise System(f"evalSymlinksInScope: too many links in {path}")
        done = [] if target.startswith("/") else done
        todo = [part for part in target.split("/") if part not in ("", ".")] + todo
    return os.path.normpath("/" + "/".join(done))


def make_workdir(path: str) -> None:
    """-w, or the image's WorkingDir: like docker, the directory is made if it is missing. It is
    resolved in the container's root first: a symlink of the image (`/work -> /srv/app`, even to
    a directory that does not exist yet) is followed as chdir(2) will follow it, and what is
    missing is made where it leads, never outside the root."""
    where = resolve_in_root("/", path)
    try:
        os.makedirs(where, 0o755, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        if os.path.exists(where) and not os.path.isdir(where):
            raise System(f"Cannot mkdir: {path} is not a directory") from None
        raise


# >>> remount-readonly
def remount_readonly() -> None:
    """`--read-only`: the root (a bind mount) becomes read-only; /dev, /proc stay as they are."""
    syscalls.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
# <<< remount-readonly


# >>> enter
def enter(rootfs: str, *, pivot: bool = True) -> None:
    """In the child, once its mounts are private: make `rootfs` this process's whole world."""
    if pivot:
        pivot_into(rootfs)
    else:
        chroot_into(rootfs)
    mount_proc()
    mount_dev()
    mount_sys()
# <<< enter


def predicted_errnos() -> dict[str, int]:
    """The chapter's "why?" questions answered as data (exercise 02 checks them against the
    kernel): which errno pivot_root(2) and umount(2) give for three classic mistakes."""
    return {"pivot_root_on_the_root_mount": errno.EBUSY,    # new_root on the current root's mount
            "pivot_root_not_a_mount_point": errno.EINVAL,   # hence the bind mount onto itself
            "umount_in_use": errno.EBUSY}                   # hence MNT_DETACH


# Exercise 02's extension, `--tmpfs`: the plumbing only. The runtime calls these two; the
# exercise (exercises/02_rootfs/README.md) writes them, and the grader plugs them in.
def parse_tmpfs(value: str) -> tuple[str, int, str]:
    """`--tmpfs PATH[:OPTIONS]` as docker reads it: (path, mount flags, tmpfs data), docker's
    defaults merged in; ValueError with docker's words for a bad one. Called before anything
    is created."""
    raise Exercise("--tmpfs", "02_rootfs")


def mount_tmpfs(path: str, flags: int, data: str) -> None:
    """In the child, inside its new root: a tmpfs at `path` (made if missing)."""
    raise Exercise("--tmpfs", "02_rootfs")
