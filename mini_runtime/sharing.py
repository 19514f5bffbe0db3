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
import os
import signal
from collections.abc import Iterator

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


# >>> resolve-sharing
def resolve(config: ContainerConfig) -> Shared:
    """At create (and at each start): the files of the namespaces the container joins, checked
    in docker's words: the other container must exist and run, and to join its IPC namespace it
    must have offered it (`--ipc shareable`; docker 20.10's default, `private`, does not)."""
    check_namespace_modes(pid=config.pid, ipc=config.ipc, uts=config.uts, hostname=config.hostname)
    pid = ipc = None
    if config.pid == "host":
        pid = "/proc/self/ns/pid"
    elif config.pid:
        name = config.pid.partition(":")[2]
        pid = f"/proc/{running(name, 'cannot join PID of a non running container: ' + name)}/ns/pid"
    if config.ipc == "host":
        ipc = "/proc/self/ns/ipc"
    elif config.ipc and config.ipc.startswith("container:"):
        name = config.ipc.partition(":")[2]
        words = "can't join IPC of container " + name
        ipc = f"/proc/{running(name, words, ipc=True)}/ns/ipc"
    return Shared(pid, ipc, "/proc/self/ns/uts" if config.uts == "host" else None)
# <<< resolve-sharing


def running(name: str, words: str, ipc: bool = False) -> int:
    """The pid of NAME's init, if it runs (and, for `ipc`, offers its IPC namespace). docker's
    words: `words` before the lookup's error; before "not running" only for IPC."""
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
    return state["Pid"]


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
