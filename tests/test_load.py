"""`load` and `import` of bad input (issue 10): a result, or one line and exit 1, and the store as
it was. Regression tests for each case the fuzzing pass found, and a property-based test
(hypothesis) that feeds mutated archives and manifests of a two-layer image to the loader."""

from __future__ import annotations

import bz2
import copy
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MINI, mini
from mini_runtime.errors import MiniError
from mini_runtime.image import archive, manifest
from mini_runtime.image.layout import REF_NAME
from mini_runtime.image.store import Store

pytestmark = [pytest.mark.root]

TAR = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def tar_of(entries: list[tuple[str, bytes | None]], *, prefix: str = "") -> bytes:
    """A tar of (name, data) entries; data None makes a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(prefix + name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


# --- a two-layer image, as a model that can be mutated and written out -----------------------

LAYER1 = tar_of([("etc/", None), ("etc/hello", b"hello\n"), ("etc/gone", b"x")])
LAYER2_TAR = tar_of([("etc/world", b"world\n"), ("etc/.wh.gone", b"")])
LAYER2 = gzip.compress(LAYER2_TAR, mtime=0)


def _config(diff_ids: list[str]) -> dict[str, Any]:
    return {"architecture": manifest.host_platform()["architecture"], "os": "linux",
            "created": "2024-01-01T00:00:00Z", "config": {"Cmd": ["sh"], "Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "layer 1"},
                        {"created": "2024-01-01T00:00:00Z", "created_by": "layer 2"}]}


def model(name: str = "fuzz:1") -> dict[str, Any]:
    """The documents of the image, before they are written out (and mutated)."""
    config = _config([sha(LAYER1), sha(LAYER2_TAR)])
    return {
        "config": config,
        "manifest": {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                     "config": {"mediaType": manifest.OCI_CONFIG, "digest": "", "size": 0},
                     "layers": [{"mediaType": TAR, "digest": sha(LAYER1), "size": len(LAYER1)},
                                {"mediaType": TAR + "+gzip", "digest": sha(LAYER2), "size": len(LAYER2)}]},
        "index": {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX,
                  "manifests": [{"mediaType": manifest.OCI_MANIFEST, "digest": "", "size": 0,
                                 "annotations": {REF_NAME: name}}]},
        "docker": [{"Config": "", "RepoTags": [name],
                    "Layers": [f"blobs/sha256/{sha(LAYER1)[7:]}", f"blobs/sha256/{sha(LAYER2)[7:]}"]}],
    }


Mutator = Callable[[Any], Any]


def members(m: dict[str, Any], *, fmt: str = "both", target: str | None = None,
            mutate: Mutator = lambda doc: doc, rehash: bool = True) -> dict[str, bytes]:
    """The archive's members. `mutate` changes the document `target`; with `rehash` the
    documents that refer to it get its new digest (so the mutation gets past digest checks)."""
    m = copy.deepcopy(m)
    config = m["config"] if target != "config" else mutate(m["config"])
    config_bytes = dumps(config)
    pristine_config = dumps(m["config"])
    m["manifest"]["config"].update(digest=sha(pristine_config), size=len(pristine_config))
    if target == "config" and rehash:
        m["manifest"]["config"].update(digest=sha(config_bytes), size=len(config_bytes))
    manifest_bytes = dumps(m["manifest"] if target != "manifest" else mutate(m["manifest"]))
    pristine_manifest = dumps(m["manifest"])
    manifest_digest = sha(manifest_bytes) if rehash else sha(pristine_manifest)
    m["index"]["manifests"][0].update(digest=manifest_digest, size=len(manifest_bytes) if rehash
                                      else len(pristine_manifest))
    config_digest = sha(config_bytes) if rehash else sha(pristine_config)
    m["docker"][0]["Config"] = f"blobs/sha256/{config_digest[7:]}"
    out = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
           "index.json": dumps(m["index"] if target != "index" else mutate(m["index"])),
           "manifest.json": dumps(m["docker"] if target != "docker" else mutate(m["docker"])),
           f"blobs/sha256/{config_digest[7:]}": config_bytes,
           f"blobs/sha256/{manifest_digest[7:]}": manifest_bytes,
           f"blobs/sha256/{sha(LAYER1)[7:]}": LAYER1, f"blobs/sha256/{sha(LAYER2)[7:]}": LAYER2}
    if fmt == "docker":
        del out["index.json"], out["oci-layout"], out[f"blobs/sha256/{manifest_digest[7:]}"]
    elif fmt == "oci":
        del out["manifest.json"]
    return out


def write(entries: dict[str, bytes], *, prefix: str = "") -> bytes:
    return tar_of(list(entries.items()), prefix=prefix)


def tree(root: Path) -> dict[str, str]:
    """Every path of a store with its kind and contents: did anything change? (A file's
    contents are read once per inode: busybox's ~270 applets are hard links of one 2 MB binary,
    which was hashed again for each of its names, twice a test.)"""
    found: dict[str, str] = {}
    digests: dict[tuple[int, int], str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[str(path.relative_to(root))] = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                inode = (st.st_dev, st.st_ino)
                if inode not in digests:
                    digests[inode] = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path.relative_to(root))] = digests[inode]
            else:  # a directory, or a device (an overlay whiteout), a fifo...
                found[str(path.relative_to(root))] = f"{st.st_mode:o} {st.st_rdev}"
    return found


def base_store(root: Path) -> Store:
    """A store that has an image sharing the first layer (its blob and unpacked directory)."""
    store = Store(root)
    store.add_image("base:1", [LAYER1], _config([sha(LAYER1)]))
    return store


def check_load(store: Store, data: bytes) -> list[str] | MiniError:
    """Load; a success must be a working image, a failure one line and the store unchanged."""
    before = tree(store.root)
    try:
        lines = archive.load(store, io.BytesIO(data))
    except MiniError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        assert tree(store.root) == before, f"a failed load ({e}) changed the store"
        return e
    assert lines
    for line in lines:
        image = store.get(line.split(": ", 1)[1])
        assert all((store.layers_root / d).is_dir() for d in store.layer_dirs(image))
    return lines


@pytest.fixture
def store():
    root = Path(tempfile.mkdtemp(prefix="mini-load-"))
    try:
        yield base_store(root)
    finally:
        shutil.rmtree(root)


# --- the pristine archive loads, in every form ---------------------------------------------------

@pytest.mark.parametrize("fmt", ["both", "oci", "docker"])
@pytest.mark.parametrize("prefix", ["", "./"])
def test_the_pristine_archive_loads_also_with_dot_slash_names(store, fmt, prefix):
    lines = check_load(store, write(members(model(), fmt=fmt), prefix=prefix))
    assert lines == ["Loaded image: fuzz:1"]
    image = store.get("fuzz:1")
    top, bottom = (store.layers_root / d for d in store.layer_dirs(image))
    assert (bottom / "etc/hello").read_bytes() == b"hello\n"
    assert (top / "etc/world").read_bytes() == b"world\n"


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_a_compressed_archive_loads(store, compress):
    assert check_load(store, compress(write(members(model())))) == ["Loaded image: fuzz:1"]


# --- regression tests: each case of the issue, in-process ------------------------------------

def _set(path: tuple, value: Any) -> Mutator:
    def mutate(doc: Any) -> Any:
        doc = copy.deepcopy(doc)
        if not path:
            return value
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        return doc
    return mutate


def _nested_indexes(depth: int) -> dict[str, bytes]:
    """index.json -> an index -> an index ... `depth` levels deep, each a genuine blob."""
    out = members(model(), fmt="oci")
    body = dumps({"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": []})
    for _ in range(depth):
        out[f"blobs/sha256/{sha(body)[7:]}"] = body
        body = dumps({"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": [
            {"mediaType": manifest.OCI_INDEX, "digest": sha(body), "size": len(body)}]})
    out["index.json"] = body
    return out


def _index_listing_itself() -> dict[str, bytes]:
    """A blob stored under a name X whose content lists X: no sha256 can make this true, so
    only a loader that does not check a nested index's digest would follow it round and round."""
    out = members(model(), fmt="oci")
    name = "sha256:" + "ab" * 32
    body = dumps({"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": [
        {"mediaType": manifest.OCI_INDEX, "digest": name, "size": 200}]})
    out[f"blobs/sha256/{name[7:]}"] = body
    out["index.json"] = dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": manifest.OCI_INDEX, "digest": name, "size": len(body)}]})
    return out


CASES: dict[str, Callable[[], bytes]] = {
    "config blob with one byte changed": lambda: write({
        k: (v.replace(b'"os": "linux"', b'"os": "linuX"') if b'"rootfs"' in v else v)
        for k, v in members(model()).items()}),
    "tar cut inside a member": lambda: write(members(model()))[:3000],
    "truncated gzip stream": lambda: gzip.compress(write(members(model())))[:-600],
    "invalid JSON": lambda: write(dict(members(model(), fmt="oci"), **{"index.json": b'{"schemaVersion": 2,'})),
    "JSON that is not UTF-8": lambda: write(dict(members(model(), fmt="oci"),
                                                  **{"index.json": '{"a": "é"}'.encode("latin-1")})),
    "a list where an object belongs": lambda: write(members(model(), fmt="oci", target="index",
                                                            mutate=_set(("manifests", 0), []))),
    "a string where a list belongs": lambda: write(members(model(), target="manifest",
                                                           mutate=_set(("layers",), "layers"))),
    "a number where a digest belongs": lambda: write(members(model(), target="config",
                                                             mutate=_set(("rootfs", "diff_ids", 0), 7))),
    "a float where a size belongs": lambda: write(members(model(), target="manifest",
                                                          mutate=_set(("layers", 0, "size"), 1.5))),
    "a float where a string belongs": lambda: write(members(model(), target="manifest",
                                                            mutate=_set(("layers", 0, "mediaType"), 1.5))),
    "deeply nested JSON": lambda: write(dict(members(model(), fmt="oci"),
                                             **{"index.json": b"[" * 100_000 + b"]" * 100_000})),
    "an index that points to itself": lambda: write(_index_listing_itself()),
    "indexes nested 100 deep": lambda: write(_nested_indexes(100)),
    "a zstd media type over gzip data": lambda: write(members(
        model(), target="manifest", mutate=_set(("layers", 1, "mediaType"), TAR + "+zstd"))),
    "a config with an invalid created time": lambda: write(members(
        model(), target="config", mutate=_set(("created",), "yesterday"))),
    "a Cmd that is a string": lambda: write(members(model(), target="config",
                                                    mutate=_set(("config", "Cmd"), "sh"))),
    "more DiffIDs than layers": lambda: write(members(
        model(), target="config", mutate=_set(("rootfs", "diff_ids"), [sha(LAYER1)] * 3))),
    "a DiffID that is not the layer's": lambda: write(members(
        model(), target="config", mutate=_set(("rootfs", "diff_ids", 1), sha(b"other")))),
    "a plain tar's DiffID that is not its digest": lambda: write(members(   # (not hashed twice)
        model(), target="config", mutate=_set(("rootfs", "diff_ids", 0), sha(b"other")))),
    "an index with no manifests": lambda: write(members(model(), fmt="oci", target="index",
                                                        mutate=_set(("manifests",), []))),
    "an empty docker manifest list": lambda: write(members(model(), fmt="docker", target="docker",
                                                           mutate=lambda doc: [])),
    "RepoTags as a string": lambda: write(members(model(), fmt="docker", target="docker",
                                                  mutate=_set((0, "RepoTags"), "fuzz:1"))),
    "a 300-character name": lambda: write(members(model("a" * 300 + ":1"))),
    "a name with a newline": lambda: write(members(model("fuzz:1\n"), fmt="docker")),
    "a digest reference as a name": lambda: write(members(model("fuzz@sha256:" + "a" * 64), fmt="docker")),
    "a layer path that the archive lacks": lambda: write(members(
        model(), fmt="docker", target="docker", mutate=_set((0, "Layers", 1), "../../etc/passwd"))),
    "a symlink loop": lambda: _symlink_loop(),
    "a file that is not a tar": lambda: b"this is not a tar file\n" * 100,
    "a corrupt bzip2 archive": lambda: bz2.compress(write(members(model())))[:40] + b"x" * 100,
    "a truncated xz archive": lambda: lzma.compress(write(members(model())))[:-100],
    "an empty file": lambda: b"",
    "a tar without index.json or manifest.json": lambda: write({"hello": b"hi"}),
}


def _symlink_loop() -> bytes:
    out = io.BytesIO()
    entries = members(model(), fmt="docker")
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in entries.items():
            if name.endswith(sha(LAYER2)[7:]):
                for a, b in (("x/layer.tar", "../y/layer.tar"), ("y/layer.tar", "../x/layer.tar")):
                    info = tarfile.TarInfo(a)
                    info.type, info.linkname = tarfile.SYMTYPE, b
                    tar.addfile(info)
                continue
            if name == "manifest.json":
                doc = json.loads(data)
                doc[0]["Layers"][1] = "x/layer.tar"
                data = dumps(doc)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_json_type_is_named_in_words(store):
    """'must be a string, not float' was Python's word for a JSON number."""
    result = check_load(store, CASES["a float where a string belongs"]())
    assert str(result).endswith(".layers[0].mediaType must be a string, not a number"), str(result)


@pytest.mark.parametrize("case", CASES)
def test_a_bad_archive_is_one_line_and_leaves_the_store_as_it_was(store, case):
    result = check_load(store, CASES[case]())
    assert isinstance(result, MiniError), f"{case}: loaded {result}"
    assert str(result).startswith(("invalid archive: ", "invalid reference format")) or \
        "no matching manifest" in str(result), str(result)


@pytest.mark.parametrize("fmt", ["docker", "oci"])
@pytest.mark.parametrize("name, words", [
    ("0" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("sha256:" + "0" * 64, "refusing to create an ambiguous tag using digest algorithm as name"),
    ("fuzz@sha256:" + "a" * 64, "refusing to create a tag with a digest reference"),
])
def test_a_name_that_mini_tag_refuses_is_refused_by_load_too(store, fmt, name, words):
    """64 hex digits was stored as "<hex>:latest", which reads as an image ID wherever a name is
    taken; docker and `mini tag` refuse it (and sha256:<hex>), and load now says so like its
    other errors: `invalid archive: <where>: <docker's words>`."""
    if fmt == "oci" and ":" not in name:
        pytest.skip("an OCI ref name without ':' or '/' is a bare tag, which names no image")
    result = check_load(store, write(members(model(name), fmt=fmt)))
    assert isinstance(result, MiniError), f"loaded {result}"
    assert str(result).startswith("invalid archive: ") and str(result).endswith(words), str(result)


def test_a_later_bad_image_takes_the_earlier_ones_with_it(store):
    """Two images in one archive, the second with a corrupt layer: neither is loaded, and the
    blobs and layer directories of the first (new ones, and the one shared with base:1) are as
    they were."""
    good = members(model("first:1"), fmt="docker")
    other_layer = tar_of([("other", b"other\n")])
    config_bytes = dumps(_config([sha(LAYER1), sha(b"not what the layer unpacks to")]))
    entries = json.loads(good["manifest.json"]) + [
        {"Config": "second/config.json", "RepoTags": ["second:1"],
         "Layers": [f"blobs/sha256/{sha(LAYER1)[7:]}", "second/layer.tar"]}]
    archive_bytes = write(dict(good, **{"manifest.json": dumps(entries), "second/config.json": config_bytes,
                                        "second/layer.tar": other_layer}))
    blobs = store.layout.blobs()
    result = check_load(store, archive_bytes)
    assert isinstance(result, MiniError) and "DiffID" in str(result)
    assert store.layout.blobs() == blobs and sha(LAYER1) in blobs
    assert [name for name, _ in store.layout.refs()] == ["base:1"]


def test_a_failed_load_keeps_what_was_there_before(store):
    """The failing archive's first layer is base:1's: the blob and its unpacked directory stay,
    and base:1 still runs (its layers are all there)."""
    result = check_load(store, CASES["a DiffID that is not the layer's"]())
    assert isinstance(result, MiniError)
    image = store.get("base:1")
    assert (store.layers_root / store.layer_dirs(image)[0] / "etc/hello").read_bytes() == b"hello\n"


def _other_blobs(layers: list[tuple[str, bytes]], cmd: str = "sh", *, diff_ids: list[str] | None = None,
                 size: int | None = None) -> bytes:
    """An OCI archive of model()'s layers (by DiffID: the store has them unpacked already) in
    other blobs, (media type, blob) each; with `cmd`, a config of its own, so another image.
    `diff_ids` replace the config's, `size` the first layer's size."""
    config = model()["config"] | {"config": {"Cmd": [cmd], "Env": ["A=1"]}}
    if diff_ids is not None:
        config |= {"rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []}
    config = dumps(config)
    descriptors = [{"mediaType": t, "digest": sha(b), "size": len(b)} for t, b in layers]
    descriptors[0]["size"] = descriptors[0]["size"] if size is None else size
    manifest_doc = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                    "config": {"mediaType": manifest.OCI_CONFIG, "digest": sha(config), "size": len(config)},
                    "layers": descriptors}
    manifest_bytes = dumps(manifest_doc)
    index = {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX,
             "manifests": [{"mediaType": manifest.OCI_MANIFEST, "digest": sha(manifest_bytes),
                            "size": len(manifest_bytes), "annotations": {REF_NAME: "other:1"}}]}
    entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": dumps(index),
               f"blobs/sha256/{sha(config)[7:]}": config, f"blobs/sha256/{sha(manifest_bytes)[7:]}": manifest_bytes}
    entries.update({f"blobs/sha256/{sha(b)[7:]}": b for _, b in layers})
    return write(entries)


EVIL = gzip.compress(tar_of([("../escaped", b"x")]), mtime=0)


def test_a_new_blob_of_a_layer_the_store_has_is_checked_too(store):
    """Another image (its own config) whose layers the store has unpacked already is not
    unpacked again, but its new layer blobs must still decompress to the config's DiffIDs. Else
    any blob (here a layer that escapes with `..`) would be stored, and come out of `save`."""
    assert check_load(store, write(members(model()))) == ["Loaded image: fuzz:1"]
    refused = check_load(store, _other_blobs([(TAR, LAYER1), (TAR + "+gzip", EVIL)], cmd="other"))
    assert isinstance(refused, MiniError) and "unpacks to DiffID" in str(refused), refused
    assert not store.layout.blob_path(sha(EVIL)).exists()
    junk = b"not a tar at all" * 64
    refused = check_load(store, _other_blobs([(TAR, junk), (TAR + "+gzip", LAYER2)], cmd="other"))
    assert isinstance(refused, MiniError) and "unpacks to DiffID" in str(refused), refused
    # the same tars compressed another way: the same layers, so a good image
    other = [(TAR + "+gzip", gzip.compress(LAYER1, mtime=1)), (TAR, LAYER2_TAR)]
    assert check_load(store, _other_blobs(other, cmd="other")) == ["Loaded image: other:1"]


def test_an_image_stored_already_is_named_not_stored_twice(store):
    """One image per id (its config's digest), as docker keeps it: an archive of a config the
    store has gives its names to that image. None of its blobs is read or stored (docker reuses
    layers it has by chain id the same way), and removing one name leaves the image."""
    assert check_load(store, write(members(model()))) == ["Loaded image: fuzz:1"]
    blobs = set(store.layout.blobs())
    assert check_load(store, _other_blobs([(TAR, LAYER1), (TAR + "+gzip", EVIL)])) == ["Loaded image: other:1"]
    assert set(store.layout.blobs()) == blobs
    first, second = store.get("fuzz:1"), store.get("other:1")
    assert (first.id, first.manifest_digest) == (second.id, second.manifest_digest)
    assert store.remove("fuzz:1", in_use=set()) == ["Untagged: fuzz:1"]   # no "Deleted:"
    assert store.get("other:1").id == first.id


# --- decompression bombs, and descriptors that lie about a blob the store has ------------------

def _one_layer(blob: bytes, diff_id: str, name: str = "bomb:1") -> bytes:
    """A docker-archive of one image whose one layer is `blob` (its DiffID given)."""
    return write({"manifest.json": dumps([{"Config": "config.json", "RepoTags": [name], "Layers": ["layer.tar"]}]),
                  "config.json": dumps(_config([diff_id]) | {"history": []}), "layer.tar": blob})


def _sparse_layer(size: int, sparse_map: bytes | None = None) -> bytes:
    """A 1.5 KB plain tar of a PAX sparse file of `size` bytes (GNU tar --sparse makes these)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = (sparse_map or f"1\n{size - 1}\n1\n".encode()).ljust(512, b"\0") + b"x"
        info = tarfile.TarInfo("sparse")
        info.size, info.pax_headers = len(data), {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                  "GNU.sparse.name": "sparse", "GNU.sparse.realsize": str(size)}
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


ZEROS_TAR = tar_of([("zeros", bytes(8 << 20))])      # 8 MiB of file: the tests cap layers at 4 MiB
BOMBS: dict[str, Callable[[], bytes]] = {
    "a gzip layer (docker-archive)": lambda: _one_layer(gzip.compress(ZEROS_TAR), sha(ZEROS_TAR)),
    "a gzip layer (OCI)": lambda: _other_blobs([(TAR, LAYER1), (TAR + "+gzip", gzip.compress(ZEROS_TAR))]),
    "a sparse file in a plain tar layer": lambda: _one_layer(_sparse_layer(8 << 20), sha(_sparse_layer(8 << 20))),
    "zeros after the tar's end in a gzip layer": lambda: _one_layer(
        gzip.compress(LAYER1 + bytes(8 << 20)), sha(LAYER1 + bytes(8 << 20))),
    "a gzip'd archive padded with zeros": lambda: gzip.compress(write(members(model())) + bytes(8 << 20)),
    "an xz archive": lambda: lzma.compress(write(members(model())) + bytes(8 << 20)),
}


@pytest.mark.parametrize("case", BOMBS)
def test_a_decompression_bomb_is_one_line_and_leaves_nothing(store, monkeypatch, case):
    """Every expansion `load` makes is bounded: the compressed archive (was read whole into a
    temporary file, to any size), each layer's stream, and each layer's files (a sparse entry
    of a plain tar was written out whole: a few KB made any number of GB). The limit is
    lowered here, to 4 MiB: each case expands to 8. Nothing is left: no blob, no layer
    directory, no temporary file in the store."""
    from mini_runtime.image import layers

    monkeypatch.setattr(layers, "DEFAULT_LIMIT", 4 << 20)
    data = BOMBS[case]()
    assert len(data) < 64 << 10
    result = check_load(store, data)
    assert isinstance(result, MiniError), f"{case}: loaded {result}"
    assert str(result).startswith("invalid archive: ") and "decompression bomb" in str(result), str(result)


def _sparse_member_archive(size: int) -> bytes:
    """A docker-archive whose layer member is a sparse file of `size` bytes: 10 KB in all."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in {"manifest.json": dumps([{"Config": "c.json", "RepoTags": ["sparse:1"], "Layers": ["l.tar"]}]),
                           "c.json": dumps(_config([sha(bytes(size))]) | {"history": []})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        data = b"1\n0\n1\n".ljust(512, b"\0") + b"\0"
        info = tarfile.TarInfo("l.tar")
        info.size, info.pax_headers = len(data), {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                                  "GNU.sparse.name": "l.tar", "GNU.sparse.realsize": str(size)}
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_layer_that_images_share_is_read_once(monkeypatch):
    """docker save lists a shared layer under every image that has it, and manifest.json may list
    one file 500 times in each of 1000 images: it was read and hashed for each listing (here
    10,000 times: 500,000 would be hours for a large layer), before any config was checked."""
    entries = [{"Config": "c.json", "RepoTags": [f"shared:{i}"], "Layers": ["l.tar"] * 500} for i in range(20)]
    data = write({"manifest.json": dumps(entries), "c.json": b"{}", "l.tar": LAYER1})
    opened: list[str] = []
    real = archive._Members.open
    monkeypatch.setattr(archive._Members, "open", lambda self, name: opened.append(name) or real(self, name))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        pending = archive._docker(archive._Members(tar))
    assert len(pending) == 20 and opened.count("l.tar") == 1, opened.count("l.tar")


def test_a_sparse_member_of_an_archive_is_refused(store):
    """Its holes read as zeros: 10 KB of archive made a layer blob of any size (hashed, then
    spooled into the store, before anything was checked). docker save writes plain files."""
    result = check_load(store, _sparse_member_archive(64 << 20))
    assert isinstance(result, MiniError), f"loaded {result}"
    assert str(result) == "invalid archive: 'l.tar' is a sparse file, which no image archive has " \
                          "(save writes plain files)", str(result)


def test_a_member_name_longer_than_path_max_is_refused(store):
    """Each member is kept by its name until the archive is read: names of 1 MiB (a PAX path)
    made 560 KB of gzip hold 1 GB. No file has a name over 4095 bytes: docker fails on it."""
    data = write({**members(model()), "n" * 5000: b""})
    result = check_load(store, data)
    assert isinstance(result, MiniError) and str(result).startswith("invalid archive: 'nnn") and \
        str(result).endswith(": a name longer than 4095 bytes, which no file has (docker load fails "
                             "to unpack it)"), str(result)


def test_the_pax_records_of_members_are_not_kept(store):
    """A member's other PAX records (a comment, up to 1 MiB) were kept with it, as its name."""
    import tracemalloc

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i, (name, data) in enumerate([*members(model()).items(), *((f"x{i}", b"") for i in range(200))]):
            info = tarfile.TarInfo(name)
            info.size, info.pax_headers = len(data), {"comment": "c" * (400 << 10)}
            tar.addfile(info, io.BytesIO(data))
    data = out.getvalue()
    tracemalloc.start()
    try:
        assert check_load(store, data) == ["Loaded image: fuzz:1"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak >> 20} MiB"


def _named(fmt: str, count: int) -> bytes:
    """The archive of model(), its one image named `count` times."""
    out = members(model(), fmt=fmt)
    if fmt == "oci":
        index = json.loads(out["index.json"])
        first = index["manifests"][0]
        index["manifests"] = [dict(first, annotations={REF_NAME: f"many:{i}"}) for i in range(count)]
        out["index.json"] = dumps(index)
    else:
        first = json.loads(out["manifest.json"])[0]
        out["manifest.json"] = dumps([dict(first, RepoTags=[f"many:{i}"]) for i in range(count)])
    return write(out)


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_an_image_named_many_times_is_checked_and_parsed_once(store, fmt, monkeypatch):
    """Its config was read and checked for each name, then parsed again for each name of each
    image at every look in the store: an 8 MB config named 30 times took minutes and 2.7 GB."""
    from types import SimpleNamespace

    from mini_runtime.image import checked, layout

    checks, parses, config = [], [], dumps(model()["config"])
    real_check, real_loads = checked.config, json.loads
    monkeypatch.setattr(checked, "config", lambda data, *rest: checks.append(data) or real_check(data, *rest))
    monkeypatch.setattr(layout, "json", SimpleNamespace(
        loads=lambda data: parses.append(data) or real_loads(data), dumps=json.dumps))
    assert len(check_load(store, _named(fmt, 20))) == 20
    assert len(checks) == 1 and parses.count(config) == 1, (len(checks), parses.count(config))


def test_a_blob_is_read_no_further_than_its_descriptors_size(store):
    """A blob that goes on past its size was spooled whole into the store, then refused."""
    source = _Zeros(64 << 20)
    with pytest.raises(MiniError, match=r"is larger than its descriptor's 1048576 bytes"):
        store.layout.put_blob_stream(source, "sha256:" + "ab" * 32, 1 << 20)
    assert source.left >= 61 << 20, f"read {(64 << 20) - source.left} bytes"
    assert not [p.name for p in store.layout.root.glob("blobs/sha256/.*")]


def _lying(layer: dict[str, Any]) -> bytes:
    """An OCI archive of an image whose first layer is LAYER1 (a blob the store has), described
    by `layer`, and whose second is LAYER2 (new to the store)."""
    return _other_blobs([(layer["mediaType"], LAYER1), (TAR + "+gzip", LAYER2)], cmd="lies",
                        size=layer.get("size"))


@pytest.mark.parametrize("lie, words", [
    ({"mediaType": TAR + "+gzip"}, "not valid gzip data"),
    ({"mediaType": TAR + "+zstd"}, "not valid compressed data"),
    ({"mediaType": TAR, "size": len(LAYER1) + 1}, f"has {len(LAYER1)} bytes, but its descriptor says {len(LAYER1) + 1}"),
    ({"mediaType": TAR, "size": 1}, "but its descriptor says 1"),
])
def test_a_descriptor_that_lies_about_a_stored_blob_is_refused(store, lie, words):
    """The store has LAYER1 (a plain tar, unpacked): a manifest that calls it gzip, or gives
    it another size, was stored as it was (the blob was not read again, the layer not unpacked
    again), and `save` wrote an archive that mini itself refused. Now: one line, nothing stored;
    and the archive that tells the truth loads, and saves an archive that loads."""
    result = check_load(store, _lying(lie))
    assert isinstance(result, MiniError), f"loaded {result}"
    assert str(result).startswith("invalid archive: ") and words in str(result), str(result)
    assert check_load(store, _lying({"mediaType": TAR})) == ["Loaded image: other:1"]
    saved = io.BytesIO()
    archive.save(store, ["other:1"], saved)
    fresh = Path(tempfile.mkdtemp(prefix="mini-load-"))
    try:
        assert check_load(Store(fresh), saved.getvalue()) == ["Loaded image: other:1"]
    finally:
        shutil.rmtree(fresh)


def test_a_stored_blob_paired_with_another_layers_diff_id_is_refused(store):
    """fuzz:1 stores blob LAYER2 (gzip, DiffID of LAYER2_TAR). Another image pairs that blob
    with LAYER1's DiffID, whose layer directory exists: neither was read again, so the pair was
    stored, and `save` wrote an archive whose layer does not unpack to its DiffID."""
    assert check_load(store, write(members(model()))) == ["Loaded image: fuzz:1"]
    result = check_load(store, _other_blobs([(TAR + "+gzip", LAYER2)], cmd="paired", diff_ids=[sha(LAYER1)]))
    assert isinstance(result, MiniError), f"loaded {result}"
    assert "unpacks to DiffID" in str(result), str(result)


# --- the property: any mutation loads a working image, or is one line and changes nothing ------

_DIGESTS = [sha(LAYER1), sha(LAYER2), sha(LAYER2_TAR), "sha256:" + "0" * 64, "sha256:" + "A" * 64]
_STRINGS = st.sampled_from(["", "a" * 300, "../../etc/passwd", "fuzz:2", "UPPER:1", "x\ny",
                            TAR, TAR + "+zstd", TAR + "+gzip", manifest.OCI_INDEX, manifest.DOCKER_LIST,
                            manifest.OCI_MANIFEST, manifest.DOCKER_MANIFEST, "layers", *_DIGESTS])
_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
            | st.floats() | st.text(max_size=12) | _STRINGS)
JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8) | _STRINGS, inner, max_size=3), max_leaves=6)


def _paths(doc: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for key, value in items:
        found += _paths(value, path + (key,))
    return found


def _json_mutation(data: st.DataObject, doc: Any) -> Any:
    path = data.draw(st.sampled_from(_paths(doc)))
    action = data.draw(st.sampled_from(["replace", "delete", "wrap", "stringify"]))
    doc = copy.deepcopy(doc)
    if not path:
        return data.draw(JSON) if action == "replace" else [doc] if action == "wrap" else json.dumps(doc)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    old = parent[path[-1]]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = {"replace": lambda: data.draw(JSON), "wrap": lambda: [old],
                            "stringify": lambda: json.dumps(old)}[action]()
    return doc


def _mutated(data: st.DataObject) -> bytes:
    fmt = data.draw(st.sampled_from(["both", "oci", "docker"]), label="format")
    kind = data.draw(st.sampled_from(["json", "flip", "truncate", "delete", "none"]), label="mutation")
    target = data.draw(st.sampled_from(["config", "manifest", "index", "docker"]), label="document")
    entries = members(model(), fmt=fmt)
    if kind == "json":
        entries = members(model(), fmt=fmt, target=target, mutate=lambda doc: _json_mutation(data, doc),
                          rehash=data.draw(st.booleans(), label="rehash"))
    elif kind == "delete":
        del entries[data.draw(st.sampled_from(sorted(entries)), label="deleted")]
    raw = write(entries, prefix=data.draw(st.sampled_from(["", "./"]), label="prefix"))
    if data.draw(st.booleans(), label="gzip the archive"):
        raw = gzip.compress(raw, mtime=0)
    if kind == "flip":
        at = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[at + 1:]
    elif kind == "truncate":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    return raw


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutated_archive_loads_a_working_image_or_fails_in_one_line(data):
    root = Path(tempfile.mkdtemp(prefix="mini-load-"))
    try:
        check_load(base_store(root), _mutated(data))
    finally:
        shutil.rmtree(root)


@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_archives_through_the_cli(data):
    """The same property through `mini load`: exit 0 and `Loaded image:` lines, or exit 1 and
    one line on stderr, never a traceback; the store unchanged after a failure."""
    root = Path(tempfile.mkdtemp(prefix="mini-load-"))
    try:
        base_store(root)
        before = tree(root)
        path = root.parent / f"{root.name}.tar"
        path.write_bytes(_mutated(data))
        try:
            result = mini("load", "-i", str(path), env=dict(os.environ, MINI_ROOT=str(root)))
        finally:
            path.unlink()
        assert "Traceback" not in result.stderr
        if result.returncode == 0:
            assert result.stdout.startswith("Loaded image") and result.stderr == ""
        else:
            assert result.returncode == 1 and result.stdout == "", result
            assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("mini: ")
            assert tree(root) == before
    finally:
        shutil.rmtree(root)


# --- through the CLI: one line on stderr, exit 1, no traceback ----------------------------------

def _cli_load(tmp_path: Path, data: bytes, *args: str):
    path = tmp_path / "archive.tar"
    path.write_bytes(data)
    return mini("load", "-i", str(path), *args)


@pytest.mark.parametrize("case", ["config blob with one byte changed", "truncated gzip stream",
                                  "deeply nested JSON", "RepoTags as a string", "a 300-character name",
                                  "a file that is not a tar", "an index with no manifests"])
def test_mini_load_of_a_bad_archive_is_one_line_and_exit_1(tmp_path, state_root, case):
    Store().ensure_builtin()
    before = tree(state_root / "images"), tree(state_root / "layers")
    result = _cli_load(tmp_path, CASES[case]())
    assert result.returncode == 1 and result.stdout == "", (result.stdout, result.stderr)
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("mini: "), result.stderr
    assert "Traceback" not in result.stderr
    assert (tree(state_root / "images"), tree(state_root / "layers")) == before


def test_mini_save_then_one_byte_of_the_config_changed(tmp_path, state_root):
    """The issue's own steps: `mini save -o x.tar busybox`, change one byte of the config blob,
    repack, `mini load -i`."""
    saved = tmp_path / "x.tar"
    assert mini("save", "-o", str(saved), "busybox").returncode == 0
    config_id = Store().get("busybox").id
    with tarfile.open(saved) as tar:
        entries = {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}
    name = f"blobs/sha256/{config_id[7:]}"
    entries[name] = entries[name].replace(b'"linux"', b'"linuy"')
    before = tree(state_root / "images"), tree(state_root / "layers")
    result = _cli_load(tmp_path, write(entries))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "does not match" in result.stderr and "Traceback" not in result.stderr
    assert (tree(state_root / "images"), tree(state_root / "layers")) == before


def test_mini_load_of_a_good_archive_with_dot_slash_names(tmp_path):
    result = _cli_load(tmp_path, write(members(model("dotslash:1")), prefix="./"))
    assert result.returncode == 0 and result.stdout == "Loaded image: dotslash:1\n", result.stderr
    assert mini("rmi", "dotslash:1").returncode == 0


def test_a_layer_changed_in_the_file_while_it_loads_is_refused(store, tmp_path, monkeypatch):
    """`-i FILE` is read where it is, not copied first: a layer that changes between its digest
    (the first read) and its copy into the store (read and hashed again) is refused, never stored
    under a digest it does not have."""
    layer = tar_of([("big", os.urandom(1 << 20))])   # (larger than any read buffer on the way)
    path = tmp_path / "archive.tar"
    path.write_bytes(write({"manifest.json": dumps([{"Config": "config.json", "RepoTags": ["changed:1"],
                                                     "Layers": ["layer.tar"]}]),
                            "config.json": dumps(_config([sha(layer)])), "layer.tar": layer}))
    real = archive.ingest_all

    def change_then_store(store: Store, pending: list) -> list:
        data = bytearray(path.read_bytes())
        data[data.index(layer) + len(layer) // 2] ^= 0xFF
        path.write_bytes(bytes(data))                   # the same file: the open archive sees it
        return real(store, pending)

    monkeypatch.setattr(archive, "ingest_all", change_then_store)
    before = tree(store.root)
    with path.open("rb") as source, pytest.raises(MiniError, match="does not match"):
        archive.load(store, source)
    assert tree(store.root) == before


def test_mini_load_from_a_pipe(tmp_path):
    """A pipe cannot seek: the archive is copied into a temporary file first, and loads."""
    data = write(members(model("piped:1"), fmt="docker"))
    result = subprocess.run(MINI + ["load"], input=data, capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == b"Loaded image: piped:1\n", result.stderr
    assert mini("rmi", "piped:1").returncode == 0


# --- import --------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (gzip.compress(LAYER1)[:-30], "ends early"),
    (gzip.compress(LAYER1)[:-8] + b"\0" * 8, "gzip"),
    (b"\x1f\x8bnot gzip at all", "gzip"),
    (b"this is not a tar file\n" * 100, "tar"),
    (bz2.compress(LAYER1)[:-30], "ends early"),
    (lzma.compress(LAYER1)[:-30], "ends early"),
    (b"BZh9" + b"\0" * 200, "not valid data"),
    (tar_of([("big", b"x" * 5000)])[:2000], "tar"),
    (_sparse_layer(1 << 20, sparse_map=b"junk\n"), "malformed extended header"),   # (was a traceback)
])
def test_mini_import_of_bad_input_is_one_line_and_exit_1(tmp_path, state_root, data, message):
    Store().ensure_builtin()
    before = tree(state_root / "images"), tree(state_root / "layers")
    path = tmp_path / "fs.tar"
    path.write_bytes(data)
    result = mini("import", str(path), "imported:bad")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert (tree(state_root / "images"), tree(state_root / "layers")) == before  # (no .blob- either)


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress])
def test_mini_import_reads_bzip2_and_xz_as_docker_import_does(tmp_path, compress):
    path = tmp_path / "fs.tar.z"
    path.write_bytes(compress(LAYER1))
    result = mini("import", str(path), "imported:packed")
    assert result.returncode == 0, result.stderr
    assert Store().get("imported:packed").diff_ids == ["sha256:" + hashlib.sha256(LAYER1).hexdigest()]
    assert mini("rmi", "imported:packed").returncode == 0


class _Zeros(io.RawIOBase):
    """`size` zero bytes, made as they are read."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_mini_import_streams_a_gzip_bomb_without_holding_it(tmp_path):
    """200 MB of zeros in a ~200 KB gzip tar: imported with a peak RSS far below either size
    (it was read whole, then decompressed whole: several hundred MB)."""
    size = 200 << 20
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size)))
    assert path.stat().st_size < size // 100
    # Measured from a small process: a child forked from pytest may count pytest's pages.
    measure = ("import os, sys; pid = os.spawnv(os.P_NOWAIT, sys.argv[1], sys.argv[1:]); "
               "_, status, usage = os.wait4(pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", measure, *MINI, "import", str(path), "imported:bomb"],
                            capture_output=True, text=True, timeout=120)
    code, peak = map(int, result.stdout.splitlines()[-1].split())
    assert code == 0, result.stderr
    assert peak < 100 << 10, f"peak RSS {peak} KiB"
    assert Store().get("imported:bomb").layers[0]["size"] > size
    assert mini("rmi", "imported:bomb").returncode == 0


def test_mini_import_checks_the_name_before_reading_stdin():
    """A bad name fails at once, even when stdin never ends (it was read to its end first)."""
    proc = subprocess.Popen(MINI + ["import", "-", "BAD name"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("x" * 4096)
        proc.stdin.flush()
        code = proc.wait(timeout=20)
    finally:
        proc.kill()
        proc.stdin.close()
    assert code == 1 and "invalid reference format" in proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()


def test_mini_import_with_an_invalid_name_stores_nothing(tmp_path, state_root):
    Store().ensure_builtin()
    before = tree(state_root / "images"), tree(state_root / "layers")
    path = tmp_path / "fs.tar"
    path.write_bytes(tar_of([("unique-to-this-test", b"x")]))
    for name in ("a" * 300, "UPPER:1", "bad name"):
        result = mini("import", str(path), name)
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "invalid reference format" in result.stderr or "must not be more than 255" in result.stderr
    assert (tree(state_root / "images"), tree(state_root / "layers")) == before


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_tarballs_through_mini_import(data):
    """`mini import` of a tarball, plain or gzip, with a byte flipped or cut short: an image
    whose layer unpacked, or one line and exit 1 with the store unchanged."""
    raw = tar_of([("etc/", None), ("etc/hello", b"hello\n" * 50), ("bin/", None), ("bin/x", b"x" * 700)])
    if data.draw(st.booleans(), label="gzip"):
        raw = gzip.compress(raw, mtime=0)
    if data.draw(st.booleans(), label="flip, else cut"):
        at = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255), label="xor")]) + raw[at + 1:]
    else:
        raw = raw[:data.draw(st.integers(0, len(raw) - 1), label="length")]
    root = Path(tempfile.mkdtemp(prefix="mini-load-"))
    try:
        base_store(root)
        before = tree(root)
        path = root.parent / f"{root.name}.tar"
        path.write_bytes(raw)
        try:
            result = mini("import", str(path), "imported:1", env=dict(os.environ, MINI_ROOT=str(root)))
        finally:
            path.unlink()
        assert "Traceback" not in result.stderr
        if result.returncode == 0:
            assert result.stdout.startswith("sha256:") and Store(root).get("imported:1")
        else:
            assert result.returncode == 1 and result.stdout == "", result
            assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("mini: ")
            assert tree(root) == before
    finally:
        shutil.rmtree(root)


# --- the property, for hostile layers that get past every digest ---------------------------------

def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "",
           pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, link, len(data), 0o644
    info.pax_headers = pax or {}
    return info, data


def _hostile(outside: str) -> list[list[tuple[tarfile.TarInfo, bytes]]]:
    """Entries (a few in a row) of the kinds H1 names, and of the kinds tarfile misreads."""
    sparse = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "s"}
    return [
        [_entry("../../evil", data=b"x")], [_entry(f"{outside}/evil", data=b"x")],
        [_entry("a", tarfile.SYMTYPE, link=outside), _entry("a/evil", data=b"x")],
        [_entry("a", tarfile.SYMTYPE, link="../" * 12 + outside.lstrip("/")), _entry("a/evil")],
        [_entry("h", tarfile.LNKTYPE, link=f"{outside}/sentinel")], [_entry("h", tarfile.LNKTYPE, link="../x")],
        [_entry("s", tarfile.SYMTYPE, link=f"{outside}/sentinel"), _entry("h", tarfile.LNKTYPE, link="s"),
         _entry("h", data=b"pwned")],
        [_entry("etc", tarfile.SYMTYPE, link=outside), _entry("etc/.wh.sentinel")],
        [_entry("etc", tarfile.SYMTYPE, link=outside), _entry("etc/.wh..wh..opq")],
        [_entry(".wh."), _entry("etc/.wh.."), _entry(".wh..wh..opq")],
        [_entry("etc/.wh.hello"), _entry("etc", tarfile.SYMTYPE, link=outside)],
        [_entry("x", data=b"x", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"})],
        [_entry("s", data=b"1\n0\n1\n".ljust(512, b"\0") + b"x", pax=sparse | {"GNU.sparse.realsize": str(64 << 20)})],
        [_entry("s", data=b"junk\n", pax=sparse | {"GNU.sparse.realsize": "10"})],
        [_entry("x", pax={"mtime": "nan"})], [_entry("x", pax={"uid": "-1"})], [_entry("d" * 300)],
        [_entry("x", tarfile.LNKTYPE, link="x")], [_entry("etc", data=b"a file over a dir")],
        [_entry("etc/hello", tarfile.DIRTYPE)], [_entry("x", tarfile.CHRTYPE)],
    ]


@settings(max_examples=100, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_layers_behind_correct_digests_load_or_fail_in_one_line(monkeypatch, data):
    """Hostile entries inserted into a layer, every digest and DiffID made right for them (as an
    attacker would), plain or gzip, in either archive format: the image loads and nothing
    outside the store changed, or one line and the store as it was (seeded: the same examples
    every run). Layers are capped at 4 MiB here: the sparse file declares 64."""
    from mini_runtime.image import layers

    monkeypatch.setattr(layers, "DEFAULT_LIMIT", 4 << 20)
    root = Path(tempfile.mkdtemp(prefix="mini-load-"))
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep\n")
    try:
        entries = [_entry("etc/", tarfile.DIRTYPE), _entry("etc/hello", data=b"hello\n")]
        for _ in range(data.draw(st.integers(1, 3), label="insertions")):
            at = data.draw(st.integers(0, len(entries)), label="position")
            entries[at:at] = data.draw(st.sampled_from(_hostile(str(outside))), label="entries")
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, blob in entries:
                tar.addfile(info, io.BytesIO(blob) if info.isreg() else None)
        layer = out.getvalue()
        if data.draw(st.booleans(), label="gzip"):
            blob, media_type = gzip.compress(layer, mtime=0), TAR + "+gzip"
        else:
            blob, media_type = layer, TAR
        archive_bytes = (_one_layer(blob, sha(layer), name="hostile:1") if data.draw(st.booleans(), label="docker")
                         else _other_blobs([(media_type, blob)], cmd="hostile", diff_ids=[sha(layer)]))
        check_load(base_store(root), archive_bytes)
        assert tree(outside) == {"sentinel": hashlib.sha256(b"keep\n").hexdigest()}
    finally:
        shutil.rmtree(root)
        shutil.rmtree(outside)


# --- what a killed `mini` leaves: swept by the next one ------------------------------------------

def test_a_live_writers_scratch_is_kept_and_a_dead_ones_swept(tmp_path):
    """The kernel drops a flock when its holder dies, however it dies: the sweep takes only
    scratch directories whose lock is free. (Our own lock is held through our own descriptor:
    the sweep's open is another one, so it is refused as another process's would be.)"""
    from mini_runtime import paths

    ours = paths.scratch(tmp_path)
    (ours / ".blob-x").write_bytes(b"half")
    paths.sweep_scratch(tmp_path)
    assert (ours / ".blob-x").exists()
    os.close(paths._scratch.pop(tmp_path)[1])          # as if this process had died
    paths.sweep_scratch(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_load_killed_half_way_leaves_nothing_after_the_next_store(tmp_path, state_root):
    """SIGKILL gives `mini load` no chance to clean up: its spooled blobs, unpacked layers and
    blobs of an image that never got its name stay, until the next command that stores an image
    (or rmi) sweeps them under the store's lock."""
    import signal
    import time

    Store().ensure_builtin()
    layers = [tar_of([(f"big{i}", os.urandom(16 << 20))]) for i in range(3)]
    config = _config([sha(layer) for layer in layers])
    config_bytes = dumps(config)
    entries = {f"blobs/sha256/{sha(layer)[7:]}": layer for layer in layers}
    entries[f"blobs/sha256/{sha(config_bytes)[7:]}"] = config_bytes
    entries["manifest.json"] = dumps([{"Config": f"blobs/sha256/{sha(config_bytes)[7:]}", "RepoTags": ["killed:1"],
                                       "Layers": [f"blobs/sha256/{sha(layer)[7:]}" for layer in layers]}])
    archive_path = tmp_path / "big.tar"
    archive_path.write_bytes(write(entries))
    del layers, entries
    before = tree(state_root / "images"), tree(state_root / "layers")
    load = subprocess.Popen(MINI + ["load", "-i", str(archive_path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size for p in (state_root / "images").rglob(".blob-*")):
        assert load.poll() is None and time.monotonic() < deadline, "the load ended before it was killed"
        time.sleep(0.005)
    load.send_signal(signal.SIGKILL)
    load.wait()
    assert tree(state_root / "images") != before[0]   # it did leave something
    tiny = tmp_path / "tiny.tar"
    tiny.write_bytes(tar_of([("hello", b"hi\n")]))
    assert mini("import", str(tiny), "tiny:1").returncode == 0
    assert mini("rmi", "tiny:1").returncode == 0
    assert (tree(state_root / "images"), tree(state_root / "layers")) == before
