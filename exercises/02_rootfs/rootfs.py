"""Chapter 02 exercise: the image's files become the container's whole world.
Your copy of `mini_runtime/rootfs.py`.

Fill in the functions below: the mounts and the new root, and `enter()`, the order that connects
them. The grader plugs them into the reference runtime, which calls them inside the container's
child process (`runtime.inside()`):

    make_mounts_private() → (chapter 05: mount the overlay) → enter(rootfs, pivot=...)
    → remount_readonly() (only with --read-only)

    python -m exercises grade 02          (one check: --only 2.2)

Your code runs as root. The grader runs each check in its own mount namespace, so a mistake
cannot unmount anything of the machine's; still, test with the grader, not by hand on the host.
The hints name the man page and the pitfall; the chapter explains each step. Chapter text:
chapters/02-rootfs.md.
"""

from __future__ import annotations

import os
import stat

from mini_runtime import syscalls
from mini_runtime.syscalls import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY,
                                   MS_REC, MS_REMOUNT, MS_STRICTATIME)

# Given (the same as the reference): the device table, the /dev links, mountpoint(), which
# makes sure a mount target is a real directory and refuses a symlink, and chroot_into(), the
# teaching mode `--no-pivot` (chroot(2) only: the host's root stays mounted).
from mini_runtime.rootfs import DEV_LINKS, DEVICES, chroot_into, mountpoint  # noqa: E402,F401


def make_mounts_private() -> None:
    """A mount namespace of our own, sharing nothing with the host's."""
    # TODO: man https://man7.org/linux/man-pages/man7/mount_namespaces.7.html (SHARED SUBTREES)
    #   and unshare(2); the calls are in mini_runtime.syscalls.
    #   pitfall: a new mount namespace is a *copy*, and a copy of a shared mount is its peer.
    #   why? unshare already gave us a copy of the mount table. Why would a mount we make in
    #   the copy still appear on the host? (Hint: systemd.)
    raise NotImplementedError("make_mounts_private")


def pivot_into(rootfs: str) -> None:
    """Make `rootfs` the root of this mount namespace and detach the host's root."""
    # TODO: man https://man7.org/linux/man-pages/man2/pivot_root.2.html (read NOTES: new_root
    #   and put_old may be the same directory) and umount(2) (MNT_DETACH).
    #   pitfall: pivot_root wants new_root to be a mount point, and a directory of the image
    #   is not one (the chapter shows the errno you get).
    #   pitfall: after the swap, where is the old root, and where is your current directory?
    #   why? chroot(2) would be one line. What can a root process inside a chroot still reach,
    #   and why can't it after pivot_root and the detach?
    raise NotImplementedError("pivot_into")


def mount_proc() -> None:
    """A fresh procfs at /proc, mounted nosuid, noexec, nodev."""
    # TODO: man https://man7.org/linux/man-pages/man5/proc.5.html and mount(2) (the MS_* flags).
    #   pitfall: the image's /proc may be missing, or a symlink: mountpoint() is given for that.
    #   why? The image's /proc is an empty directory. Who fills in /proc/self, and why must
    #   this mount happen in the new root (and, in chapter 03, in the new PID namespace)?
    raise NotImplementedError("mount_proc")


def mount_dev() -> None:
    """/dev as a small tmpfs (mode 755, 64 MiB) with only the devices a container may use:
    DEVICES as character devices of mode 0666, a devpts of its own at /dev/pts (a new instance,
    ptmx 0666, ptys 0620), /dev/shm a tmpfs of mode 1777, and the DEV_LINKS symlinks."""
    # TODO: man https://man7.org/linux/man-pages/man2/mknod.2.html,
    #   https://man7.org/linux/man-pages/man5/tmpfs.5.html, devpts in
    #   https://docs.kernel.org/filesystems/devpts.html ("newinstance").
    #   pitfall: mknod's mode goes through the umask; and a tmpfs mounted on /dev hides what
    #   the image had there, so the directories inside are yours to make.
    #   why? Why not bind-mount the host's /dev? Which device there would hand the container
    #   the host's whole disk?
    raise NotImplementedError("mount_dev")


def mount_sys() -> None:
    """sysfs at /sys, read-only (and nosuid, noexec, nodev)."""
    # TODO: man https://man7.org/linux/man-pages/man5/sysfs.5.html and mount(2).
    #   why? What could a container change on the host through a writable /sys?
    raise NotImplementedError("mount_sys")


def remount_readonly() -> None:
    """`--read-only`: make the root (a bind mount) read-only."""
    # TODO: man https://man7.org/linux/man-pages/man2/mount.2.html ("Creating a bind mount" and
    #   "Remounting an existing mount").
    #   pitfall: read-only can be a property of the *mount* or of the *filesystem* under it;
    #   only one of them leaves the image's other users alone.
    #   why? What would a plain remount read-only change that the container does not own?
    raise NotImplementedError("remount_readonly")


def enter(rootfs: str, *, pivot: bool = True) -> None:
    """In the child, once its mounts are private: make `rootfs` this process's whole world.

    The contract: afterwards `/` is `rootfs` (by pivot_into, or by chroot_into when `pivot` is
    False: `--no-pivot`), and the container's own /proc, /dev and /sys are mounted *in it*
    (mount_proc, mount_dev, mount_sys): `cat /proc/self/mountinfo` inside shows them, and no
    mount of the host's.
    """
    # TODO: the chapter's § The whole pipeline; the order is yours to find.
    #   pitfall: a path like "/proc" means a different place before and after the new root; and
    #   what happens to mounts made under the old root when it is detached?
    #   why? Why is it safer to mount /proc after the new root, even if the image's `proc` were
    #   a symlink to "/"?
    raise NotImplementedError("enter")


def predicted_errnos() -> dict[str, int]:
    """Why? Three mistakes the kernel refuses. Predict its errno for each (errno.E...); check 2.8
    makes each mistake for real, in a mount namespace of its own, and compares."""
    # TODO: return {"pivot_root_on_the_root_mount": ..., "pivot_root_not_a_mount_point": ...,
    #               "umount_in_use": ...}
    #   pivot_root_on_the_root_mount: pivot_root(d, d) where d is on the current root's own
    #       mount ("/" itself, say: the first mistake of the chapter's § pivot_root).
    #   pivot_root_not_a_mount_point: pivot_root(d, d) where d is a plain directory on another
    #       mount (a tmpfs), not a mount point itself.
    #   umount_in_use: umount2(m, 0) (no MNT_DETACH) of a tmpfs m that is some process's
    #       current directory.
    #   man: https://man7.org/linux/man-pages/man2/pivot_root.2.html, umount(2) (ERRORS).
    raise NotImplementedError("predicted_errnos")


# --- the extension (15 of the 25 points): docker's --tmpfs, which the reference lacks ---------
# `mini run --tmpfs PATH[:OPTIONS]` calls parse_tmpfs for each flag before anything is created
# (a ValueError becomes `mini: YOUR MESSAGE` and exit 125), and mount_tmpfs in the container's
# process, after pivot_root and /proc /dev /sys, before --read-only. The README's "Extend"
# section is the specification.

def parse_tmpfs(value: str) -> tuple[str, int, str]:
    """`--tmpfs PATH[:OPTIONS]` as docker reads it: (path, mount flags, tmpfs data), docker's
    defaults merged in; ValueError with docker's words for a bad one."""
    # TODO: docker mounts a --tmpfs with the options noexec,nosuid,nodev, then the user's, and
    #   a later option wins over an earlier one (moby: daemon/oci_linux.go and
    #   mount.MergeTmpfsOptions). Some options are mount(2) *flags* (ro, nosuid, exec, ...), the
    #   others are *data* for tmpfs itself: man https://man7.org/linux/man-pages/man5/tmpfs.5.html
    #   pitfall: docker refuses any data option tmpfs(5) does not list (ParseTmpfsOptions).
    raise NotImplementedError("parse_tmpfs")


def mount_tmpfs(path: str, flags: int, data: str) -> None:
    """In the child, inside its new root: a tmpfs at `path` (made if missing)."""
    # TODO: man https://man7.org/linux/man-pages/man2/mount.2.html
    #   pitfall: the mount point must exist, and in which root is `path` now?
    raise NotImplementedError("mount_tmpfs")
