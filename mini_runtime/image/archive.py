"""`mini save` and `mini load`: images as one tar file, in the two formats tools exchange.

- docker-archive (what `docker save` wrote up to Docker 24): `manifest.json` lists, per image,
  the path of its config and of each layer tar, and its names (`RepoTags`).
- OCI archive: a tar of an OCI image layout (`oci-layout`, `index.json`, `blobs/`).

`save` writes both at once, as Docker 25 and later do: one set of blobs, an `index.json` for OCI
tools and a `manifest.json` for older docker. `load` reads either.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from typing import IO, Any, BinaryIO

from mini_runtime.errors import MiniError
from mini_runtime.image import manifest as mf
from mini_runtime.image import reference
from mini_runtime.image.layout import (INDEX_MEDIA_TYPE, LAYER_TAR_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
                                       REF_NAME, canonical_json)
from mini_runtime.image.store import NONE, Image, Store

_MAGIC = {b"\x1f\x8b": "+gzip", b"\x28\xb5\x2f\xfd": "+zstd"}


# >>> save
def save(store: Store, wanted: list[str], out: BinaryIO) -> None:
    """One tar with every blob of the images once, an OCI index.json and docker's manifest.json."""
    images: dict[str, tuple[Image, list[str]]] = {}
    for text in wanted:
        image = store.get(text)
        names = images.setdefault(image.manifest_digest, (image, []))[1]
        if image.name != NONE and not store.find_by_id(text):
            names.append(image.name)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

        index: list[dict[str, Any]] = []
        docker: list[dict[str, Any]] = []
        written: set[str] = set()
        for image, names in images.values():
            blobs = [image.manifest_digest, image.id, *(layer["digest"] for layer in image.layers)]
            for digest in blobs:
                if digest not in written:
                    written.add(digest)
                    add("blobs/sha256/" + digest.removeprefix("sha256:"), store.layout.read_blob(digest))
            descriptor = {"mediaType": MANIFEST_MEDIA_TYPE, "digest": image.manifest_digest,
                          "size": len(store.layout.read_blob(image.manifest_digest))}
            index += [dict(descriptor, annotations={REF_NAME: n, "io.containerd.image.name":
                                                    reference.parse(n).full}) for n in names] or [descriptor]
            docker.append({"Config": "blobs/sha256/" + image.id.removeprefix("sha256:"), "RepoTags": names,
                           "Layers": ["blobs/sha256/" + layer["digest"].removeprefix("sha256:")
                                      for layer in image.layers]})
        add("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        add("index.json", canonical_json({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": index}))
        add("manifest.json", json.dumps(docker).encode())
# <<< save


def load(store: Store, source: IO[bytes]) -> list[str]:
    """Store every image of a docker-archive or OCI archive; docker's `Loaded image:` lines."""
    with tempfile.TemporaryFile() as spool:  # a tar on a pipe cannot seek: keep a copy
        shutil.copyfileobj(source, spool)
        spool.seek(0)
        try:
            tar = tarfile.open(fileobj=spool, mode="r:*")
        except tarfile.TarError as e:
            raise MiniError(f"not an image archive (a tar from save): {e}") from None
        with tar:
            names = set(tar.getnames())
            if "index.json" in names:
                return _load_oci(store, tar)
            if "manifest.json" in names:
                return _load_docker(store, tar)
        raise MiniError("not an image archive: it has neither index.json (OCI) nor manifest.json (docker)")


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        member = tar.getmember(name.lstrip("./") if name.startswith("./") else name)
    except KeyError:
        raise MiniError(f"the archive lacks {name}") from None
    if not (member.isreg() or member.issym() or member.islnk()):
        raise MiniError(f"{name} in the archive is not a file")
    try:  # docker save stores a layer that two images share once, and a link to it
        stream = tar.extractfile(member)  # (links are resolved to members of the archive only)
    except KeyError:
        stream = None
    if stream is None:
        raise MiniError(f"{name} in the archive links to {member.linkname!r}, which the archive lacks")
    return stream


def _blob(tar: tarfile.TarFile, digest: str) -> IO[bytes]:
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256" or len(encoded) != 64 or not all(c in "0123456789abcdef" for c in encoded):
        raise MiniError(f"not a sha256 digest: {digest!r}")  # never a path from the archive unchecked
    return _member(tar, f"blobs/sha256/{encoded}")


def _name(descriptor: dict[str, Any]) -> str | None:
    """An image's name in an index: our full "name:tag" ref name, or containerd's annotation
    (docker and skopeo put only the tag in the ref name)."""
    annotations = descriptor.get("annotations", {})
    for candidate in (annotations.get(REF_NAME), annotations.get("io.containerd.image.name")):
        if candidate and (":" in candidate or "/" in candidate):
            try:
                return str(reference.parse(candidate))
            except MiniError:
                continue
    return None


def _load_oci(store: Store, tar: tarfile.TarFile) -> list[str]:
    index = json.load(_member(tar, "index.json"))
    fetch = lambda digest: json.load(_blob(tar, digest))  # noqa: E731
    lines = []
    for descriptor in index.get("manifests", []):
        chosen = descriptor
        if mf.kind({}, descriptor.get("mediaType")) == "index":
            chosen = mf.select(fetch(descriptor["digest"]), fetch)
        manifest_bytes = _blob(tar, chosen["digest"]).read()
        if "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() != chosen["digest"]:
            raise MiniError(f"manifest {chosen['digest']} does not match its digest")
        name = _name(descriptor)
        image = store.ingest(name, manifest_bytes, chosen.get("mediaType"), lambda d: _blob(tar, d["digest"]))
        lines.append(f"Loaded image: {name}" if name else f"Loaded image ID: {image.id}")
    return lines


def _load_docker(store: Store, tar: tarfile.TarFile) -> list[str]:
    """A docker-archive has no manifest: make an OCI one from the config and the layer files."""
    lines = []
    for entry in json.load(_member(tar, "manifest.json")):
        config_bytes = _member(tar, entry["Config"]).read()
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        layers, paths = [], {}
        for path in entry["Layers"]:
            stream, digest, size = _member(tar, path), hashlib.sha256(), 0
            head = stream.read(4)
            digest.update(head)
            size += len(head)
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            compression = next((c for magic, c in _MAGIC.items() if head.startswith(magic)), "")
            layers.append({"mediaType": LAYER_TAR_MEDIA_TYPE + compression,
                           "digest": "sha256:" + digest.hexdigest(), "size": size})
            paths[layers[-1]["digest"]] = path
        manifest = canonical_json({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                                   "config": {"mediaType": mf.OCI_CONFIG, "digest": config_digest,
                                              "size": len(config_bytes)},
                                   "layers": layers})
        def open_blob(d: dict[str, Any]) -> IO[bytes]:
            return io.BytesIO(config_bytes) if d["digest"] == config_digest else _member(tar, paths[d["digest"]])
        tags = entry.get("RepoTags") or [None]
        for tag in tags:
            image = store.ingest(tag, manifest, MANIFEST_MEDIA_TYPE, open_blob)
            lines.append(f"Loaded image: {image.name}" if tag else f"Loaded image ID: {image.id}")
    return lines
