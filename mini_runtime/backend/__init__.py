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
from typing import Any, BinaryIO, Iterator

from mini_runtime.config import ContainerConfig

__all__ = ["Backend", "ContainerConfig", "connect"]


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
        """ContainerStop: its StopSignal (SIGTERM), then SIGKILL after `timeout` s (10)."""

    @abc.abstractmethod
    def container_list(self, all: bool = False, limit: int | None = None,
                       filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """ContainerList: ContainerSummary dicts, newest first; filters status, name, id, ancestor."""

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
    def container_inspect(self, container_id: str) -> dict[str, Any]:
        """ContainerInspect."""

    @abc.abstractmethod
    def container_logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                       since: int | None = None, timestamps: bool = False) -> Iterator[tuple[str, bytes]]:
        """ContainerLogs: (stream, bytes) per entry, as `docker logs` writes them."""

    @abc.abstractmethod
    def container_delete(self, container_id: str, force: bool = False) -> None:
        """ContainerDelete."""

    @abc.abstractmethod
    def container_changes(self, container_id: str) -> list[dict[str, Any]]:
        """ContainerChanges: [{"Path": ..., "Kind": 0 modified | 1 added | 2 deleted}]."""

    @abc.abstractmethod
    def container_export(self, container_id: str, out: BinaryIO) -> None:
        """ContainerExport: its whole filesystem as a tar, written to `out`."""

    @abc.abstractmethod
    def image_commit(self, container_id: str, repository: str | None, *, author: str = "",
                     comment: str = "") -> dict[str, Any]:
        """ImageCommit (POST /commit): {"Id": ...}."""

    # --- images --------------------------------------------------------------------------------

    @abc.abstractmethod
    def image_list(self) -> list[dict[str, Any]]:
        """ImageList: ImageSummary dicts (Id, RepoTags, Created as Unix seconds, Size), in the
        store's order."""

    @abc.abstractmethod
    def image_tag(self, source: str, target: str) -> None:
        """ImageTag."""

    @abc.abstractmethod
    def image_delete(self, name: str, force: bool = False) -> list[dict[str, str]]:
        """ImageDelete: DeleteItem dicts, {"Untagged": name} or {"Deleted": id}."""

    @abc.abstractmethod
    def image_history(self, name: str) -> list[dict[str, Any]]:
        """ImageHistory: newest first; Id ("<missing>" below the image itself), Created (Unix
        seconds), CreatedBy, Tags, Size, Comment."""

    @abc.abstractmethod
    def image_import(self, source: BinaryIO, repository: str | None, *, message: str = "",
                     origin: str = "-") -> dict[str, Any]:
        """ImageCreate with fromSrc: a root filesystem tar becomes an image; {"Id": ...}."""

    @abc.abstractmethod
    def image_squash(self, source: str, target: str) -> dict[str, Any]:
        """mini image squash (exercise 05's extension): {"Id": ...} of the one-layer image."""
        raise NotImplementedError

    def image_save(self, names: list[str], out: BinaryIO) -> None:
        """ImageGetAll: the images as one tar archive, written to `out`."""

    @abc.abstractmethod
    def image_load(self, source: BinaryIO) -> list[dict[str, str]]:
        """ImageLoad: the progress stream, [{"stream": "Loaded image: ...\\n"}]."""

    # --- system --------------------------------------------------------------------------------

    @abc.abstractmethod
    def system_check(self) -> int:
        """mini's own: is this machine ready for containers (`mini doctor`)? Its exit status."""


def connect() -> Backend:
    """The backend this process uses: the local one (chapter 09 adds a remote one, chosen by
    DOCKER_HOST / --host)."""
    from mini_runtime.backend.local import LocalBackend

    return LocalBackend()
