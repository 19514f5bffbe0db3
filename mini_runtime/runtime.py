"""The container-creation pipeline, in one place.

Each chapter adds its steps here, in order, so you can read what chapter N contributes:

    parent side (host)                        child side (inside)
    01 find the image, unpack it once         01 wait for "go"
    01 merge image defaults and flags         02 a private mount table, pivot_root into
    02 a private copy of the image's files       the image, fresh /proc /dev /sys
    01 fork the child (it waits)              02 create the working directory
    01 forward signals, release, wait         01 chdir, find the command, execve
    02 remove the copy

Chapters to come slot in as: 04 make a cgroup, 05 mount an overlay (instead of the copy),
06 make the network (parent); 03 unshare namespaces, 08 drop privileges (child).
"""

from __future__ import annotations

import os
import signal

from mini_runtime import container, process, rootfs
from mini_runtime.config import ContainerConfig, ProcessSpec, process_spec
from mini_runtime.errors import MiniError
from mini_runtime.image.store import Store


# >>> run
def run(config: ContainerConfig, store: Store | None = None) -> int:
    """Run one container in the foreground and return its exit code (docker's numbers)."""
    store = store or Store()
    image = store.get(config.image)                 # 01: unknown image -> exit 125
    try:
        spec = process_spec(config, image.config)   # 01: Entrypoint + Cmd, Env, WorkingDir
    except ValueError as e:
        raise MiniError(str(e)) from None
    container.sweep_stale()                         # 02: tidy up after a killed mini
    directory = container.create(container.new_id())  # 02: $MINI_ROOT/containers/<id>
    try:
        files = rootfs.copy_image(store.rootfs(image), directory / "rootfs")  # 02: a private copy
        child = process.spawn(spec, root="/",       # 01: fork; the child waits for "go"
                              setup=lambda: inside(config, spec, str(files)))
        try:
            with process.forward_signals(child.pid):    # 01: ctrl-C and kill reach the container
                process.release(child)                  # 01: go! (126/127 if execve failed)
                status = process.wait_for(child.pid)    # 01: until it ends; reaps the zombie
        except BaseException:
            _kill_and_reap(child.pid)
            raise
    finally:
        container.remove(directory)                 # 02: nothing left behind
    return process.exit_code(status)                # 01: exit code, or 128 + signal
# <<< run


# >>> inside
def inside(config: ContainerConfig, spec: ProcessSpec, files: str) -> None:
    """The child's steps between "go" and execve."""
    rootfs.enter(files, pivot=config.pivot)         # 02: private mounts, new root, /proc /dev /sys
    os.makedirs(spec.cwd, exist_ok=True)            # 02: like docker, -w creates the directory
    if config.read_only:
        rootfs.remount_readonly()                   # 02: --read-only
# <<< inside


def _kill_and_reap(pid: int) -> None:
    """Leave nothing behind when the pipeline fails half-way."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
