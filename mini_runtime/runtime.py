"""The container-creation pipeline, in one place.

Each chapter adds its steps here, in order, so you can read what chapter N contributes:

    parent side (host)                        child side (inside)
    01 find the image, unpack it once         01 wait for "go"
    01 merge image defaults and flags         01 chdir, find the command, execve
    01 fork the child (it waits)
    01 forward signals, release, wait

Chapters to come slot in as: 04 make a cgroup, 05 mount an overlay, 06 make the network
(parent); 03 unshare namespaces, 02 pivot_root into the image, 08 drop privileges (child).
"""

from __future__ import annotations

import os
import signal

from mini_runtime import process
from mini_runtime.config import ContainerConfig, process_spec
from mini_runtime.errors import MiniError
from mini_runtime.image.store import Store


# >>> run
def run(config: ContainerConfig, store: Store | None = None) -> int:
    """Run one container in the foreground and return its exit code (docker's numbers)."""
    store = store or Store()
    image = store.get(config.image)                 # 01: unknown image -> exit 125
    rootfs = str(store.rootfs(image))               # 01: the image's files, unpacked once
    try:
        spec = process_spec(config, image.config)   # 01: Entrypoint + Cmd, Env, WorkingDir
    except ValueError as e:
        raise MiniError(str(e)) from None
    if not os.path.isdir(os.path.join(rootfs, spec.cwd.lstrip("/"))):
        raise MiniError(f"working directory {spec.cwd!r} does not exist in image {image.name}")

    child = process.spawn(spec, root=rootfs)        # 01: fork; the child waits for "go"
    try:
        with process.forward_signals(child.pid):    # 01: ctrl-C and kill reach the container
            process.release(child)                  # 01: go! (126/127 if execve failed)
            status = process.wait_for(child.pid)    # 01: until it ends; reaps the zombie
    except BaseException:
        _kill_and_reap(child.pid)
        raise
    return process.exit_code(status)                # 01: exit code, or 128 + signal
# <<< run


def _kill_and_reap(pid: int) -> None:
    """Leave nothing behind when the pipeline fails half-way."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
