"""Images entering the store (`load`, `import`, `commit`, the built-in image; `pull` in chapter
10): all of them or none.

The order is what makes "none" possible:

1. check everything that can be checked without storing anything: every name, every manifest,
   every config (read from the source, verified against its digest);
2. store the blobs, each verified against its descriptor while it streams in; a blob the store
   has must have the descriptor's size (an image whose config, so whose id, is stored already
   is not stored twice: its names go to that image);
3. unpack every layer (a layer that is no valid tar, or unpacks to another DiffID, fails here);
   a layer the store has unpacked already is not unpacked again, but unless a stored image
   describes its blob the same way (digest, media type, size, DiffID), the blob is read as
   its media type says and must decompress to the DiffID all the same;
4. name the images.

A failure at any step removes exactly what this ingest added (blobs, unpacked layer directories
and their short links, index entries) and nothing that was there before: a blob shared with an
image already in the store stays. The store's lock is held from step 2 to the end, so no other
`mini` sees a half-stored image, or stores one that this ingest would take away again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mini_runtime import paths
from mini_runtime.image import checked, reference
from mini_runtime.image.layout import MANIFEST_MEDIA_TYPE, sha256_digest
from mini_runtime.paths import atomic_write
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from mini_runtime.image.layout import Spooled
    from mini_runtime.image.store import Image, Store

    #: Opens a blob of the source by its descriptor (a dict with at least "digest").
    Opener = Callable[[dict[str, Any]], BinaryIO]


@named_tuple
class Pending:
    """An image to store: its manifest's bytes (kept as given: its digest is the image's
    manifest digest), the names it gets (none: dangling) and where its blobs come from."""

    names: list[str]
    manifest_bytes: bytes
    media_type: str | None
    open_blob: Opener
    what: str = "manifest"   # how error messages call this manifest
    spooled: tuple[Spooled, ...] = ()  # layer blobs written to the store already (`import`)


@named_tuple
class _Checked:
    pending: Pending
    names: list[str]
    manifest: checked.Manifest
    config_bytes: bytes
    config: dict[str, Any]


def read_document(source: BinaryIO, descriptor: checked.Descriptor, what: str) -> bytes:
    """A small blob (config, manifest, index) read into memory, bounded, and verified."""
    with source:
        data = source.read(checked.MAX_DOCUMENT + 1)
    if len(data) > checked.MAX_DOCUMENT:
        raise checked.Invalid(f"{what}: larger than {checked.MAX_DOCUMENT} bytes")
    if sha256_digest(data) != descriptor.digest or len(data) != descriptor.size:
        raise checked.Invalid(f"{what}: blob {descriptor.digest} ({descriptor.size} bytes) does not "
                              f"match its content ({sha256_digest(data)}, {len(data)} bytes)")
    return data


def _check_all(images: list[Pending]) -> list[_Checked]:
    """Each manifest checked once: an archive can name one image a thousand times, and its
    config (up to 8 MB) was read and parsed for each name (2.7 MB of gzip held 2.7 GB)."""
    done: dict[bytes, _Checked] = {}
    ready = []
    for pending in images:
        first = done.get(pending.manifest_bytes)
        if first is None:
            ready.append(done.setdefault(pending.manifest_bytes, _check(pending)))
        else:
            ready.append(first._replace(pending=pending, names=[reference.tag_name(n) for n in pending.names]))
    return ready


def _check(pending: Pending) -> _Checked:
    names = [reference.tag_name(n) for n in pending.names]
    manifest = checked.manifest(pending.manifest_bytes, pending.media_type, pending.what)
    what = f"config {manifest.config.digest[:19]}…"
    config_bytes = read_document(pending.open_blob(manifest.config.raw), manifest.config, what)
    config = checked.config(config_bytes, len(manifest.layers), what)
    return _Checked(pending, names, manifest, config_bytes, config)




class _Added:
    """What this ingest created, so that a failure can take exactly that away again."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.blobs: list[Path] = []
        self.index = (store.layout.root / "index.json").read_bytes()
        self.layers = self._layer_entries()

    def _layer_entries(self) -> set[Path]:
        root = self.store.layers_root
        found = set(root.iterdir()) if root.is_dir() else set()
        return found | (set((root / "l").iterdir()) if (root / "l").is_dir() else set())

    def put(self, descriptor: checked.Descriptor, store_it: Callable[[], object]) -> None:
        """Store a blob unless the store has it; one it has must have the descriptor's size (a
        manifest that lies about it would be written out as it is by `save`, and refused by
        every other loader: containerd checks the size of each blob it reads)."""
        path = self.store.layout.blob_path(descriptor.digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            store_it()
            self.blobs.append(path)
            return
        if size != descriptor.size:
            raise checked.Invalid(f"blob {descriptor.digest[:19]}… has {size} bytes, but its "
                                  f"descriptor says {descriptor.size}")

    def undo(self, chains: set[str]) -> None:
        """Remove what this ingest added: its blobs, the index as it was, and the layer
        directories and links (named by the first 20 hex digits of `chains`) of its own layers
        that were not there before."""
        atomic_write(self.store.layout.root / "index.json", self.index)
        for path in self.blobs:
            path.unlink(missing_ok=True)
        for entry in self._layer_entries() - self.layers:
            if entry.name[:20] in chains:
                if entry.is_symlink():
                    entry.unlink()
                else:
                    paths.remove_tree(entry)


def ingest_all(store: Store, images: list[Pending]) -> list[Image]:
    """Store every image of `images`, or none of them (see the module's docstring)."""
    from mini_runtime.image.store import NONE, Image

    if not images:
        raise checked.Invalid("no images to store")
    ready = _check_all(images)                                                        # 1
    with paths.locked(store.lock_path):
        store.layout.init()
        store.collect_garbage()     # what an earlier ingest, killed half-way, left
        added = _Added(store)
        stored: list[Image] = []
        kept: set[str] = set()      # the manifests of images stored already, reused
        vouched = _layer_descriptors(store)   # layers checked when the images stored had them
        try:
            for item in ready:                                                        # 2
                manifest = item.manifest
                same = store.find_by_id(manifest.config.digest)
                if same is not None:    # one image per id, as docker keeps: its names point at
                    stored.append(same)  # the manifest stored already, not at a second one
                    kept.add(same.manifest_digest)
                    continue
                added.put(manifest.config,
                          lambda: store.layout.put_blob(item.config_bytes, manifest.config.digest))
                for layer in manifest.layers:
                    added.put(layer, lambda: _stream(store, item.pending, layer))
                manifest_digest = sha256_digest(item.pending.manifest_bytes)
                size = len(item.pending.manifest_bytes)
                added.put(checked.Descriptor(MANIFEST_MEDIA_TYPE, manifest_digest, size, {}, {}),
                          lambda: store.layout.put_blob(item.pending.manifest_bytes))
                stored.append(Image(NONE, manifest_digest, manifest.config.digest, item.config,
                                    [layer.raw for layer in manifest.layers]))
            for image in stored:                                                      # 3
                _check_diff_ids(store, image, vouched)
                store.layer_dirs(image)
            result = []
            for item, image in zip(ready, stored):                                    # 4
                descriptor = store.descriptor(image) if image.manifest_digest in kept else {
                    "mediaType": item.manifest.media_type or item.pending.media_type or MANIFEST_MEDIA_TYPE,
                    "digest": image.manifest_digest, "size": len(item.pending.manifest_bytes)}
                for name in item.names or [None]:
                    store.set_name(name, descriptor)
                    result.append(image._replace(name=name or NONE))
        except BaseException:
            added.undo({c.removeprefix("sha256:")[:20] for image in stored for c in image.chain_ids})
            raise
    return result


def _layer_descriptors(store: Store) -> set[tuple[str, str, int, str]]:
    """(digest, media type, size, DiffID) of every layer of the stored images: checked when
    they were stored, so a new manifest that describes a layer the same way is right."""
    return {(layer["digest"], layer["mediaType"], layer["size"], diff_id)
            for image in store.stored() for layer, diff_id in zip(image.layers, image.diff_ids)}


def _check_diff_ids(store: Store, image: Image, vouched: set[tuple[str, str, int, str]]) -> None:
    """Each layer unpacked already (from a blob of another image, perhaps the same tar
    compressed another way) is not unpacked again, so unless a stored image describes it the
    same way (`vouched`), its blob is read here: what it decompresses to, read as its media
    type says, must have the config's DiffID. Otherwise a manifest could say "gzip" of a plain
    tar, or pair a blob with another layer's DiffID, and `save` would write it out so: an
    archive that no loader takes (mini's own included)."""
    import hashlib

    from mini_runtime.image.layers import MEDIA_TYPES, open_layer
    from mini_runtime.image.store import check_diff_id, layer_name

    for descriptor, diff_id, chain in zip(image.layers, image.diff_ids, image.chain_ids):
        if ((descriptor["digest"], descriptor["mediaType"], descriptor["size"], diff_id) in vouched
                or not (store.layers_root / chain.removeprefix("sha256:")).is_dir()):
            continue                                    # (checked, or unpacked and checked in layer_dirs)
        if MEDIA_TYPES[descriptor["mediaType"]] is None:
            got = descriptor["digest"]                  # a plain tar is its own DiffID
        else:
            digest = hashlib.sha256()
            with store.layout.open_blob(descriptor["digest"]) as blob:
                layer = open_layer(blob, descriptor["mediaType"], what=layer_name(descriptor))
                while chunk := layer.read(1 << 20):
                    digest.update(chunk)
            got = f"sha256:{digest.hexdigest()}"
        check_diff_id(descriptor, got, diff_id)


def _stream(store: Store, pending: Pending, layer: checked.Descriptor) -> None:
    """Store one layer blob: a spooled one (hashed as it was written) by renaming it."""
    spooled = next((s for s in pending.spooled if s.digest == layer.digest), None)
    if spooled is not None:
        store.layout.adopt(spooled)
        return
    with pending.open_blob(layer.raw) as source:
        store.layout.put_blob_stream(source, layer.digest, layer.size)
