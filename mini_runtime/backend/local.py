"""The Engine API's verbs, done in this process: the runtime's pipeline, the container records
and the image store. No printing here: the CLI (or chapter 09's daemon) presents the results.

A container created here is this process's child until it ends: `container_create`,
`container_start` and `container_wait` must come from the same process (chapter 06 gives each
container a monitor, so that any process, the daemon too, can start and wait for it).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, BinaryIO

from mini_runtime import container, overlay, process, runtime
from mini_runtime.backend import Backend
from mini_runtime.config import ContainerConfig
from mini_runtime.errors import Conflict, NotFound
from mini_runtime.image.store import NONE, Image, Store
from mini_runtime.units import now_rfc3339, parse_rfc3339

#: docker diff's kinds, as the Engine API numbers them.
CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}


class LocalBackend(Backend):
    def __init__(self, store: Store | None = None) -> None:
        self._store = store
        self._created: dict[str, runtime.Created] = {}
        self._signals: dict[str, contextlib.ExitStack] = {}

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store()
        return self._store

    # --- the pipeline --------------------------------------------------------------------------

    def container_create(self, config: ContainerConfig) -> dict[str, Any]:
        created = runtime.create(config, self.store)
        self._created[created.id] = created
        return {"Id": created.id, "Warnings": []}

    def container_start(self, container_id: str) -> None:
        created = self._handle(container_id)
        forwarding = contextlib.ExitStack()  # ctrl-C and kill reach the container until it ends
        forwarding.enter_context(process.forward_signals(created.child.pid))
        try:
            runtime.start(created)
        except BaseException:
            forwarding.close()
            runtime.cleanup(self._created.pop(container_id), None)
            raise
        self._signals[container_id] = forwarding

    def container_wait(self, container_id: str) -> dict[str, Any]:
        created = self._handle(container_id)
        exited = None
        try:
            with self._signals.pop(container_id, contextlib.ExitStack()):
                exited = runtime.wait(created)
        except BaseException:
            runtime.kill_and_reap(created.child.pid)
            raise
        finally:
            warning = runtime.cleanup(self._created.pop(container_id), exited)
        error = {"Message": warning} if warning else None  # the container ended; cleanup did not
        return {"StatusCode": exited.code, "Error": error, "OOMKilled": exited.oom}

    def _handle(self, container_id: str) -> runtime.Created:
        if container_id not in self._created:
            raise NotFound(f"No such container: {container_id} (not created by this process; "
                           "chapter 06 brings start and wait from anywhere)")
        return self._created[container_id]

    # --- kept containers -----------------------------------------------------------------------

    def container_delete(self, container_id: str, force: bool = False) -> None:
        directory = container.find(container_id)
        if not container.status(container.load(directory)).can_remove:
            raise Conflict(f"cannot remove container {container_id}: it is running (stop it first)")
        container.remove(directory)

    def _kept(self, text: str) -> tuple[Path, dict[str, Any], overlay.Overlay]:
        """A container that has ended, with the files diff, export and commit read."""
        directory = container.find(text)
        record = container.load(directory)
        if container.status(record).has_process:
            raise Conflict(f"container {text} is running: this works on a container that has exited "
                           "(chapter 06 brings detached containers and pause)")
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

    # >>> commit
    def image_commit(self, container_id: str, repository: str | None, *, author: str = "",
                     comment: str = "") -> dict[str, Any]:
        """The upper dir becomes one more layer on top of the image's: deletions as whiteouts."""
        from mini_runtime.image.layout import sha256_digest
        from mini_runtime.image.pack import write_tar

        directory, record, layout = self._kept(container_id)
        base: Image = self.store.get(record["Image"])
        buffer = io.BytesIO()
        write_tar(buffer, layout.upper, upper=True)
        layer = buffer.getvalue()
        config = dict(base.config, created=now_rfc3339(), author=author or base.config.get("author", ""))
        config["rootfs"] = {"type": "layers", "diff_ids": [*base.diff_ids, sha256_digest(layer)]}
        command = " ".join([record.get("Path", ""), *record.get("Args", [])])
        config["history"] = [*(base.config.get("history") or []),
                             {"created": config["created"], "created_by": command, "author": author,
                              "comment": comment}]
        config["container"] = record["Id"]
        return {"Id": self.store.add_image(repository, [layer], config, base=base).id}
    # <<< commit

    # --- images --------------------------------------------------------------------------------

    def image_list(self) -> list[dict[str, Any]]:
        summaries: dict[str, dict[str, Any]] = {}
        for image in self.store.list():
            summary = summaries.setdefault(image.id, {
                "Id": image.id, "ParentId": "", "RepoTags": [], "RepoDigests": [],
                "Created": int(parse_rfc3339(image.config.get("created") or "") or 0),
                "Size": image.size, "SharedSize": -1, "Labels": {}, "Containers": -1})
            if image.name != NONE:
                summary["RepoTags"].append(image.name)
        return list(summaries.values())

    def image_tag(self, source: str, target: str) -> None:
        self.store.tag(source, target)

    def image_delete(self, name: str, force: bool = False) -> list[dict[str, str]]:
        in_use = {record["Image"] for record in container.records()}  # kept containers' images
        items = []
        for line in self.store.remove(name, in_use, force=force):
            kind, _, value = line.partition(": ")
            items.append({kind: value})
        return items

    def image_history(self, name: str) -> list[dict[str, Any]]:
        image = self.store.get(name)
        entries = image.config.get("history") or [{"created": image.config.get("created"), "created_by": ""}]
        sizes = iter(layer["size"] for layer in image.layers)
        items = []
        for entry in entries:  # oldest first: the sizes pair with the entries that made a layer
            items.append({"Id": "<missing>", "Created": int(parse_rfc3339(entry.get("created") or "") or 0),
                          "CreatedBy": entry.get("created_by", ""), "Tags": None,
                          "Size": 0 if entry.get("empty_layer") else next(sizes, 0),
                          "Comment": entry.get("comment", "")})
        items.reverse()
        items[0].update(Id=image.id, Tags=self.store.names(image) or None)
        return items

    def image_import(self, source: BinaryIO, repository: str | None, *, message: str = "",
                     origin: str = "-") -> dict[str, Any]:
        """A root filesystem tarball (plain or gzip) becomes a one-layer image with no command."""
        from mini_runtime.image import busybox
        from mini_runtime.image.layers import open_layer
        from mini_runtime.image.layout import LAYER_TAR_MEDIA_TYPE, sha256_digest

        data = source.read()
        gzipped = data[:2] == b"\x1f\x8b"  # decompressed by open_layer: within its size limit
        layer = open_layer(io.BytesIO(data), LAYER_TAR_MEDIA_TYPE + ("+gzip" if gzipped else "")).read()
        stamp = now_rfc3339()
        config = {"architecture": busybox.go_arch(), "os": "linux", "created": stamp, "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
                  "history": [{"created": stamp, "created_by": "",
                               "comment": message or f"Imported from {origin}"}]}
        return {"Id": self.store.add_image(repository, [layer], config).id}

    def image_save(self, names: list[str], out: BinaryIO) -> None:
        from mini_runtime.image import archive

        archive.save(self.store, names, out)

    def image_load(self, source: BinaryIO) -> list[dict[str, str]]:
        from mini_runtime.image import archive

        return [{"stream": line + "\n"} for line in archive.load(self.store, source)]

    # --- system --------------------------------------------------------------------------------

    def system_check(self) -> int:
        from mini_runtime import doctor

        return doctor.main()


