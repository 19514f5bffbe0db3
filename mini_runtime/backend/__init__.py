"""The one interface the CLI talks to: the Docker Engine API's verbs, in Python.

Each method is named after an Engine API operation (ContainerCreate -> container_create) and
returns what that operation's response body holds, as plain dicts with the API's field names
(ImageSummary, DeleteItem, ContainerWaitResponse, ...). `LocalBackend` (backend/local.py) does the
work in this process, daemonless like podman; chapter 09 adds `RemoteBackend`, which sends the same
calls over HTTP to `mini daemon`. The CLI cannot tell them apart, so its output cannot drift.

Streams (export, save, load, import) are passed as binary files rather than HTTP bodies.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Callable, Iterable, Iterator

from mini_runtime.config import ContainerConfig
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

__all__ = ["Attached", "Backend", "ContainerConfig", "connect"]


@named_tuple
class Attached:
    """ContainerAttach's hijacked connection: with `tty` raw bytes both ways; without, the
    output in docker's frames (stdout and stderr apart) and a half-close for the end of stdin."""
    stream: socket.socket
    tty: bool


class Backend(abc.ABC):
    """The Engine API's verbs that mini serves so far (chapters 01-06)."""

    # --- containers ----------------------------------------------------------------------------

    @abc.abstractmethod
    def container_create(self, config: ContainerConfig, stdio: bool = False) -> dict[str, Any]:
        """ContainerCreate: {"Id": ..., "Warnings": [...]}; its process waits for start. With
        `stdio` its stdin is ours and its output comes to our stdout and stderr as well as to its
        log (docker's attach; a foreground `run`)."""

    @abc.abstractmethod
    def container_start(self, container_id: str) -> None:
        """ContainerStart."""

    @abc.abstractmethod
    def container_wait(self, container_id: str) -> dict[str, Any]:
        """ContainerWait: {"StatusCode": n, "Error": None, "OOMKilled": bool}. (OOMKilled is
        mini's addition, so that the CLI can say why; docker's CLI asks inspect instead.)"""

    @abc.abstractmethod
    def container_detach(self, container_id: str) -> None:
        """mini's own: this process will not wait for it (`run -d`)."""

    @abc.abstractmethod
    def container_kill(self, container_id: str, signal: str | int = "KILL") -> None:
        """ContainerKill: "KILL", "SIGTERM" or a number."""

    @abc.abstractmethod
    def container_stop(self, container_id: str, timeout: int | None = None) -> None:
        """ContainerStop: its StopSignal (SIGTERM), then SIGKILL after `timeout` s (its StopTimeout, 10)."""

    @abc.abstractmethod
    def container_list(self, all: bool = False, limit: int | None = None,
                       filters: dict[str, list[str]] | None = None, size: bool = False) -> list[dict[str, Any]]:
        """ContainerList: ContainerSummary dicts, newest first; filters status, name, id, ancestor,
        label, exited, before, since, network; `size`: SizeRw and SizeRootFs too (a walk)."""

    @abc.abstractmethod
    def container_pause(self, container_id: str) -> None:
        """ContainerPause: the cgroup freezer."""

    @abc.abstractmethod
    def container_unpause(self, container_id: str) -> None:
        """ContainerUnpause."""

    @abc.abstractmethod
    def container_top(self, container_id: str, ps_args: str = "") -> dict[str, Any]:
        """ContainerTop: {"Titles": [...], "Processes": [[...]]}, host PIDs."""

    @abc.abstractmethod
    def container_rename(self, container_id: str, name: str) -> None:
        """ContainerRename."""

    @abc.abstractmethod
    def container_update(self, container_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """ContainerUpdate: {"Warnings": [...]}. `changes` are ContainerConfig's limit fields and
        `restart` (--restart's text), None for those not given; merged into its record (inspect's
        HostConfig), and into its cgroup at once if it has one (running, paused, created)."""

    @abc.abstractmethod
    def container_inspect(self, container_id: str, size: bool = False) -> dict[str, Any]:
        """ContainerInspect; `size`: SizeRw and SizeRootFs too (a walk of its files)."""

    @abc.abstractmethod
    def container_logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                       since: int | None = None, until: int | None = None, timestamps: bool = False,
                       details: bool = False) -> Iterator[tuple[str, bytes]]:
        """ContainerLogs: (stream, bytes) per entry, as `docker logs` writes them."""

    @abc.abstractmethod
    def container_attach(self, container_id: str, stdin: bool = False,
                         streams: tuple = ("stdout", "stderr")) -> Attached:
        """ContainerAttach (stream, `streams` of stdout and stderr; `stdin` too): made before ContainerStart it
        misses none of the output; made to a container that has exited, it waits for its next
        start (docker's `start -a`)."""

    @abc.abstractmethod
    def container_resize(self, container_id: str, height: int, width: int) -> None:
        """ContainerResize: the size of its pty."""

    @abc.abstractmethod
    def container_stats(self, container_id: str) -> Iterator[dict[str, Any]]:
        """ContainerStats (stream): one StatsResponse a second (read, preread, cpu_stats,
        precpu_stats, memory_stats, pids_stats, blkio_stats, networks, name, id), each with the
        sample before it as precpu_stats. The first sample is taken at the call, so that stats
        of several containers asked at once come together."""

    @abc.abstractmethod
    def exec_create(self, container_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """ContainerExec: an ExecConfig (Cmd, Env, User, WorkingDir, Tty, AttachStdin, Detach)
        for a running container; {"Id": ...}. 409 (Conflict) if it is stopped or paused."""

    @abc.abstractmethod
    def exec_start(self, exec_id: str, console: Callable[[int], None] | None = None) -> None:
        """ExecStart: run it, with our stdout and stderr (and stdin with AttachStdin); with Tty on
        a pty of the container, whose master fd is handed to `console` to relay (the hijacked
        stream of chapter 09). Returns when it has ended (at once when Detach)."""

    @abc.abstractmethod
    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        """ExecInspect: {"ID", "ContainerID", "Running", "ExitCode", "ProcessConfig", ...}."""

    @abc.abstractmethod
    def container_delete(self, container_id: str, force: bool = False) -> None:
        """ContainerDelete."""

    @abc.abstractmethod
    def container_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """ContainersPrune: every container without a process (created, exited), `label=`,
        `label!=` and `until=` filters; {"ContainersDeleted": [ids], "SpaceReclaimed": bytes}."""

    @abc.abstractmethod
    def container_changes(self, container_id: str) -> list[dict[str, Any]]:
        """ContainerChanges: [{"Path": ..., "Kind": 0 modified | 1 added | 2 deleted}]."""

    @abc.abstractmethod
    def container_export(self, container_id: str, out: BinaryIO) -> None:
        """ContainerExport: its whole filesystem as a tar, written to `out`."""

    @abc.abstractmethod
    def container_stat_path(self, container_id: str, path: str) -> dict[str, Any]:
        """ContainerStatPath (HEAD /containers/{id}/archive): {"name", "size", "mode" (Go's
        os.FileMode bits), "mtime", "linkTarget"}; a path in the container, running or not."""

    @abc.abstractmethod
    def container_archive(self, container_id: str, path: str) -> tuple[dict[str, Any], BinaryIO]:
        """ContainerArchive (GET /containers/{id}/archive): the path's stat, and a tar of it to
        read (closing it may raise what failed meanwhile)."""

    @abc.abstractmethod
    def container_extract(self, container_id: str, path: str, source: BinaryIO,
                          copy_uid_gid: bool = False) -> None:
        """PutContainerArchive: the tar `source` unpacked into the directory `path`; owned by
        the container's root unless `copy_uid_gid`. A directory never replaces a file, nor the
        reverse (docker's noOverwriteDirNonDir, which its CLI always sets)."""

    @abc.abstractmethod
    def image_commit(self, container_id: str, repository: str | None, *, author: str = "",
                     comment: str = "", pause: bool = True, changes: list[str] = ()) -> dict[str, Any]:
        """ImageCommit (POST /commit): {"Id": ...}; a running container is paused meanwhile
        unless `pause` is False; `changes` are Dockerfile instructions for the config."""

    # --- images --------------------------------------------------------------------------------

    @abc.abstractmethod
    def image_inspect(self, name: str) -> dict[str, Any]:
        """ImageInspect: the image's config and its layers' DiffIDs, in docker's fields."""

    @abc.abstractmethod
    def image_list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """ImageList: ImageSummary dicts (Id, RepoTags, Created as Unix seconds, Size, Labels),
        newest first; filters dangling, label, before, since, reference."""

    @abc.abstractmethod
    def image_tag(self, source: str, target: str) -> None:
        """ImageTag."""

    @abc.abstractmethod
    def image_delete(self, name: str, force: bool = False) -> list[dict[str, str]]:
        """ImageDelete: DeleteItem dicts, {"Untagged": name} or {"Deleted": id}."""

    @abc.abstractmethod
    def image_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """ImagesPrune: the dangling images (all unused ones with dangling=false) deleted;
        {"ImagesDeleted": [{"Untagged": ...}, {"Deleted": ...}] or None, "SpaceReclaimed": bytes}."""

    @abc.abstractmethod
    def image_history(self, name: str) -> list[dict[str, Any]]:
        """ImageHistory: newest first; Id ("<missing>" below the image itself), Created (Unix
        seconds), CreatedBy, Tags, Size, Comment."""

    @abc.abstractmethod
    def image_import(self, source: BinaryIO, repository: str | None, *, message: str = "",
                     origin: str = "-", changes: list[str] = ()) -> dict[str, Any]:
        """ImageCreate with fromSrc: a root filesystem tar becomes an image; {"Id": ...};
        `changes` are Dockerfile instructions for its config."""

    @abc.abstractmethod
    def image_squash(self, source: str, target: str) -> dict[str, Any]:
        """mini image squash (exercise 05's extension): {"Id": ...} of the one-layer image."""
        raise NotImplementedError

    def image_save(self, names: list[str], out: BinaryIO) -> None:
        """ImageGetAll: the images as one tar archive, written to `out`."""

    @abc.abstractmethod
    def image_load(self, source: BinaryIO) -> list[dict[str, str]]:
        """ImageLoad: the progress stream, [{"stream": "Loaded image: ...\\n"}]."""

    # --- networks (chapter 07) -----------------------------------------------------------------

    @abc.abstractmethod
    def network_create(self, name: str, subnet: str | None = None, gateway: str | None = None,
                       ip_range: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
        """NetworkCreate: {"Id": ..., "Warning": ""}; a bridge of its own on a free subnet."""

    @abc.abstractmethod
    def network_list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """NetworkList: the pre-defined networks first, each as NetworkInspect shows it;
        `filters` as the Engine API's (driver, id, label, name, scope, type, dangling)."""

    @abc.abstractmethod
    def network_inspect(self, name: str) -> dict[str, Any]:
        """NetworkInspect, by name, id or unique id prefix."""

    @abc.abstractmethod
    def network_delete(self, name: str) -> str:
        """NetworkDelete: only a user-defined network without containers; returns its name."""

    @abc.abstractmethod
    def network_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """NetworksPrune: every user-defined network without containers that `filters` (label=,
        label!=, until=) let go, {"NetworksDeleted": [names]}; and, mini's own, the default
        bridge's link and rules if no container is on it."""

    @abc.abstractmethod
    def network_connect(self, network: str, container_ref: str, aliases: Iterable[str] = (),
                        ip: str | None = None) -> None:
        """NetworkConnect: the container on one more network (eth1, ...), now if it has its
        network namespace (created, running), else at its next start."""

    @abc.abstractmethod
    def network_disconnect(self, network: str, container_ref: str, force: bool = False) -> None:
        """NetworkDisconnect: undo a NetworkConnect."""

    # --- system --------------------------------------------------------------------------------

    @abc.abstractmethod
    def system_version(self) -> dict[str, Any]:
        """SystemVersion (GET /version): the engine's version, API versions, OS and machine."""

    @abc.abstractmethod
    def system_info(self) -> dict[str, Any]:
        """SystemInfo (GET /info): containers and images counted, storage, cgroups, machine."""

    @abc.abstractmethod
    def system_df(self) -> dict[str, Any]:
        """SystemDataUsage (GET /system/df): LayersSize, Images (with SharedSize and
        Containers), Containers (with SizeRw), Volumes and BuildCache (none, in mini)."""

    @abc.abstractmethod
    def system_check(self) -> int:
        """mini's own: is this machine ready for containers (`mini doctor`)? Its exit status."""


def connect(warm_cgroups: bool = False) -> Backend:
    """The backend this process uses: the local one (chapter 09 adds a remote one, chosen by
    DOCKER_HOST / --host). `warm_cgroups`: a process will soon be moved into a container's
    cgroup (run, create, exec); the local backend starts paying the kernel's slow first cgroup
    write at once, while the pipeline's modules are imported (04, cgroup_upkeep.warm_up)."""
    if warm_cgroups:
        from mini_runtime import cgroup_upkeep

        cgroup_upkeep.warm_up()
    from mini_runtime.backend.local import LocalBackend

    return LocalBackend()
