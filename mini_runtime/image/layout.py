"""An OCI image layout on disk: `oci-layout`, `index.json` and content-addressed `blobs/`.

It is the format `skopeo copy ... oci:DIR:NAME` reads and writes, so mini's store can be checked
by other tools. Image names are the `org.opencontainers.image.ref.name` annotation on the
descriptors in `index.json`. Spec: github.com/opencontainers/image-spec/blob/main/image-layout.md
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path

from mini_runtime import paths
from mini_runtime.paths import atomic_write
from mini_runtime.tuples import named_tuple

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TAR_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


def sha256_digest(data: bytes) -> str:
    import hashlib  # (only where blobs are written or checked: not on `mini run`'s path)

    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """One stable byte form, so the same object always gets the same digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _mismatch(message: str) -> Exception:
    """Content that is not what its descriptor says: bad input (an Invalid error), one line."""
    from mini_runtime.image.checked import Invalid  # (checked imports this module)

    return Invalid(message)


@named_tuple
class Spooled:
    """A blob in a temporary file of the store, with the digest and size of what was written."""

    path: Path
    digest: str
    size: int


class _Hashing:
    """A file to write to that hashes and counts what goes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        import hashlib

        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)


class _Checked(io.RawIOBase):
    """A stored blob being read: its last byte read, its digest is compared with its name."""

    def __init__(self, raw: BinaryIO, digest: str) -> None:
        import hashlib

        self.raw, self.digest, self.hash = raw, digest, hashlib.sha256()
        self.left = os.fstat(raw.fileno()).st_size

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.raw.fileno()

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self.raw.readinto(buffer)
        self.hash.update(memoryview(buffer)[:n])
        self.left -= n
        if n and self.left <= 0 and "sha256:" + self.hash.hexdigest() != self.digest:
            from mini_runtime.errors import System

            raise System(f"blob {self.digest} in the store is corrupt: it hashes to sha256:"
                         f"{self.hash.hexdigest()} (it was changed outside mini: remove the image, "
                         "and load or pull it again)")
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class Layout:
    """One OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parsed: dict[str, dict[str, Any]] = {}   # read_json's: digest -> document

    def exists(self) -> bool:
        """True once `init` has finished (index.json is written last, atomically)."""
        return (self.root / "index.json").is_file()

    def init(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").exists():
            atomic_write(self.root / "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        if not (self.root / "index.json").exists():
            self.write_index({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []})

    def blob_path(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        if algorithm != "sha256" or len(encoded) != 64 or not all(c in "0123456789abcdef" for c in encoded):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / "blobs" / "sha256" / encoded

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        """Store bytes under their digest; refuse them if they do not match `expected`."""
        digest = sha256_digest(data)
        if expected is not None and expected != digest:
            raise _mismatch(f"blob {expected} does not match its digest: its content is {digest}")
        path = self.blob_path(digest)
        if not path.exists():
            atomic_write(path, data, mode=0o444)
        return digest

    def put_blob_stream(self, source: BinaryIO, expected: str, size: int | None = None) -> str:
        """Store a blob of any size, hashing while it streams to a temporary file; it gets its
        name only if it hashes to `expected` (and has `size` bytes): nothing unverified is kept."""
        path = self.blob_path(expected)
        if path.exists():
            return expected

        def copy(out: BinaryIO) -> None:   # (no further than `size`: a descriptor is a bound)
            left = size
            while chunk := source.read(1 << 20):
                if left is not None and (left := left - len(chunk)) < 0:
                    raise _mismatch(f"blob {expected} is larger than its descriptor's {size} bytes")
                out.write(chunk)
        spooled = self.spool_written(copy)
        try:
            if spooled.digest != expected or (size is not None and spooled.size != size):
                raise _mismatch(f"blob {expected} ({size} bytes) does not match its descriptor: "
                                f"its content is {spooled.digest} ({spooled.size} bytes)")
            return self.adopt(spooled)
        except BaseException:
            self.discard(spooled)
            raise

    def spool(self, source: BinaryIO) -> Spooled:
        """`source` copied to a temporary file among the blobs (hidden: a dot name), hashed
        while it is written, so a blob of any size is never held in memory nor read twice. The
        caller adopts it, or unlinks it."""
        import shutil

        return self.spool_written(lambda out: shutil.copyfileobj(source, out, 1 << 20))

    def spool_written(self, write: Callable[[BinaryIO], object]) -> Spooled:
        """What `write` writes into the file it is given (commit's tar), spooled as `spool`
        spools a stream: hashed as it goes, never held in memory."""
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=".blob-", dir=paths.scratch(self.root / "blobs" / "sha256"))
        try:
            with os.fdopen(fd, "wb") as raw:
                out = _Hashing(raw)
                write(out)
        except BaseException:
            self.discard(Spooled(Path(tmp), "", 0))
            raise
        return Spooled(Path(tmp), "sha256:" + out.digest.hexdigest(), out.size)

    def adopt(self, spooled: Spooled) -> str:
        """Give a spooled file its blob name (read-only, as every blob)."""
        os.chmod(spooled.path, 0o444)
        os.rename(spooled.path, self.blob_path(spooled.digest))
        paths.release_scratch(spooled.path.parent.parent)
        return spooled.digest

    def discard(self, spooled: Spooled) -> None:
        """A spooled file not needed (or adopted already: then there is nothing to unlink)."""
        spooled.path.unlink(missing_ok=True)
        paths.release_scratch(spooled.path.parent.parent)

    def open_blob(self, digest: str) -> BinaryIO:
        return open(self.blob_path(digest), "rb")

    def blobs(self) -> set[str]:
        return {"sha256:" + p.name for p in (self.root / "blobs" / "sha256").iterdir() if not p.name.startswith(".")}

    def remove_ref(self, name: str) -> None:
        index = self.index()
        index["manifests"] = [d for d in index.get("manifests", [])
                              if d.get("annotations", {}).get(REF_NAME) != name]
        self.write_index(index)

    def read_blob(self, digest: str) -> bytes:
        """Read a blob and check it still hashes to its name."""
        with self.open_checked(digest) as blob:
            return blob.read()

    def open_checked(self, digest: str) -> BinaryIO:
        """A blob to stream out of the store (`save`), never whole in memory (a layer can be
        GBs): once its last byte is read, it must still hash to its name."""
        return io.BufferedReader(_Checked(open(self.blob_path(digest), "rb"), digest), 1 << 20)

    def read_json(self, digest: str) -> dict[str, Any]:
        """A manifest or an image config, as stored: put_blob checked its digest when it was
        written, as containerd's content store does. Hashing it again at every `mini run` would
        cost more than the rest of the read (hashlib's import alone is ~2 ms). What leaves the
        store (save, push) goes through read_blob, which checks.

        Parsed once: a blob never changes (its name is its digest), and every name of an image
        is read as an image of its own, for each image `load` stores (a config of 8 MB named
        30 times was parsed 466 times, for minutes). Callers must not change what they get."""
        if digest not in self.parsed:
            self.parsed[digest] = json.loads(self.blob_path(digest).read_bytes())
        return self.parsed[digest]

    def index(self) -> dict[str, Any]:
        return json.loads((self.root / "index.json").read_bytes())

    def write_index(self, index: dict[str, Any]) -> None:
        atomic_write(self.root / "index.json", json.dumps(index, indent=2).encode() + b"\n")

    def refs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, manifest descriptor) for every named image, in index order."""
        return [(d["annotations"][REF_NAME], d) for d in self.index().get("manifests", [])
                if REF_NAME in d.get("annotations", {})]

    def find_ref(self, name: str) -> dict[str, Any] | None:
        return next((d for n, d in self.refs() if n == name), None)

    def set_ref(self, name: str, descriptor: dict[str, Any]) -> None:
        """Point `name` at a manifest descriptor (moving the name if it pointed elsewhere)."""
        index = self.index()
        manifests = [d for d in index.get("manifests", [])
                     if d.get("annotations", {}).get(REF_NAME) != name]
        annotations = dict(descriptor.get("annotations", {}), **{REF_NAME: name})
        manifests.append(dict(descriptor, annotations=annotations))
        index["manifests"] = manifests
        self.write_index(index)
