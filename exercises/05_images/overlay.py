"""Chapter 05 exercise: copy-on-write root filesystems with overlayfs.
Your copy of `mini_runtime/overlay.py`.

An image is a stack of read-only layers; a container must see them as one tree it can write to,
without changing the image or any other container. overlayfs does that in the kernel:

    merged/  = what the container sees: the union of everything below
    upper/   = this container's own changes (new files, copies of changed ones, whiteouts)
    lower/   = the image's layers, top first, shared by every container of the image, never written

Fill in the seven functions below. The grader plugs them into the reference runtime:

    mini run:     parent: prepare(containers/<id>, layers root, lower) → upper/ work/ rootfs/
                  child:  (its own mount namespace) mount(layout) → uses mount_options(layout)
    unpacking a layer:    a `.wh.<name>` entry → make_whiteout(directory fd, name)
    mini diff, commit:    is_whiteout(lstat of each file in upper/) → "D /path", `.wh.<name>`
    mini export:          with view(layout) as merged: tar up merged/
    check 5.9:            predicted_errnos() against the kernel's answers ("why?" as data)

    python -m exercises grade 05          (one check: --only 5.3)

Every TODO names the documentation to read and the pitfall to avoid (never the line to write),
and asks a "why?". Chapter text: chapters/05-images.md. Kernel documentation for overlayfs:
https://docs.kernel.org/filesystems/overlayfs.html
"""

from __future__ import annotations

import contextlib
import errno  # noqa: F401 - for predicted_errnos
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from mini_runtime import syscalls
from mini_runtime.errors import MiniError

# Given (the same as the reference): the layout tuple, the options that keep upper/ a plain
# diff, the size of one page, and the opaque-directory marker with its two functions.
from mini_runtime.overlay import (OPAQUE_XATTR, PAGE, PLAIN_UPPER, Overlay,  # noqa: F401
                                  is_opaque, make_opaque)


def is_whiteout(st: os.stat_result) -> bool:
    """How overlayfs marks a deleted name, in an upper dir or a lower layer: a character
    device with device number 0/0 (no real device has it)."""
    # TODO: doc: "whiteouts and opaque directories" in overlayfs.html: what exactly makes a
    #   file a whiteout? inode(7) says which fields of a stat result hold the file type and the
    #   device number (https://man7.org/linux/man-pages/man7/inode.7.html); Python's `stat`
    #   module reads the type for you.
    #   pitfall: many files are character devices, and a device number has two halves.
    #   why? /dev/null is a character device too (1/3). What would `mini diff` say about a
    #   container that made its own /dev/null in its upper dir if you tested the type alone?
    raise NotImplementedError("is_whiteout")


def make_whiteout(dir_fd: int, name: str) -> None:
    """Hide `name` of the layers below: the marker that an OCI `.wh.<name>` becomes on disk."""
    # TODO: man https://man7.org/linux/man-pages/man2/mknod.2.html, and Python's os.mknod:
    #   which of its arguments carries the file type, which the device number, which the place?
    #   doc: "whiteouts and opaque directories" in overlayfs.html (what the kernel looks for)
    #   pitfall: `name` is relative to the directory open at `dir_fd`, never to the working
    #   directory (the unpacker does not chdir into the layer). Permissions: 0600.
    #   why? A layer tar says "deleted" with an empty *file* `.wh.<name>`. Why can't the
    #   unpacked layer keep that file as it is, and what would a container see if it did?
    raise NotImplementedError("make_whiteout")


def prepare(directory: Path, layers_root: Path, lower: list[str]) -> Overlay:
    """The container's own directories beside the shared layers: upper/ for its changes,
    work/ (overlayfs's scratch space, on the same filesystem as upper/) and rootfs/ to mount on."""
    # TODO: the docstring and the Overlay tuple's fields are the contract: three directories
    #   (upper, work, rootfs; mode 0755) in `directory`, which exists, and the layout that
    #   names them.
    #   doc: "Upper and Lower" in overlayfs.html (and what it says about workdir)
    #   pitfall: the kernel wants the work dir on the same mount as the upper dir (see
    #   predicted_errnos): which place makes sure of that?
    #   why? The container's files live in containers/<id>/upper, not in the image. What does
    #   that let `mini` do after the container has exited that `cp -a` of chapter 02 could
    #   only do by comparing two whole trees?
    raise NotImplementedError("prepare")


def mount_options(layout: Overlay) -> str:
    """lowerdir (top layer first, colon-separated), upperdir, workdir, and the options that keep
    the upper dir plain. Lower paths stay relative: mount() resolves them from layers_root."""
    # TODO: doc: "Multiple lower layers" in overlayfs.html: how are several lower directories
    #   written in one option, and which of them is on top? The options naming the upper and
    #   the work dir are in "Upper and Lower"; PLAIN_UPPER's are in the chapter's "Three
    #   options mini turns off".
    #   pitfall: layout.lower is already top first, and relative to layout.layers_root on
    #   purpose (mount() stands there). Which paths would a 150-layer image need otherwise?
    #   why? Which layer wins when two layers have the same file? And why keep the lower paths
    #   relative ("l/0a1b...") rather than absolute, when the kernel reads all the options
    #   from one page of memory (PAGE bytes)? Count what 150 layers would take.
    raise NotImplementedError("mount_options")


def mount(layout: Overlay) -> None:
    """Mount the union at layout.merged. The kernel resolves relative lower paths from our
    working directory, so we stand in layers_root while we mount."""
    # TODO: the chapter's § Mounting the union; the order of the steps is yours to find.
    #   man: https://man7.org/linux/man-pages/man2/mount.2.html (overlay's options are its
    #   `data`); doc: "Multiple lower layers" in overlayfs.html
    #   pitfall: the kernel reads at most one page (PAGE bytes) of options and would cut the
    #   rest off. What should the caller hear instead (a MiniError that names how many layers
    #   the image has), and before which call?
    #   pitfall: the kernel resolves relative lower paths from the working directory of the
    #   process that calls mount(2). Where is that process afterwards, when mount(2) worked,
    #   and when it raised?
    #   why? A mount that fails (a missing layer directory, say) raises OSError. What would be
    #   wrong with the process, which goes on to pivot_root and execve, if it stayed in
    #   layers_root?
    raise NotImplementedError("mount")


@contextlib.contextmanager
def view(layout: Overlay) -> Iterator[Path]:
    """The union, mounted read-only for this process alone (`export`): in a mount namespace of
    its own, with the upper dir as the top lower layer (its whiteouts still hide)."""
    # TODO: the docstring is the contract. Three things to get right, in an order you find:
    #   a mount namespace of this process's own from which nothing propagates (chapter 02's
    #   make_mounts_private), a read-only overlay of lower layers only on a place of its own
    #   (tempfile), and no mount left once the `with` block ends, whatever happens in it.
    #   man: https://man7.org/linux/man-pages/man2/umount.2.html,
    #   https://man7.org/linux/man-pages/man7/mount_namespaces.7.html, contextlib's
    #   contextmanager (where does the caller's block run?)
    #   doc: "Multiple lower layers" in overlayfs.html (a mount with lower layers only)
    #   pitfall: the upper dir's path is absolute, the layers' are relative (as in mount()).
    #   why? Why not mount the container's upper dir as an upperdir again, with its workdir?
    #   And who else on the machine could see the mount, and for how long, without its own
    #   mount namespace?
    raise NotImplementedError("view")


def predicted_errnos() -> dict[str, int]:
    """Why? Three mistakes the kernel refuses. Predict its errno for each (errno.E...); check 5.9
    makes each mistake for real, in a mount namespace of its own, and compares."""
    # TODO: return {"work_on_another_mount": ..., "lower_layer_missing": ...,
    #               "rmdir_of_a_mount_point": ...}
    #   work_on_another_mount: an overlay mount whose workdir is on another mount than its
    #       upperdir (two tmpfs mounts, say). The kernel moves files from work/ to upper/ with
    #       rename(2). When does it find out that it could not?
    #   lower_layer_missing: an overlay mount whose lowerdir names a directory that does not
    #       exist (check 5.3's missing layer).
    #   rmdir_of_a_mount_point: rmdir(2) of a directory on which a tmpfs is mounted, in the
    #       caller's own mount namespace.
    #   man: https://man7.org/linux/man-pages/man2/mount.2.html,
    #   https://man7.org/linux/man-pages/man2/rmdir.2.html (ERRORS); doc: "Upper and Lower" in
    #   overlayfs.html. Try them in `unshare -m` (as root, on a tmpfs of your own), not on the host.
    raise NotImplementedError("predicted_errnos")


# --- the extension (12 of the 20 points): a command the reference runtime does not have --------
# `mini image squash SOURCE TARGET` exists: it finds SOURCE's layers (unpacked, as `mini run`
# uses them), calls this hook, and stores what it returns as TARGET's one layer, with SOURCE's
# config. The reference's hook says "exercise 05's extension" and exits 125. Read the README's
# "Extend" section.

def squash_layer(layers_root: Path, lower: list[str]) -> bytes:
    """The image's layers (`lower`, top first, relative to `layers_root`, as unpacked: whiteouts
    are char devices 0/0, opaque directories carry OPAQUE_XATTR) as one uncompressed layer tar:
    what a container of the image sees, with no whiteout left."""
    # TODO: two ways. Walk the layers bottom to top and apply each one's whiteouts and opaque
    #   directories to what the layers below gave (is_whiteout, is_opaque: what would a later
    #   layer's plain file do to an earlier whiteout?), or let the kernel do it as view() does.
    #   Then write the tar (tarfile; keep modes, owners, symlinks, hard links).
    #   doc: "whiteouts and opaque directories" in overlayfs.html; the OCI image spec's
    #   layer.md, "Whiteouts" (https://github.com/opencontainers/image-spec/blob/main/layer.md)
    #   why? The squashed layer is a bottom layer. Why must it hold no whiteout at all, and
    #   what does an opaque directory of layer 3 do to layer 1's files, and to layer 2's?
    raise NotImplementedError("squash_layer")
