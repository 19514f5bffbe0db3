"""Chapter 03: --pid, --ipc, --uts: namespaces a container shares instead of making its own.

docker can give a container the host's PID, IPC or UTS namespace (`host`), or another running
container's PID or IPC namespace (`container:NAME`): a debugging container that sees (and can
trace) the processes of the one it sits beside, a sidecar that shares its System V shared memory,
a monitoring agent that sees every process of the machine. At create the modes become namespace
files: /proc/PID/ns/KIND of the other container's init, or /proc/self/ns/KIND for mini's own
(the host's). The parent joins the PID one for its next child only (its child is born there, and
is not PID 1 of it); the child joins IPC and UTS with setns(2) right after making its own, as
chapter 07's `--network container:NAME` joins a network namespace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from mini_runtime import cgroups, container, namespaces, syscalls
from mini_runtime.config import ContainerConfig, check_namespace_modes
from mini_runtime.errors import Conflict, InvalidParameter, MiniError
from mini_runtime.tuples import named_tuple


@named_tuple
class Shared:
    """The namespace files to join, by kind; None: the container makes its own."""
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    shm: str | None = None      # the /dev/shm to bind instead of a private one (--ipc)


# >>> resolve-sharing
def resolve(config: ContainerConfig, container_id: str) -> Shared:
    """At create (and at each start): the files of the namespaces the container joins, checked
    in docker's words: the other container must exist and run, and to join its IPC namespace it
    must have offered it (`--ipc shareable`; docker 20.10's default, `private`, does not). With
    an IPC namespace goes its /dev/shm (POSIX shared memory lives there, not in the namespace):
    a shareable container's own is the tmpfs that start mounts for it; a joiner's, the other's;
    with the host's namespace, the host's /dev/shm (docker's --ipc host)."""
    check_namespace_modes(pid=config.pid, ipc=config.ipc, uts=config.uts, hostname=config.hostname)
    pid = ipc = shm = None
    if config.pid == "host":
        pid = "/proc/self/ns/pid"
    elif config.pid:
        name = config.pid.partition(":")[2]
        pid = f"/proc/{running(name, 'cannot join PID of a non running container: ' + name)[0]}/ns/pid"
    if config.ipc == "host":
        ipc, shm = "/proc/self/ns/ipc", "/dev/shm"
    elif config.ipc and config.ipc.startswith("container:"):
        name = config.ipc.partition(":")[2]
        words = "can't join IPC of container " + name
        init, other = running(name, words, ipc=True)
        ipc, shm = f"/proc/{init}/ns/ipc", shm_of(other)
    elif config.ipc == "shareable":
        shm = str(shm_dir(container_id))
    return Shared(pid, ipc, "/proc/self/ns/uts" if config.uts == "host" else None, shm)
# <<< resolve-sharing


def pinned(config: ContainerConfig) -> ContainerConfig:
    """At create, once the targets were found: `container:NAME` becomes `container:ID`, as docker
    records it (inspect shows the id), so that start joins that container even if it was renamed
    or its name given to another meanwhile. (A NAME not found is left for connect to refuse.)"""
    modes = {}
    for field in ("pid", "ipc", "network"):
        value = getattr(config, field) or ""
        if value.startswith("container:"):
            with contextlib.suppress(MiniError):
                modes[field] = "container:" + container.find(value.partition(":")[2]).name
    return config._replace(**modes)


def check_at_start(config: ContainerConfig, container_id: str, shared: Shared) -> None:
    """docker checks the containers to join at create and again at start: each must still run
    (its words, exit 1 for `start`), and be the process the waiting child was made for. (The
    monitor of a created container gives it up as soon as one ends: watched; so a start then
    makes a new child, for the targets as they are. This check is for a race with that.)"""
    now = resolve(config._replace(hostname=None), container_id)  # (-h was checked at create)
    for kind in ("pid", "ipc"):
        if getattr(shared, kind) != getattr(now, kind):
            raise Conflict(f"container {getattr(config, kind)[10:]} was restarted since this one was created")


def watched(config: ContainerConfig) -> list[int]:
    """pidfds of the inits of the containers it joins (--pid, --ipc, --network container:ID):
    readable when one ends. A created container's monitor watches them: its child, made to join
    those namespaces, could no longer join the ones docker's start would (pid: it dies with
    them). Ones already gone are left to check_at_start."""
    fds = []
    for mode in (config.pid, config.ipc, config.network):
        if mode and mode.startswith("container:"):
            with contextlib.suppress(MiniError, OSError, KeyError):
                pid = container.load(container.find(mode[10:]))["State"]["Pid"]
                if pid:
                    fds.append(syscalls.pidfd_open(pid))
    return fds


def running(name: str, words: str, ipc: bool = False) -> tuple[int, str]:
    """The pid of NAME's init and its id, if it runs (and, for `ipc`, offers its IPC namespace).
    docker's words: `words` before the lookup's error; before "not running" only for IPC."""
    try:
        directory = container.find(name)
        record = container.load(directory)
    except MiniError as e:
        raise type(e)(f"{words}: {e}") from None
    state = record["State"]
    if not state.get("Running") or state.get("Restarting") or not state.get("Pid"):
        raise Conflict(f"{words}: " * ipc + f"container {directory.name} is not running")
    if ipc and (record["HostConfig"].get("IpcMode") or "private") in ("private", "none"):
        raise InvalidParameter(f"{words}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)")
    return state["Pid"], directory.name


@contextlib.contextmanager
def children_born_in(pid_namespace: str | None) -> Iterator[None]:
    """The parent's side: the child forked inside is PID 1 of a new PID namespace (None), or
    one more process of the namespace at `pid_namespace` (--pid host, --pid container:NAME)."""
    if pid_namespace is None:
        with namespaces.children_in_new_pid_namespace():
            yield
        return
    with namespaces.children_in_pid_namespace(pid_namespace):
        yield


def opened(shared: Shared) -> list[tuple[int, int]]:
    """The child's side, before it unshares (chapter 03's enter_namespaces): the IPC and UTS
    namespaces it will join instead, opened while /proc/self is still mini's."""
    kinds = ((shared.ipc, syscalls.CLONE_NEWIPC), (shared.uts, syscalls.CLONE_NEWUTS))
    return [(os.open(path, os.O_RDONLY | os.O_CLOEXEC), kind) for path, kind in kinds if path]


def join(fds: list[tuple[int, int]]) -> None:
    """... and after: setns(2) into them; the new ones it made are dropped, unused."""
    for fd, kind in fds:
        syscalls.setns(fd, kind)
        os.close(fd)


# >>> shareable-shm
def shm_dir(container_id: str) -> Path:
    """A shareable container's /dev/shm, on the host's side (docker's containers/ID/mounts/shm):
    the containers that join its IPC namespace bind-mount the same tmpfs, so what one writes
    in /dev/shm (shm_open(3), a file) the other sees. In its run directory: it lives while the
    container runs, and container.remove_run_dir unmounts it whatever ended the container."""
    return container.run_dir(container_id) / "shm"


def shm_of(container_id: str) -> str:
    """The /dev/shm of a container that others may join: its own (shareable), the host's (its
    IPC namespace is the host's), or, if it joined another's, that one's (docker's ShmPath)."""
    for _ in range(8):                              # (a chain of joiners; never a loop: each
        with contextlib.suppress(MiniError, OSError):  # joined one that ran before it)
            mode = container.load(container.find(container_id))["HostConfig"].get("IpcMode") or ""
            if mode == "host":
                return "/dev/shm"
            if mode.startswith("container:"):
                container_id = mode[10:]
                continue
        break
    return str(shm_dir(container_id))


def mount_shm(container_id: str) -> None:
    """At start (docker's moment), host side: a fresh tmpfs, as rootfs.mount_dev's /dev/shm."""
    path = shm_dir(container_id)
    path.mkdir(mode=0o700, exist_ok=True)
    syscalls.mount("shm", str(path), "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV,
                   "mode=1777,size=65536k")


def unmount_shm(container_id: str) -> None:
    """When the container has ended: detached, so a joiner still running keeps its copy (its
    files too) until it ends; the directory goes with the run directory."""
    try:
        syscalls.umount2(str(shm_dir(container_id)), syscalls.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # (not mounted: none, or unmounted)
            raise


def cloned_shm(shared: Shared) -> int | None:
    """The child's side, before pivot_root: the /dev/shm to use, as a copy of its mount held by
    an fd (open_tree(2)); a path on the host's side would be out of reach once the new root is
    in place. Refused if no tmpfs is mounted there (the other container has just ended)."""
    if shared.shm is None:
        return None
    fd = syscalls.open_tree(shared.shm)
    if os.fstat(fd).st_dev == os.stat(os.path.dirname(shared.shm)).st_dev:
        os.close(fd)
        raise OSError(errno.ENOENT, "no shared /dev/shm mounted (has its container ended?)", shared.shm)
    return fd


def attach_shm(fd: int | None) -> None:
    """... and in the new root, after /dev: it replaces the private /dev/shm."""
    if fd is None:
        return
    syscalls.umount2("/dev/shm")
    syscalls.move_mount(fd, "/dev/shm")
    os.close(fd)
# <<< shareable-shm


def end_the_rest(config: ContainerConfig, group: cgroups.Cgroup) -> None:
    """When the container's init has ended. In a PID namespace of its own the kernel killed
    every other process of it at once; in a shared one (--pid host, --pid container:NAME) they
    live on, re-parented: kill them through the cgroup, as runc does, so that none is left
    behind. Its cgroup holds only the container's processes (never one of the host's)."""
    for _ in range(10 if config.pid else 0):         # (a fork bomb may need a few rounds)
        left = group.processes()
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            cgroups.wait_until(lambda: not group.processes() & left, "the container's processes", 1.0)
        if not left:
            return
