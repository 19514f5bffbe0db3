"""The Engine API's verbs, done in this process: the runtime's pipeline, the container records
and the image store. No printing here: the CLI (or chapter 09's daemon) presents the results.

Each container has a monitor (monitor.py), started by fork+exec: it is the parent of the
container's init, so that any process (the daemon too) can wait for it, kill it and read its logs.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from mini_runtime import container, lifecycle, monitor, overlay, removal
from mini_runtime.backend import Attached, Backend
from mini_runtime.backend.networks import NetworkVerbs
from mini_runtime.backend.system import SystemVerbs
from mini_runtime.config import ContainerConfig
from mini_runtime.errors import ExecError, NotFound
from mini_runtime.units import ZERO_TIME, now_rfc3339

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:  # (the image store is imported where images are used: not on exec's path)
    from typing import Any, BinaryIO

    from mini_runtime.image.store import Image, Store

#: docker diff's kinds, as the Engine API numbers them.
CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}


class LocalBackend(NetworkVerbs, SystemVerbs, Backend):
    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._channels: dict[str, socket.socket] = {}   # to the monitors we started
        self._here: dict[str, Any] = {}                # foreground.Here: we are their monitor
        self._execs: dict[str, dict[str, Any]] = {}     # ExecInspect's answers, by exec id

    @property
    def store(self) -> Store:
        if self._store is None:
            from mini_runtime.image.store import Store

            self._store = Store()
        return self._store

    # --- the pipeline, through each container's monitor (chapter 06) --------------------------

    def container_create(self, config: ContainerConfig, stdio: bool = False) -> dict[str, Any]:
        """A monitor creates it (and is its parent). With `stdio` (a foreground run) this process
        is its monitor: its stdin is ours, its output comes to our stdout and stderr too."""
        container_id = container.new_id()
        if stdio:
            from mini_runtime import foreground  # (the pipeline: not on exec's, ps's ... path)

            self._here[container_id] = foreground.create_here(config, container_id)
            return {"Id": container_id, "Warnings": []}
        channel = lifecycle.spawn_monitor(container_id)
        monitor.send(channel, {"Config": config._asdict()})
        try:
            lifecycle.answer(monitor.receive(channel))
        except BaseException:
            channel.close()
            raise
        self._channels[container_id] = channel
        return {"Id": container_id, "Warnings": []}

    def container_start(self, container_id: str) -> None:
        if container_id in self._here:
            from mini_runtime import foreground

            foreground.start_here(self._here[container_id])
            return
        channel = self._channels.get(container_id)
        if channel is None:
            lifecycle.start_kept(container.find(container_id))
            return
        monitor.send(channel, {"op": "start"})
        try:
            lifecycle.answer(monitor.receive(channel))
        except BaseException:
            self._channels.pop(container_id).close()
            raise

    def container_wait(self, container_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Until it has ended; a foreground container's monitor is this process: it runs here.
        The monitor we started answers on its channel (a waiter since "start")."""
        if container_id in self._here:
            from mini_runtime import foreground

            return foreground.wait_here(self._here.pop(container_id))
        channel = self._channels.pop(container_id, None)
        if channel is not None and timeout is None:
            with channel:
                result = monitor.receive(channel)
            if result is not None and "StatusCode" in result:
                return result
        elif channel is not None:
            channel.close()
        return lifecycle.wait(container.find(container_id), timeout)

    def container_attach(self, container_id: str, stdin: bool = False, streams: tuple = ("stdout", "stderr")) -> Attached:
        directory = container.find(container_id)
        state = container.status(container.load(directory))
        unowned = state is container.Status.CREATED and not container.run_dir(directory.name).exists()
        if (state is container.Status.EXITED or unowned) and directory.name not in self._channels:
            self._channels[directory.name] = lifecycle.prepare_start(directory)
        return Attached(*lifecycle.attach(directory, stdin, streams))

    def container_resize(self, container_id: str, height: int, width: int) -> None:
        lifecycle.resize(container.find(container_id), height, width)

    def container_detach(self, container_id: str) -> None:
        """mini's own: we will not wait for it (run -d): the monitor carries on alone."""
        channel = self._channels.pop(container_id, None)
        if channel is not None:
            channel.close()

    def container_kill(self, container_id: str, signal: str | int = "KILL") -> None:
        lifecycle.kill(container_id, signal)

    def container_stop(self, container_id: str, timeout: int | None = None) -> None:
        lifecycle.stop(container.find(container_id), timeout)

    def container_list(self, all: bool = False, limit: int | None = None,
                       filters: dict[str, list[str]] | None = None, size: bool = False) -> list[dict[str, Any]]:
        container.sweep_stale()                     # a monitor that died: shown as docker would
        from mini_runtime import views  # (ps and inspect only: not on run's path)

        found = views.summaries(all, limit, filters, self.store.id_of)
        for summary in found if size else []:
            summary.update(views.sizes(container.find(summary["Id"]), self._image_size(summary["ImageID"])))
        return found

    def _image_size(self, image_id: str) -> int:
        image = self.store.find_by_id(image_id)
        return image.size if image else 0

    def container_pause(self, container_id: str) -> None:
        lifecycle.pause(container.find(container_id), True)

    def container_unpause(self, container_id: str) -> None:
        lifecycle.pause(container.find(container_id), False)

    def container_top(self, container_id: str, ps_args: str = "") -> dict[str, Any]:
        return lifecycle.top(container.find(container_id), ps_args)

    def container_rename(self, container_id: str, name: str) -> None:
        lifecycle.rename(container.find(container_id), name)

    def container_update(self, container_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        from mini_runtime import update  # (update only: not on run's path)

        return update.update(container_id, changes)

    def container_inspect(self, container_id: str, size: bool = False) -> dict[str, Any]:
        container.sweep_stale()
        from mini_runtime import views

        directory = container.find(container_id)
        image = container.load(directory).get("Image", "") if size else ""
        return views.inspect(directory, views.sizes(directory, self._image_size(image)) if size else None)

    def container_logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                       since: int | None = None, until: int | None = None, timestamps: bool = False,
                       details: bool = False) -> Iterator[tuple[str, bytes]]:
        """ContainerLogs: (stream, bytes as docker logs writes them) for each entry; with
        `follow`, until the container has ended. `since`, `until`: nanoseconds since the epoch.
        `details`: the log's extra attributes first (json-file's labels and env: none here)."""
        from mini_runtime import logs

        entries = lifecycle.logs_of(container.find(container_id), follow=follow, tail=tail,
                                    since=since, until=until)
        for entry in entries:
            yield entry.stream, b" " * details + logs.render(entry, timestamps)

    def container_stats(self, container_id: str) -> Iterator[dict[str, Any]]:
        from mini_runtime import stats

        return stats.stream(container.find(container_id))

    def exec_create(self, container_id: str, config: dict[str, Any]) -> dict[str, Any]:
        directory = container.find(container_id)
        lifecycle.exec_check(directory, container_id)
        exec_id = container.new_id()
        self._execs[exec_id] = {"ID": exec_id, "ContainerID": directory.name, "Running": False,
                                "ExitCode": None, "Pid": 0, "Text": container_id,
                                "ProcessConfig": dict(config)}
        return {"Id": exec_id}

    def exec_start(self, exec_id: str, console: Callable[[int], None] | None = None) -> None:
        """In this process: the exec'd command's helper is our child (nsenter.py)."""
        found = self._exec(exec_id)
        found["Running"] = True
        try:
            code = lifecycle.exec_in(container.containers_dir() / found["ContainerID"], found["Text"],
                                     found["ProcessConfig"], console)
        except ExecError as e:
            found["ExitCode"] = e.exit_code
            raise
        finally:
            found["Running"] = False
        found["ExitCode"] = code

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return {k: v for k, v in self._exec(exec_id).items() if k != "Text"}

    def _exec(self, exec_id: str) -> dict[str, Any]:
        if exec_id not in self._execs:
            raise NotFound(f"No such exec instance: {exec_id}")
        return self._execs[exec_id]

    # --- kept containers -----------------------------------------------------------------------

    def container_delete(self, container_id: str, force: bool = False) -> None:
        removal.remove(container.find(container_id), container_id, force)

    def container_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        return removal.prune(filters or {})

    def _kept(self, text: str) -> tuple[Path, dict[str, Any], overlay.Overlay]:
        """A container, running or not, with the files diff, export and commit read: its upper
        dir (which a running container may be changing meanwhile, as with docker)."""
        directory = container.find(text)
        record = container.load(directory)
        if not (directory / "upper").is_dir():
            raise NotFound(f"container {text} has no files to read (it was created before chapter 05)")
        layout = overlay.of(directory, self.store.layers_root, record["GraphDriver"]["Data"]["LowerDir"])
        return directory, record, layout

    def container_changes(self, container_id: str) -> list[dict[str, Any]]:
        from mini_runtime.image.pack import changes

        _, _, layout = self._kept(container_id)
        return [{"Path": path, "Kind": CHANGE_KINDS[kind]}
                for kind, path in changes(layout.upper, layout.lower_dirs)]

    def container_export(self, container_id: str, out: BinaryIO) -> None:
        """The container's whole filesystem as it saw it: the union, read-only, for us alone."""
        from mini_runtime.image.pack import write_tar

        _, _, layout = self._kept(container_id)
        with overlay.view(layout) as merged:
            write_tar(out, merged)

    # --- cp: the archive verbs (cp.py), on the container's files, running or not ---------------
    # (cp imported here: tarfile, shutil and the layer code stay off run's path)

    def container_stat_path(self, container_id: str, path: str) -> dict[str, Any]:
        from mini_runtime import cp

        return cp.stat_in(self._kept(container_id), container_id, path)

    def container_archive(self, container_id: str, path: str) -> tuple[dict[str, Any], BinaryIO]:
        from mini_runtime import cp

        return cp.archive_of(self._kept(container_id), container_id, path)

    def container_extract(self, container_id: str, path: str, source: BinaryIO, copy_uid_gid: bool = False) -> None:
        from mini_runtime import cp

        cp.extract_into(self._kept(container_id), container_id, path, source, copy_uid_gid)

    # >>> commit
    def image_commit(self, container_id: str, repository: str | None, *, author: str = "",
                     comment: str = "", pause: bool = True, changes: list[str] = ()) -> dict[str, Any]:
        """The upper dir becomes one more layer on top of the image's: deletions as whiteouts. A
        running container is paused meanwhile (unless `pause` is False), so that the layer is
        one moment of its files, not a mix of several. The config is the container's (its
        command, env, workdir...), with `changes` (Dockerfile instructions) applied."""
        from mini_runtime.image import changes as dockerfile
        from mini_runtime.image.pack import write_tar

        directory, record, layout = self._kept(container_id)
        base: Image = self.store.get(record["Image"])
        settings = dockerfile.committed(base.config.get("config") or {}, record.get("Config") or {}, changes)
        paused = pause and container.status(record) is container.Status.RUNNING
        if paused:
            lifecycle.pause(directory, True)
        try:   # spooled into the store, never held in memory: a container's files can be any size
            layer = self.store.layout.spool_written(lambda out: write_tar(out, layout.upper, upper=True))
        finally:
            if paused:
                lifecycle.pause(directory, False)
        config = dict(base.config, created=now_rfc3339(), author=author or base.config.get("author", ""),
                      config=settings)
        config["rootfs"] = {"type": "layers", "diff_ids": [*base.diff_ids, layer.digest]}
        command = " ".join((record.get("Config") or {}).get("Cmd") or [])  # docker's choice: not the entrypoint
        config["history"] = [*(base.config.get("history") or []),
                             {"created": config["created"], "created_by": command, "author": author,
                              "comment": comment}]
        config["container"] = record["Id"]
        try:
            return {"Id": self.store.add_image(repository, [layer], config, base=base).id}
        finally:
            self.store.layout.discard(layer)     # (adopted as the blob, or not needed)
    # <<< commit

    # --- images --------------------------------------------------------------------------------

    def image_list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        from mini_runtime.image import listing

        return listing.summaries(self.store, filters)

    def image_inspect(self, name: str) -> dict[str, Any]:
        image = self.store.get(name)
        config = image.config
        return {"Id": image.id, "RepoTags": self.store.names(image), "RepoDigests": [],
                "Parent": "", "Comment": config.get("comment", ""),
                "Created": config.get("created") or ZERO_TIME, "Container": "", "ContainerConfig": {},
                "DockerVersion": "", "Author": config.get("author", ""),
                "Config": config.get("config") or {}, "Architecture": config.get("architecture", ""),
                "Os": config.get("os", ""), "Size": image.size, "VirtualSize": image.size,
                "GraphDriver": {"Data": None, "Name": "overlay"},
                "RootFS": {"Type": "layers", "Layers": image.diff_ids},
                "Metadata": {"LastTagTime": ZERO_TIME}}

    def image_tag(self, source: str, target: str) -> None:
        self.store.tag(source, target)

    def image_delete(self, name: str, force: bool = False) -> list[dict[str, str]]:
        in_use = {record["Image"] for record in container.records()}  # kept containers' images
        items = []
        for line in self.store.remove(name, in_use, force=force):
            kind, _, value = line.partition(": ")
            items.append({kind: value})
        return items

    def image_prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        from mini_runtime.image import prune
        return prune.prune(self.store, {record["Image"] for record in container.records()}, filters or {})

    def image_history(self, name: str) -> list[dict[str, Any]]:
        from mini_runtime.image import listing

        return listing.history(self.store, name)

    def image_import(self, source: BinaryIO, repository: str | None, *, message: str = "",
                     origin: str = "-", changes: list[str] = ()) -> dict[str, Any]:
        """A root filesystem tarball (plain, gzip, bzip2, xz, zstd) becomes a one-layer image, no
        command unless `changes` give one; they and the name are checked before any input is read."""
        from mini_runtime.image import busybox, reference
        from mini_runtime.image import changes as dockerfile
        from mini_runtime.image.layers import open_tarball

        settings = dockerfile.apply({}, changes) if changes else {}
        if repository:
            reference.tag_name(repository)
        layer = self.store.layout.spool(open_tarball(source))   # DiffID: the digest of the tar
        try:
            stamp = now_rfc3339()
            config = {"architecture": busybox.go_arch(), "os": "linux", "created": stamp, "config": settings,
                      "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
                      "history": [{"created": stamp, "created_by": "", "comment": message or f"Imported from {origin}"}]}
            return {"Id": self.store.add_image(repository, [layer], config).id}
        finally:
            self.store.layout.discard(layer)     # (adopted as the blob, or not needed)

    def image_squash(self, source: str, target: str) -> dict[str, Any]:
        """SOURCE's files, whiteouts and opaque directories applied, as TARGET's one layer
        (exercise 05's hook makes the layer); its config is SOURCE's, its history one entry."""
        from mini_runtime.image.layout import sha256_digest

        image = self.store.get(source)
        layer = overlay.squash_layer(self.store.layers_root, self.store.layer_dirs(image))
        config = {**image.config, "created": now_rfc3339(),
                  "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
                  "history": [{"created": now_rfc3339(), "created_by": f"mini image squash {source}",
                               "comment": f"{len(image.layers)} layers squashed into one"}]}
        return {"Id": self.store.add_image(target, [layer], config).id}

    def image_save(self, names: list[str], out: BinaryIO) -> None:
        from mini_runtime.image import archive

        archive.save(self.store, names, out)

    def image_load(self, source: BinaryIO) -> list[dict[str, str]]:
        from mini_runtime.image import archive

        return [{"stream": line + "\n"} for line in archive.load(self.store, source)]
