"""The local image store: an OCI image layout plus a cache of unpacked layers.

    $MINI_ROOT/images/    an OCI image layout (oci-layout, index.json, blobs/sha256/...)
    $MINI_ROOT/rootfs/    one unpacked directory per layer stack, named by its ChainID

Chapters 01-04 run containers straight from the unpacked directory; chapter 05 puts a
copy-on-write overlay on top of it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

from mini_runtime import paths
from mini_runtime.errors import ImageNotFound
from mini_runtime.image import reference
from mini_runtime.image.layout import (CONFIG_MEDIA_TYPE, LAYER_TAR_MEDIA_TYPE,
                                       MANIFEST_MEDIA_TYPE, Layout, canonical_json,
                                       sha256_digest)

BUILTIN = "busybox:latest"


class Image(NamedTuple):
    name: str                 # familiar name with tag, e.g. "busybox:latest"
    manifest_digest: str
    config_digest: str        # the image ID
    config: dict[str, Any]
    layers: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return self.config_digest

    @property
    def size(self) -> int:
        return sum(layer["size"] for layer in self.layers)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])


def chain_id(diff_ids: list[str]) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))."""
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.state_root()
        self.layout = Layout(self.root / "images")
        self._lock = self.root / "images.lock"

    def get(self, name: str) -> Image:
        """Find an image by name; the built-in busybox is made the first time it is asked for."""
        ref = reference.parse(name)
        key = str(ref)
        if key == BUILTIN:
            self.ensure_builtin()
        descriptor = self.layout.find_ref(key) if self.layout.exists() else None
        if descriptor is None:
            raise ImageNotFound(f"Unable to find image '{key}' locally "
                                "(until chapter 10 adds pull, 'mini images' lists what you can run)")
        return self._load(key, descriptor)

    def list(self) -> list[Image]:
        self.ensure_builtin()
        return [self._load(name, d) for name, d in self.layout.refs()]

    def _load(self, name: str, descriptor: dict[str, Any]) -> Image:
        manifest = self.layout.read_json(descriptor["digest"])
        config_digest = manifest["config"]["digest"]
        return Image(name, descriptor["digest"], config_digest,
                     self.layout.read_json(config_digest), manifest["layers"])

    def ensure_builtin(self) -> None:
        """Build `busybox:latest` from the local busybox-static binary, once."""
        if self.layout.exists() and self.layout.find_ref(BUILTIN):
            return
        from mini_runtime.image import busybox  # only the first time: keeps `mini run` fast

        with paths.locked(self._lock):
            self.layout.init()
            if self.layout.find_ref(BUILTIN):
                return
            layer = busybox.build_layer()
            config = busybox.image_config(sha256_digest(layer), busybox.BUSYBOX.stat().st_mtime)
            self._add(BUILTIN, [layer], config)

    def add_image(self, name: str, layers: list[bytes], config: dict[str, Any]) -> Image:
        """Store an image made of uncompressed layer tars under `name` (tests build fixtures
        with it; chapter 05's `mini import` and `commit` grow from here)."""
        key = str(reference.parse(name))
        with paths.locked(self._lock):
            self.layout.init()
            self._add(key, layers, config)
        return self.get(key)

    def _add(self, name: str, layers: list[bytes], config: dict[str, Any]) -> None:
        layer_descriptors = [{"mediaType": LAYER_TAR_MEDIA_TYPE, "digest": self.layout.put_blob(layer),
                              "size": len(layer)} for layer in layers]
        config_bytes = canonical_json(config)
        manifest = canonical_json({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": self.layout.put_blob(config_bytes),
                       "size": len(config_bytes)},
            "layers": layer_descriptors,
        })
        self.layout.set_ref(name, {
            "mediaType": MANIFEST_MEDIA_TYPE, "digest": self.layout.put_blob(manifest),
            "size": len(manifest),
            "annotations": {"io.containerd.image.name": reference.parse(name).full},
        })

    def rootfs(self, image: Image) -> Path:
        """The image's files, unpacked once and shared (read them, don't write them)."""
        target = self.root / "rootfs" / chain_id(image.diff_ids).removeprefix("sha256:")
        if target.is_dir():
            return target
        import io
        import shutil
        import tempfile

        from mini_runtime.image.unpack import unpack

        with paths.locked(self.root / "rootfs.lock"):
            if target.is_dir():
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
            try:
                for layer in image.layers:
                    if layer["mediaType"] != LAYER_TAR_MEDIA_TYPE:
                        raise ValueError(f"layer type {layer['mediaType']} arrives in chapter 05")
                    unpack(io.BytesIO(self.layout.read_blob(layer["digest"])), tmp)
                tmp.chmod(0o755)
                tmp.rename(target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return target
