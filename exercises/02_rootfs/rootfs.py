"""Chapter 02 exercise: the image's files become the container's whole world.
Your copy of `mini_runtime/rootfs.py`.

Fill in the six functions below. The grader plugs them into the reference runtime, which calls
them in this order inside the container's child process (`runtime.inside()` and `enter()`):

    make_mounts_private() → (chapter 05: mount the overlay) → pivot_into(rootfs) → mount_proc()
    → mount_dev() → mount_sys() → remount_readonly() (only with --read-only)

    python -m exercises grade 02          (one check: --only 2.2)

Your code runs as root. The grader runs each check in its own mount namespace, so a mistake
cannot unmount anything of the machine's; still, test with the grader, not by hand on the host.
Every TODO has a hint, the man page to read, and a "why?". Chapter text: chapters/02-rootfs.md.
"""

from __future__ import annotations

import os
import stat

from mini_runtime import syscalls
from mini_runtime.syscalls import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY,
                                   MS_REC, MS_REMOUNT, MS_STRICTATIME)

# Given (the same as the reference): the device table, the /dev links, and mountpoint(), which
# makes sure a mount target is a real directory and refuses a symlink.
from mini_runtime.rootfs import DEV_LINKS, DEVICES, mountpoint  # noqa: E402,F401


def make_mounts_private() -> None:
    """A mount namespace of our own, sharing nothing with the host's."""
    # TODO: syscalls.unshare(syscalls.CLONE_NEWNS), then change the propagation of every
    #   mount, recursively, to private: syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE).
    #   man: https://man7.org/linux/man-pages/man7/mount_namespaces.7.html (SHARED SUBTREES)
    #   why? unshare already gave us a copy of the mount table. Why would a mount we make in
    #   the copy still appear on the host without the second call? (Hint: systemd.)
    raise NotImplementedError("make_mounts_private")


def pivot_into(rootfs: str) -> None:
    """Make `rootfs` the root of this mount namespace and detach the host's root."""
    # TODO: 1. bind-mount rootfs onto itself (MS_BIND | MS_REC): pivot_root needs a mount point;
    #   2. os.chdir(rootfs); 3. syscalls.pivot_root(".", ".") stacks the old root on top of the
    #   new one; 4. syscalls.umount2(".", syscalls.MNT_DETACH) takes the old root away;
    #   5. os.chdir("/").
    #   man: https://man7.org/linux/man-pages/man2/pivot_root.2.html (see "NOTES": new_root
    #   and put_old may be the same directory)
    #   why? chroot(2) would be one line. What can a root process inside a chroot still reach,
    #   and why can't it after pivot_root and the detach?
    raise NotImplementedError("pivot_into")


def mount_proc() -> None:
    """A fresh procfs at /proc, mounted nosuid, noexec, nodev."""
    # TODO: syscalls.mount("proc", mountpoint("/proc"), "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)
    #   man: https://man7.org/linux/man-pages/man5/proc.5.html
    #   why? The image's /proc is an empty directory. Who fills in /proc/self, and why must
    #   this mount happen after pivot_into (and, in chapter 03, after the new PID namespace)?
    raise NotImplementedError("mount_proc")


def mount_dev() -> None:
    """/dev as a small tmpfs with only the devices a container may use."""
    # TODO: 1. mount a tmpfs on mountpoint("/dev") (flags MS_NOSUID | MS_STRICTATIME, data
    #   "mode=755,size=65536k"); 2. for each of DEVICES: os.mknod(path, stat.S_IFCHR | 0o666,
    #   os.makedev(major, minor)) then os.chmod(path, 0o666) (mknod's mode goes through the
    #   umask); 3. mkdir /dev/pts and mount "devpts" there (MS_NOSUID | MS_NOEXEC, data
    #   "newinstance,ptmxmode=0666,mode=0620"); 4. mkdir /dev/shm (0o1777) and mount a tmpfs
    #   named "shm" (MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k");
    #   5. os.symlink each (name, target) of DEV_LINKS as /dev/name.
    #   man: https://man7.org/linux/man-pages/man2/mknod.2.html, https://man7.org/linux/man-pages/man5/tmpfs.5.html
    #   why? Why not bind-mount the host's /dev? Which device there would hand the container
    #   the host's whole disk?
    raise NotImplementedError("mount_dev")


def mount_sys() -> None:
    """sysfs at /sys, read-only."""
    # TODO: syscalls.mount("sysfs", mountpoint("/sys"), "sysfs",
    #   MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV)
    #   man: https://man7.org/linux/man-pages/man5/sysfs.5.html
    #   why? What could a container change on the host through a writable /sys?
    raise NotImplementedError("mount_sys")


def remount_readonly() -> None:
    """`--read-only`: make the root (a bind mount) read-only."""
    # TODO: syscalls.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    #   man: https://man7.org/linux/man-pages/man2/mount.2.html ("Creating a bind mount" and
    #   MS_REMOUNT)
    #   why? Why MS_BIND here: what would a plain MS_REMOUNT | MS_RDONLY change instead?
    raise NotImplementedError("remount_readonly")


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
