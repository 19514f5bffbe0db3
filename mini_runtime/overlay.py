"""Chapter 05: copy-on-write root filesystems with overlayfs.

An image is a stack of read-only layers; a container must see them as one tree it can write to,
without changing the image or any other container. overlayfs does exactly that in the kernel:

    merged/  = what the container sees: the union of everything below
    upper/   = this container's own changes (new files, copies of changed ones, whiteouts)
    lower/   = the image's layers, top first, shared by every container of the image, never written

Reading a file finds it in the topmost directory that has it. Writing one that lives in a lower
layer first copies it up, whole, into upper/ ("copy-up"). Deleting one leaves a *whiteout* in
upper/ (a character device 0/0) that hides it. Kernel docs: filesystems/overlayfs.rst.

The mount is made by the container's child, inside its own mount namespace, so it disappears
with the container: nothing to unmount on the host, even if mini is killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mini_runtime import syscalls
from mini_runtime.errors import Exercise, MiniError
from mini_runtime.tuples import named_tuple

#: Options that keep the upper dir a plain "diff" a tar can express (no redirect or metacopy
#: xattrs, no index of hard links): what `diff` and `commit` read.
PLAIN_UPPER = "index=off,redirect_dir=off,metacopy=off"
PAGE = 4096  # mount(2) passes the options in one page of memory
OPAQUE_XATTR = "trusted.overlay.opaque"  # (user.overlay.opaque with `userxattr`, rootless)


@named_tuple
class Overlay:
    layers_root: Path      # lower paths are relative to it (short links: more layers fit)
    lower: list[str]       # top layer first
    upper: Path
    work: Path
    merged: Path
    volatile: bool = False  # never synced to disk: an upper dir thrown away at the end (--rm)

    @property
    def lower_dirs(self) -> list[Path]:
        return [self.layers_root / name for name in self.lower]


# >>> whiteouts
def is_whiteout(st: os.stat_result) -> bool:
    """How overlayfs marks a deleted name, in an upper dir or a lower layer: a character
    device with device number 0/0 (no real device has it)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def make_whiteout(dir_fd: int, name: str) -> None:
    """Hide `name` of the layers below: the marker that an OCI `.wh.<name>` becomes on disk."""
    os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dir_fd)


def make_opaque(fd: int) -> None:
    """Hide every lower child of the directory `fd` (OCI's `.wh..wh..opq`), keep its own."""
    os.setxattr(fd, OPAQUE_XATTR, b"y")


def is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE_XATTR) == b"y"
    except OSError:
        return False
# <<< whiteouts


def of(directory: Path, layers_root: Path, lower: list[str]) -> Overlay:
    """Where a container's overlay directories are (made by prepare(), read by diff/export)."""
    return Overlay(layers_root, lower, directory / "upper", directory / "work", directory / "rootfs")


# >>> overlay-prepare
def prepare(directory: Path, layers_root: Path, lower: list[str]) -> Overlay:
    """The container's own directories beside the shared layers: upper/ for its changes,
    work/ (overlayfs's scratch space, on the same filesystem as upper/) and rootfs/ to mount on."""
    layout = of(directory, layers_root, lower)
    for path in (layout.upper, layout.work, layout.merged):
        path.mkdir(mode=0o755)
    return layout
# <<< overlay-prepare


# >>> overlay-mount
def mount_options(layout: Overlay) -> str:
    """lowerdir (top layer first, colon-separated), upperdir, workdir, and the options that keep
    the upper dir plain. Lower paths stay relative: mount() resolves them from layers_root.
    A volatile layout's overlay never syncs its upper dir: not at fsync(2), and not when it is
    unmounted, which otherwise writes back the whole filesystem the upper dir is on."""
    return (f"lowerdir={':'.join(layout.lower)},upperdir={layout.upper},"
            f"workdir={layout.work},{PLAIN_UPPER}" + (",volatile" if layout.volatile else ""))


def mount(layout: Overlay) -> None:
    """Mount the union at layout.merged. The kernel resolves relative lower paths from our
    working directory, so we stand in layers_root while we mount."""
    options = mount_options(layout)
    if len(options) >= PAGE:
        raise MiniError(f"the image has {len(layout.lower)} layers: too many for one overlay mount "
                        f"(its options would take {len(options)} bytes; the kernel reads one page, {PAGE})")
    here = os.getcwd()
    os.chdir(layout.layers_root)
    try:
        syscalls.mount("overlay", str(layout.merged), "overlay", 0, options)
    finally:
        os.chdir(here)
# <<< overlay-mount


# >>> overlay-view
@contextlib.contextmanager
def view(layout: Overlay) -> Iterator[Path]:
    """The union, mounted read-only for this process alone (`export`): in a mount namespace of
    its own, with the upper dir as the top lower layer (its whiteouts still hide)."""
    import tempfile

    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mini-view-") as target:
        os.chdir(layout.layers_root)  # relative lower paths, as in mount()
        try:
            syscalls.mount("overlay", target, "overlay", syscalls.MS_RDONLY,
                           f"lowerdir={layout.upper}:{':'.join(layout.lower)}")
        finally:
            os.chdir(here)
        try:
            yield Path(target)
        finally:
            syscalls.umount2(target, syscalls.MNT_DETACH)
# <<< overlay-view


def predicted_errnos() -> dict[str, int]:
    """The chapter's "why?" questions answered as data (exercise 05 checks them against the
    kernel): which errno an overlay mount, or the rmdir of its mount point, fails with."""
    return {"work_on_another_mount": errno.EINVAL,    # refused at mount time, not an EXDEV later
            "lower_layer_missing": errno.ENOENT,      # each lowerdir is looked up as a path
            "rmdir_of_a_mount_point": errno.EBUSY}    # in the caller's own mount namespace


# --- exercise 05's extension: `mini image squash` exists, the learner writes this -------------

def squash_layer(layers_root: Path, lower: list[str]) -> bytes:
    """The image's layers (`lower`, top first, relative to `layers_root`, as unpacked: whiteouts
    are char devices 0/0, opaque directories carry OPAQUE_XATTR) as one uncompressed layer tar:
    what a container of the image sees, with no whiteout left."""
    raise Exercise("mini image squash", "05_images")
