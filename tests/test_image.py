"""The built-in image and the store: a valid OCI image layout, reproducible, unpacked safely."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from mini_runtime.image import busybox
from mini_runtime.image.store import BUILTIN, Store, chain_id
from mini_runtime.image.layers import UnsafeLayer, apply_layer


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    s = Store(tmp_path_factory.mktemp("store"))
    s.ensure_builtin()
    return s


def test_store_is_a_valid_oci_layout(store):
    """Check A1: oci-layout, index.json schemaVersion 2, every blob hashes to its name."""
    root = store.layout.root
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == BUILTIN
    blobs = list((root / "blobs" / "sha256").iterdir())
    assert len(blobs) == 3  # layer, config, manifest
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


def test_image_id_is_the_config_digest(store):
    """Check A2: the image ID is sha256 of the config bytes."""
    image = store.get("busybox")
    config_bytes = store.layout.blob_path(image.id).read_bytes()
    assert image.id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert image.config["config"]["Cmd"] == ["sh"]
    assert image.config["rootfs"]["diff_ids"] == [image.layers[0]["digest"]]  # uncompressed


def test_chain_id_formula():
    """Check A3: ChainID(L0) = DiffID(L0); then sha256(parent + ' ' + diff)."""
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_id([a]) == a
    assert chain_id([a, b]) == ab
    assert chain_id([a, b, c]) == "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()


def test_layer_is_reproducible():
    assert busybox.build_layer() == busybox.build_layer()


def test_applets_are_hard_links_to_busybox(store):
    rootfs = store.rootfs(store.get("busybox"))
    bb = os.stat(rootfs / "bin" / "busybox")
    for applet in ("bin/sh", "bin/ls", "bin/echo"):
        st = os.lstat(rootfs / applet)
        assert (st.st_ino, st.st_dev) == (bb.st_ino, bb.st_dev), applet
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "root:x:0:0" in (rootfs / "etc" / "passwd").read_text()


def test_unknown_image_is_not_found(store):
    from mini_runtime.errors import ImageNotFound

    with pytest.raises(ImageNotFound, match="alpine:3.20"):
        store.get("alpine:3.20")


def _tar(*entries: tarfile.TarInfo) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    buf.seek(0)
    return buf


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


TOKEN = os.urandom(6).hex()   # names no other program on the machine uses


@pytest.mark.parametrize("entries", [
    [_entry(f"../escape-{TOKEN}")],
    [_entry(f"/abs-{TOKEN}")],
    [_entry(f"a/../../escape-{TOKEN}")],
    [_entry("link", tarfile.SYMTYPE, "/tmp"), _entry(f"link/escape-{TOKEN}")],
    [_entry("hard", tarfile.LNKTYPE, "../outside")],
    [_entry(".wh.")],
], ids=["dotdot", "absolute", "nested-dotdot", "through-symlink", "hardlink-out", "bare-whiteout"])
def test_unpack_refuses_to_write_outside(tmp_path, entries):
    target = tmp_path / "root"
    target.mkdir()
    with pytest.raises(UnsafeLayer):
        apply_layer(_tar(*entries), target, overlay=False)
    for outside in (tmp_path / f"escape-{TOKEN}", Path(f"/tmp/escape-{TOKEN}"), Path(f"/abs-{TOKEN}")):
        assert not outside.exists()
