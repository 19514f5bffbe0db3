"""The local image store: an OCI image layout, plus each layer unpacked once.

    $MINI_ROOT/images/                 an OCI image layout (oci-layout, index.json, blobs/sha256/...)
    $MINI_ROOT/layers/<chain id>/diff  one layer's files, as an overlayfs lower directory
    $MINI_ROOT/layers/l/<short>        a short symlink to it (many layers fit in one mount call)
    $MINI_ROOT/rootfs/<chain id>/      all of an image's layers flattened into one tree: only for
                                       teaching and benchmarks (containers use overlay, chapter 05)

Names are the `org.opencontainers.image.ref.name` annotation of a manifest's descriptor in
`index.json` ("busybox:latest"); a manifest that has lost its last name stays as a "dangling"
image (`<none>`) until `rmi` removes it, as in docker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mini_runtime import paths
from mini_runtime.errors import Conflict, ImageNotFound, InvalidReference, MiniError
from mini_runtime.image import reference
from mini_runtime.image.layout import (CONFIG_MEDIA_TYPE, LAYER_TAR_MEDIA_TYPE,
                                       MANIFEST_MEDIA_TYPE, REF_NAME, Layout, Spooled,
                                       canonical_json, sha256_digest)
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

BUILTIN = "busybox:latest"
NONE = "<none>:<none>"


@named_tuple
class Image:
    name: str                 # familiar name with tag, e.g. "busybox:latest", or NONE
    manifest_digest: str
    config_digest: str        # the image ID
    config: dict[str, Any]
    layers: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return self.config_digest

    @property
    def short_id(self) -> str:
        return self.config_digest.removeprefix("sha256:")[:12]

    @property
    def size(self) -> int:
        return sum(layer["size"] for layer in self.layers)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config["rootfs"]["diff_ids"])

    @property
    def chain_ids(self) -> list[str]:
        """The chain id of each layer with all those beneath it: the key of its unpacked dir."""
        return [chain_id(self.diff_ids[:i + 1]) for i in range(len(self.diff_ids))]


# >>> chain-id
def chain_id(diff_ids: list[str]) -> str:
    """ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))."""
    chain = diff_ids[0]
    if len(diff_ids) > 1:
        import hashlib  # (2 ms of imports: a one-layer image, as busybox, never needs it)
    for diff_id in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain
# <<< chain-id


class Store:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.state_root()
        self.layout = Layout(self.root / "images")
        self.layers_root = self.root / "layers"
        self.lock_path = self.root / "images.lock"

    # --- finding images ------------------------------------------------------------------

    def get(self, name: str, build: bool = True) -> Image:
        """An image by name ("busybox", "me/app:v1") or by id ("sha256:…", 12+ hex digits, or a
        shorter unique prefix that is no image's name). The built-in busybox is made when missing,
        unless `build` is false."""
        by_id = self.find_by_id(name)
        if by_id is not None:
            return by_id
        key = str(reference.parse(name))
        if key == BUILTIN and build:
            self.ensure_builtin()
        descriptor = self.layout.find_ref(key) if self.layout.exists() else None
        if descriptor is None:
            by_prefix = self.find_by_id(name, shortest=1)   # docker: the name first, then any
            if by_prefix is not None:                       # unique prefix of an id ("6464")
                return by_prefix
            raise ImageNotFound(key)
        return self._load(key, descriptor)

    def id_of(self, name: str) -> str | None:
        """The id of the image `name` names now, None if it names none."""
        try:
            return self.get(name, build=False).id
        except MiniError:
            return None

    def find_by_id(self, text: str, shortest: int = 12) -> Image | None:
        """The image whose id starts with `text` (hex, `sha256:` or not, at least `shortest`
        digits), None if none does; an error if several do."""
        hexpart = text.removeprefix("sha256:")
        if not (shortest <= len(hexpart) <= 64 and all(c in "0123456789abcdef" for c in hexpart)):
            return None
        matches = {i.id: i for i in (self.stored() if self.layout.exists() else []) if i.id.removeprefix("sha256:").startswith(hexpart)}
        if len(matches) > 1:
            raise MiniError(f"ambiguous image id {text!r}: it starts {len(matches)} image ids")
        return next(iter(matches.values()), None)

    def _by_prefix(self, text: str) -> Image | None:
        """The image whose id starts with a short `text`, when no image has it as its name."""
        try:
            named = self.layout.exists() and self.layout.find_ref(str(reference.parse(text)))
        except InvalidReference:
            return None
        return None if named else self.find_by_id(text, shortest=1)

    def list(self) -> list[Image]:
        """Every name, and every dangling image, in index order."""
        self.ensure_builtin()
        return self.stored()

    def stored(self) -> list[Image]:
        """The images as stored, the built-in one only if made already (for callers that hold
        the store's lock, which making it would take again)."""
        from mini_runtime.image import manifest as mf

        return [self._load(d.get("annotations", {}).get(REF_NAME, NONE), d)
                for d in self.layout.index().get("manifests", []) if d.get("mediaType") in mf.MANIFEST_TYPES]

    def _load(self, name: str, descriptor: dict[str, Any]) -> Image:
        manifest = self.layout.read_json(descriptor["digest"])
        config_digest = manifest["config"]["digest"]
        return Image(name, descriptor["digest"], config_digest,
                     self.layout.read_json(config_digest), manifest["layers"])

    def names(self, image: Image) -> list[str]:
        return [n for n, d in self.layout.refs() if d["digest"] == image.manifest_digest]

    # --- adding images -------------------------------------------------------------------

    def ensure_builtin(self) -> None:
        """Build `busybox:latest` from the local busybox-static binary, once."""
        if self.layout.exists() and self.layout.find_ref(BUILTIN):
            return
        from mini_runtime.image import busybox  # only the first time: keeps `mini run` fast

        layer = busybox.build_layer()
        self.add_image(BUILTIN, [layer], busybox.image_config(sha256_digest(layer), busybox.BUSYBOX.stat().st_mtime))

    def add_image(self, name: str | None, layers: list[bytes | Spooled], config: dict[str, Any],
                  base: Image | None = None) -> Image:
        """Store an image made of uncompressed layer tars (`import`, `commit`, the built-in
        image, test fixtures), on top of `base`'s layers if given; without a name it is
        dangling, found by its id. A large layer comes spooled into the store (`import`)."""
        import io

        config_bytes = canonical_json(config)
        blobs = {sha256_digest(data): data for data in [*layers, config_bytes] if isinstance(data, bytes)}
        spooled = tuple(layer for layer in layers if not isinstance(layer, bytes))
        sized = [(sha256_digest(layer), len(layer)) if isinstance(layer, bytes) else (layer.digest, layer.size)
                 for layer in layers]
        manifest = canonical_json({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": sha256_digest(config_bytes),
                       "size": len(config_bytes)},
            "layers": [*(base.layers if base else []),
                       *({"mediaType": LAYER_TAR_MEDIA_TYPE, "digest": digest, "size": size}
                         for digest, size in sized)],
        })

        def open_blob(descriptor: dict[str, Any]) -> BinaryIO:
            data = blobs.get(descriptor["digest"])
            return io.BytesIO(data) if data is not None else self.layout.open_blob(descriptor["digest"])

        return self.ingest(name, manifest, MANIFEST_MEDIA_TYPE, open_blob, spooled)

    def ingest(self, name: str | None, manifest_bytes: bytes, media_type: str | None,
               open_blob: Callable[[dict[str, Any]], BinaryIO], spooled: tuple[Spooled, ...] = ()) -> Image:
        """Store an image from elsewhere: the manifest as given, so digests stay the same, every
        blob verified, every layer unpacked before the image gets its name (as docker load
        does): a bad name, document or layer refuses the whole image, and nothing of it stays
        (image/ingest.py)."""
        from mini_runtime.image.ingest import Pending, ingest_all

        pending = Pending([name] if name else [], manifest_bytes, media_type, open_blob, spooled=spooled)
        return ingest_all(self, [pending])[0]

    def set_name(self, name: str | None, descriptor: dict[str, Any]) -> None:
        """Give a manifest a name (or none); the image that had the name keeps existing, dangling
        if that was its last name."""
        index = self.layout.index()
        manifests = index.setdefault("manifests", [])
        for d in manifests:
            if name and d.get("annotations", {}).get(REF_NAME) == name:
                d.get("annotations", {}).pop(REF_NAME)
        if name:
            annotations = {REF_NAME: name, "io.containerd.image.name": reference.parse(name).full}
            manifests.append(dict(descriptor, annotations=annotations))
        elif not any(d["digest"] == descriptor["digest"] for d in manifests):
            manifests.append(dict(descriptor))
        index["manifests"] = _without_duplicate_danglings(manifests)
        self.layout.write_index(index)

    def tag(self, source: str, target: str) -> None:
        """Another name for an image (the name moves if another image had it)."""
        name = reference.tag_names(source, target)
        image = self.get(source)
        with paths.locked(self.lock_path):
            self.set_name(name, self.descriptor(image))

    def descriptor(self, image: Image) -> dict[str, Any]:
        """The index entry of the image's manifest, as a name points at it."""
        manifest = self.layout.read_json(image.manifest_digest)
        return {"mediaType": manifest.get("mediaType", MANIFEST_MEDIA_TYPE), "digest": image.manifest_digest,
                "size": self.layout.blob_path(image.manifest_digest).stat().st_size}

    # --- removing images -----------------------------------------------------------------

    def remove(self, text: str, in_use: set[str], force: bool = False) -> list[str]:
        """`rmi`: untag a name, and delete the image once no name is left. `in_use` holds the ids
        of images that kept containers use: those stay (dangling, with -f). Returns docker's
        lines (Untagged: / Deleted:)."""
        by_id = self.find_by_id(text) or self._by_prefix(text)
        image = by_id or self.get(text)
        with paths.locked(self.lock_path):
            names = self.names(image)
            if by_id and len(names) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                                "image is referenced in multiple repositories")
            if image.id in in_use and not force and (by_id or len(names) == 1):
                raise Conflict(f"conflict: unable to remove repository reference \"{text}\" (must force) "
                                f"- a stopped container is using its referenced image {image.short_id} "
                                "(mini rm it first)")
            untag = names if by_id else [image.name]
            lines = [f"Untagged: {name}" for name in untag]
            index = self.layout.index()
            for d in index["manifests"]:
                if d.get("annotations", {}).get(REF_NAME) in untag:
                    d["annotations"].pop(REF_NAME)
            if not set(names) - set(untag) and image.id not in in_use:
                index["manifests"] = [d for d in index["manifests"] if d["digest"] != image.manifest_digest]
                lines.append(f"Deleted: {image.id}")
            index["manifests"] = _without_duplicate_danglings(index["manifests"])
            self.layout.write_index(index)
            self.collect_garbage()
        return lines

    def collect_garbage(self) -> None:
        """Delete the blobs no manifest refers to, the unpacked layers no image uses, and what a
        `mini` killed while it stored an image left (with the store's lock held: every blob and
        layer of an image being stored is referenced by the time the lock is let go)."""
        for parent in (self.layout.root / "blobs" / "sha256", self.layers_root, self.root / "rootfs"):
            paths.sweep_scratch(parent)
        for left in self.layout.root.glob(".index.json.tmp-*"):   # (atomic_write's, killed)
            left.unlink(missing_ok=True)
        keep: set[str] = set()
        chains: set[str] = set()
        for image in self.stored():  # (we hold the lock: list() could want it again)
            keep.update([image.manifest_digest, image.id, *(x["digest"] for x in image.layers)])
            chains.update(c.removeprefix("sha256:") for c in image.chain_ids)
        for digest in self.layout.blobs() - keep:
            self.layout.blob_path(digest).unlink(missing_ok=True)
        for directory in list(self.layers_root.iterdir()) if self.layers_root.is_dir() else []:
            if len(directory.name) == 64 and directory.name not in chains:
                paths.remove_tree(directory)
        links = self.layers_root / "l"
        for link in list(links.iterdir()) if links.is_dir() else []:
            if not link.exists():
                link.unlink()

    # --- unpacked layers ------------------------------------------------------------------

    # >>> layer-dirs
    def layer_dirs(self, image: Image) -> list[str]:
        """The image's layers as overlayfs lower directories, top layer first, each unpacked
        once and shared by every image and container that has it. The names are short links
        relative to `layers_root` (overlay's options must fit in one page of memory)."""
        names = []
        for descriptor, diff_id, chain in zip(image.layers, image.diff_ids, image.chain_ids):
            directory = self.layers_root / chain.removeprefix("sha256:")
            link = self.layers_root / "l" / chain.removeprefix("sha256:")[:20]
            if not link.is_symlink():
                with paths.locked(self.root / "layers.lock"):
                    if not directory.is_dir():
                        self._unpack(descriptor, diff_id, directory, overlay=True)
                    if not link.is_symlink():
                        link.parent.mkdir(exist_ok=True)
                        link.symlink_to(f"../{directory.name}/diff")
            names.append(f"l/{link.name}")
        return names[::-1]
    # <<< layer-dirs

    def _unpack(self, descriptor: dict[str, Any], diff_id: str, directory: Path, *, overlay: bool,
                into: Path | None = None) -> None:
        """Apply one layer blob into a new directory (or, flattening, onto `into`); the DiffID
        of what was applied must be the config's, or nothing is kept."""
        import tempfile

        from mini_runtime.image.layers import MEDIA_TYPES, apply_layer, open_layer

        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=paths.scratch(directory.parent))) if into is None else into
        target = tmp / "diff" if into is None else into
        target.mkdir(mode=0o755, exist_ok=True)
        try:
            # A plain tar's DiffID is its blob's digest, checked when the blob was stored: not
            # hashed again (a compressed one's is the digest of what it decompresses to).
            plain = descriptor["mediaType"] in MEDIA_TYPES and MEDIA_TYPES[descriptor["mediaType"]] is None
            with self.layout.open_blob(descriptor["digest"]) as blob:
                layer = open_layer(blob, descriptor["mediaType"], what=layer_name(descriptor))
                got = apply_layer(layer, target, overlay=overlay, known=descriptor["digest"] if plain else None)
            check_diff_id(descriptor, got, diff_id)
            if into is None:
                tmp.rename(directory)
        except BaseException:
            if into is None:
                paths.remove_tree(tmp)
            raise
        finally:
            if into is None:
                paths.release_scratch(directory.parent)

    def rootfs(self, image: Image) -> Path:
        """All of the image's layers flattened into one directory, once (read it, don't write
        it): what `cp -a` copied for each container before chapter 05."""
        target = self.root / "rootfs" / chain_id(image.diff_ids).removeprefix("sha256:")
        if target.is_dir():
            return target
        import tempfile

        with paths.locked(self.root / "rootfs.lock"):
            if target.is_dir():
                return target
            tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=paths.scratch(target.parent)))
            try:
                for descriptor, diff_id in zip(image.layers, image.diff_ids):
                    self._unpack(descriptor, diff_id, target, overlay=False, into=tmp)
                tmp.chmod(0o755)
                tmp.rename(target)
            except BaseException:
                paths.remove_tree(tmp)
                raise
            finally:
                paths.release_scratch(target.parent)
        return target


def layer_name(descriptor: dict[str, Any]) -> str:
    """How messages call a layer: by the start of its blob's digest."""
    return f"layer {descriptor['digest'][:19]}…"


def check_diff_id(descriptor: dict[str, Any], got: str, diff_id: str) -> None:
    """What a layer blob decompressed to must be what the image's config says it is."""
    from mini_runtime.image.checked import Invalid

    if got != diff_id:
        raise Invalid(f"{layer_name(descriptor)} unpacks to DiffID {got}, but the image "
                      f"config says {diff_id}: the image is corrupt or was tampered with")


def _without_duplicate_danglings(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per unnamed manifest, and none for a manifest that still has a name."""
    named = {d["digest"] for d in manifests if REF_NAME in d.get("annotations", {})}
    seen: set[str] = set()
    result = []
    for d in manifests:
        if REF_NAME not in d.get("annotations", {}):
            if d["digest"] in named or d["digest"] in seen:
                continue
            seen.add(d["digest"])
            d = {k: v for k, v in d.items() if k != "annotations"}
        result.append(d)
    return result
