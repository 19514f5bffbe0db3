"""`mini save` and `mini load`: images as one tar file, in the two formats tools exchange.

- docker-archive (what `docker save` wrote up to Docker 24): `manifest.json` lists, per image,
  the path of its config and of each layer tar, and its names (`RepoTags`).
- OCI archive: a tar of an OCI image layout (`oci-layout`, `index.json`, `blobs/`).

`save` writes both at once, as Docker 25 and later do: one set of blobs, an `index.json` for OCI
tools and a `manifest.json` for older docker. `load` reads either.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable

from mini_runtime.image import checked
from mini_runtime.image import manifest as mf
from mini_runtime.image import reference
from mini_runtime.image.ingest import Pending, ingest_all, read_document
from mini_runtime.image.layout import (INDEX_MEDIA_TYPE, LAYER_TAR_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
                                       REF_NAME, canonical_json)
from mini_runtime.image.store import NONE, Image, Store
from mini_runtime.image.tarheaders import PATH_MAX, open_tar

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import IO, Any, BinaryIO

    from mini_runtime.image.ingest import Opener

_MAGIC = {b"\x1f\x8b": "+gzip", b"\x28\xb5\x2f\xfd": "+zstd"}
MAX_NESTED = 64  # indexes read to choose one image of a multi-platform index


# >>> save
def save(store: Store, wanted: list[str], out: BinaryIO) -> None:
    """One tar with every blob of the images once, an OCI index.json and docker's manifest.json."""
    images: dict[str, tuple[Image, list[str]]] = {}
    for text in wanted:
        image = store.get(text)
        names = images.setdefault(image.manifest_digest, (image, []))[1]
        if image.name != NONE and not store.find_by_id(text) and image.name not in names:
            names.append(image.name)                    # (`save a a`: one name, once)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes | None = None, digest: str = "") -> None:
            """A member: `data`, or the stored blob `digest`, streamed and checked."""
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if data is not None:
                info.size = len(data)
                return tar.addfile(info, io.BytesIO(data))
            with store.layout.open_checked(digest) as blob:
                info.size = os.fstat(blob.fileno()).st_size
                tar.addfile(info, blob)

        index: list[dict[str, Any]] = []
        docker: list[dict[str, Any]] = []
        written: set[str] = set()
        for image, names in images.values():
            blobs = [image.manifest_digest, image.id, *(layer["digest"] for layer in image.layers)]
            for digest in blobs:
                if digest not in written:
                    written.add(digest)
                    add("blobs/sha256/" + digest.removeprefix("sha256:"), digest=digest)
            descriptor = {"mediaType": MANIFEST_MEDIA_TYPE, "digest": image.manifest_digest,
                          "size": store.layout.blob_path(image.manifest_digest).stat().st_size}
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
    """Store every image of a docker-archive or OCI archive, or none of them (a bad blob, name
    or layer refuses the archive, and the store stays as it was); docker's `Loaded image:`
    lines. Whatever is wrong with the archive is one `invalid archive: ...` line."""
    with checked.reading("invalid archive"), _seekable(source) as raw:
        with _plain(raw) as spool:
            try:
                tar = open_tar(spool, "r:")
            except tarfile.ReadError:
                raise checked.Invalid("not a tar file (nor a gzip, bzip2, xz or zstd compressed "
                                      "one)") from None
            members = _Members(tar)
            if "index.json" in members.by_name:
                pending = _oci(members)
            elif "manifest.json" in members.by_name:
                pending = _docker(members)
            else:
                raise checked.Invalid("it has neither index.json (OCI) nor manifest.json (docker): "
                                      "not an image archive (a tar from save)")
            images = ingest_all(store, pending)
    return [f"Loaded image: {image.name}" if image.name != NONE else f"Loaded image ID: {image.id}"
            for image in images]


def _seekable(source: IO[bytes]) -> IO[bytes]:
    """The archive as a file to seek in: a regular file read where it is (`-i FILE`, `< FILE`),
    anything else (a pipe, a request body) copied into a temporary file first. Read in place, the
    file could change between the two reads of a layer (its digest, then its copy into the
    store): the copy is hashed again, so a changed layer is refused, never stored."""
    try:
        if stat.S_ISREG(os.fstat(source.fileno()).st_mode) and source.tell() == 0:
            return open(os.dup(source.fileno()), "rb")
    except (OSError, ValueError, io.UnsupportedOperation):
        pass                                        # (no fd: BytesIO; a closed or odd stream)
    raw = tempfile.TemporaryFile()
    try:
        shutil.copyfileobj(source, raw, 1 << 20)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    return raw


def _plain(spool: IO[bytes]) -> IO[bytes]:
    """The archive decompressed into a new temporary file if it is compressed (`docker save |
    gzip`, which docker load reads too): a compressed tar read out of order would be
    decompressed again for every member. An uncompressed archive: `spool`, reopened.

    Decompressed as a layer is, and never to more than layers.DEFAULT_LIMIT bytes: a gzip of a
    gzip of zeros is a few KB that would fill the disk. A larger archive can be decompressed
    by hand and loaded as a plain tar, which is read where it is."""
    from mini_runtime.image.layers import compression_of, open_tarball

    head = spool.read(6)
    spool.seek(0)
    if compression_of(head) is None:
        same = open(os.dup(spool.fileno()), "rb")
        same.seek(0)  # (the two share the offset, which spool's buffer hides)
        return same
    if compression_of(head) == "zstd" and importlib.util.find_spec("zstandard") is None:
        raise checked.Invalid("a zstd compressed archive needs python3-zstandard")
    plain = tempfile.TemporaryFile()
    try:
        shutil.copyfileobj(open_tarball(spool, what="the compressed archive"), plain, 1 << 20)
    except BaseException:
        plain.close()
        raise
    plain.seek(0)
    return plain


class _Members:
    """The archive's members by name (`./a` is `a`, as docker reads it), and their contents,
    following symlinks and hard links to other members of the archive only."""

    MAX_MEMBERS = 100_000
    MAX_LINKS = 8

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar, self.by_name = tar, {}
        self.documents: dict[str, bytes] = {}  # (one config may be named by every image)
        for member in tar:
            if len(self.by_name) >= self.MAX_MEMBERS:
                raise checked.Invalid(f"more than {self.MAX_MEMBERS} members")
            if member.issparse():   # (its holes would be read as zeros: any size, from a few bytes)
                raise checked.Invalid(f"{member.name!r:.120} is a sparse file, which no image archive "
                                      "has (save writes plain files)")
            if max(len(member.name), len(member.linkname)) > PATH_MAX:  # (each is kept: bounded)
                raise checked.Invalid(f"{member.name!r:.120}: a name longer than {PATH_MAX} bytes, which "
                                      "no file has (docker load fails to unpack it)")
            member.pax_headers = {}  # (applied already; any other record is up to 1 MiB a member)
            self.by_name[_normal(member.name)] = member  # a later member of the same name wins
        tar.members = []  # (the index above is all we need: don't keep the TarInfos twice)

    def open(self, name: str) -> IO[bytes]:
        """A member's contents (docker save stores a layer that two images share once, and a
        link to it)."""
        member = self.by_name.get(_normal(name))
        if member is None:
            raise checked.Invalid(f"it lacks {name!r:.120}")
        for _ in range(self.MAX_LINKS):
            if member.isreg():
                stream = self.tar.extractfile(member)
                if stream is not None:  # (always, for a regular file)
                    return stream
            if member.issym():
                target = _normal(posixpath.join(posixpath.dirname(member.name), member.linkname))
            elif member.islnk():
                target = _normal(member.linkname)
            else:
                raise checked.Invalid(f"{member.name!r:.120} is not a file")
            found = self.by_name.get(target)
            if found is None:
                raise checked.Invalid(f"{member.name!r:.120} links to {member.linkname!r:.120}, "
                                      "which the archive lacks")
            member = found
        raise checked.Invalid(f"{name!r:.120}: more than {self.MAX_LINKS} links in a row (a loop?)")

    def document(self, name: str) -> bytes:
        """A small member (JSON), read into memory once: at most MAX_DOCUMENT bytes."""
        if _normal(name) not in self.documents:
            with self.open(name) as stream:
                data = stream.read(checked.MAX_DOCUMENT + 1)
            if len(data) > checked.MAX_DOCUMENT:
                raise checked.Invalid(f"{name!r:.120} is larger than {checked.MAX_DOCUMENT} bytes")
            self.documents[_normal(name)] = data
        return self.documents[_normal(name)]

    def blob(self, digest: str) -> IO[bytes]:
        """A blob of an OCI archive by its digest (checked: never a path from the archive)."""
        return self.open("blobs/sha256/" + checked.digest(digest, "digest").removeprefix("sha256:"))


def _normal(name: str) -> str:
    return posixpath.normpath(name) if name else name


def _name(descriptor: checked.Descriptor, what: str) -> str | None:
    """An image's name in an index: our full "name:tag" ref name, or containerd's annotation
    (docker and skopeo put only the tag in the ref name, which names no image)."""
    for key in (REF_NAME, "io.containerd.image.name"):
        candidate = descriptor.annotations.get(key)
        if candidate and (":" in candidate or "/" in candidate):
            return checked.name(candidate, f"{what}: annotation {key}")
    return None


def _oci(members: _Members) -> list[Pending]:
    """One image per descriptor of index.json; a multi-platform index becomes this machine's."""
    index = checked.index(members.document("index.json"), "index.json")
    if not index.manifests:
        raise checked.Invalid("index.json lists no images")
    pending, manifests = [], {}   # (digest, size) -> bytes: read once, however many names it has
    for i, top in enumerate(index.manifests):
        what, chosen = f"index.json.manifests[{i}]", top
        if top.media_type in mf.INDEX_TYPES:
            fetch = _fetch_index(members, what)
            chosen = checked.descriptor(mf.select(fetch(top.digest), fetch), what)
        if (chosen.digest, chosen.size) not in manifests:
            manifests[chosen.digest, chosen.size] = read_document(members.blob(chosen.digest), chosen,
                                                                  f"manifest {chosen.digest[:19]}…")
        manifest_bytes = manifests[chosen.digest, chosen.size]
        name = _name(top, what)
        pending.append(Pending([name] if name else [], manifest_bytes, chosen.media_type,
                               lambda d: members.blob(d["digest"]), f"manifest {chosen.digest[:19]}…"))
    return pending


def _fetch_index(members: _Members, what: str) -> Callable[[str], dict[str, Any]]:
    """Reads nested indexes for platform selection, at most MAX_NESTED of them: an index that
    lists itself (or a chain of thousands) ends here, not in a RecursionError."""
    count = 0

    def fetch(digest: str) -> dict[str, Any]:
        nonlocal count
        count += 1
        if count > MAX_NESTED:
            raise checked.Invalid(f"{what}: more than {MAX_NESTED} nested indexes "
                                  "(an index that lists itself?)")
        with members.blob(digest) as stream:
            data = stream.read(checked.MAX_DOCUMENT + 1)
        if hashlib.sha256(data).hexdigest() != digest.removeprefix("sha256:"):
            raise checked.Invalid(f"index {digest[:19]}… does not match its digest")
        return checked.index(data, f"index {digest[:19]}…").raw
    return fetch


def _docker(members: _Members) -> list[Pending]:
    """A docker-archive has no manifest: make an OCI one from the config and the layer files."""
    entries = checked.docker_manifest(members.document("manifest.json"))
    if not entries:
        raise checked.Invalid("manifest.json lists no images")
    pending = []
    described: dict[str, dict[str, Any]] = {}  # path -> descriptor: images share layers (each
    for entry in entries:                      # one was read again for every image listing it)
        config_bytes = members.document(entry.config)
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        layers, paths = [], {}
        for path in entry.layers:
            if _normal(path) not in described:
                described[_normal(path)] = _describe(members.open(path))
            layers.append(described[_normal(path)])
            paths[layers[-1]["digest"]] = path
        manifest = canonical_json({"schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                                   "config": {"mediaType": mf.OCI_CONFIG, "digest": config_digest,
                                              "size": len(config_bytes)},
                                   "layers": layers})

        pending.append(Pending(entry.names, manifest, MANIFEST_MEDIA_TYPE,
                               _opener(members, config_digest, config_bytes, paths),
                               f"manifest.json ({entry.config!r:.80})"))
    return pending


def _describe(stream: IO[bytes]) -> dict[str, Any]:
    """A layer file's descriptor: its digest and size, hashed as it streams, and its media type
    from its first bytes (a docker-archive does not say whether a layer is compressed)."""
    digest, size = hashlib.sha256(), 0
    head = stream.read(4)
    digest.update(head)
    size += len(head)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    compression = next((c for magic, c in _MAGIC.items() if head.startswith(magic)), "")
    return {"mediaType": LAYER_TAR_MEDIA_TYPE + compression, "digest": "sha256:" + digest.hexdigest(),
            "size": size}


def _opener(members: _Members, config_digest: str, config_bytes: bytes, paths: dict[str, str]) -> Opener:
    def open_blob(descriptor: dict[str, Any]) -> IO[bytes]:
        if descriptor["digest"] == config_digest:
            return io.BytesIO(config_bytes)
        return members.open(paths[descriptor["digest"]])
    return open_blob
