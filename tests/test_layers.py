"""Layers (chapter 05): DiffIDs, whiteouts, overlay vs flatten, commit tars, docker diff, and a
corpus of malicious layers (specs §1.4, §1.5, §6.1; checks A3-A7 and H1).

Every fixture is a tar built in memory; everything is written under pytest's tmp_path. overlayfs
is only ever mounted inside a private mount namespace of a child process (this file, run as a
script under `unshare -m`), so the host's mount table never sees it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from mini_runtime.errors import MiniError
from mini_runtime.image.layers import MEDIA_TYPES, OPAQUE_XATTR, UnsafeLayer, apply_layer, open_layer
from mini_runtime.image.pack import changes, write_tar
from mini_runtime.image.store import chain_id

pytestmark = [pytest.mark.root]

MTIME = 1_700_000_000
TAR = "application/vnd.oci.image.layer.v1.tar"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# vfs_cap_data revision 2, effective bit, permitted = CAP_NET_BIND_SERVICE (10).
CAP = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)


# --- building layers -----------------------------------------------------------------------------

Entry = tuple[tarfile.TarInfo, bytes]


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *, link: str = "",
          mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = MTIME,
          dev: tuple[int, int] = (0, 0), xattrs: dict[str, bytes] | None = None,
          pax: dict[str, str] | None = None) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, mode, mtime
    info.uid, info.gid = uid, gid
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                        for k, v in (xattrs or {}).items()} | (pax or {})
    return info, data


def f(name: str, data: bytes = b"", **kw) -> Entry:
    return entry(name, tarfile.REGTYPE, data, **kw)


def d(name: str, mode: int = 0o755, **kw) -> Entry:
    return entry(name, tarfile.DIRTYPE, mode=mode, **kw)


def sym(name: str, target: str, **kw) -> Entry:
    return entry(name, tarfile.SYMTYPE, link=target, mode=0o777, **kw)


def hard(name: str, target: str) -> Entry:
    return entry(name, tarfile.LNKTYPE, link=target)


def layer(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def flatten(layers: list[bytes], root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    return [apply_layer(io.BytesIO(blob), root, overlay=False) for blob in layers]


def layer_dirs(layers: list[bytes], base: Path) -> list[Path]:
    """Each layer in its own empty directory, base first."""
    dirs = []
    for i, blob in enumerate(layers):
        target = base / f"layer{i}"
        target.mkdir(parents=True)
        apply_layer(io.BytesIO(blob), target, overlay=True)
        dirs.append(target)
    return dirs


# --- looking at trees ----------------------------------------------------------------------------

def allowed(name: str) -> bool:
    return name == "security.capability" or name.startswith("user.")


def dump(root: Path) -> dict:
    """What A7 compares: names, types, modes, owners, mtimes, link targets, contents, devices,
    allowed xattrs, and which names share an inode."""
    entries: dict[str, dict] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            e = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)),
                 "uid": st.st_uid, "gid": st.st_gid, "mtime": int(st.st_mtime)}
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                e["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                e["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                e["xattrs"] = {k: os.getxattr(path, k, follow_symlinks=False).hex()
                               for k in sorted(os.listxattr(path, follow_symlinks=False)) if allowed(k)}
            entries[rel] = e
    return {"entries": entries, "hardlinks": sorted(sorted(n) for n in inodes.values() if len(n) > 1)}


def merged(lowers: list[Path], base: Path, script: str = "") -> dict:
    """Mount lowers (top first) + an empty upper in a private mount namespace of a child,
    optionally run `script` in the merged dir, and return the dump of the merged tree."""
    upper, work, mnt = base / "upper", base / "work", base / "merged"
    for p in (upper, work, mnt):
        p.mkdir(parents=True)
    result = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, __file__,
                             "merged", ":".join(map(str, lowers)), str(upper), str(work), str(mnt),
                             script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _mount_and_dump(lowers: str, upper: str, work: str, mnt: str, script: str) -> None:
    """Runs in the child: the mount is gone with its namespace when the child exits."""
    from mini_runtime import syscalls

    options = (f"lowerdir={lowers},upperdir={upper},workdir={work},"
               "redirect_dir=off,metacopy=off,index=off")             # specs §1.5 [rec]
    syscalls.mount("overlay", mnt, "overlay", 0, options)
    try:
        if script:
            subprocess.run(["sh", "-euc", script], cwd=mnt, check=True)
        print(json.dumps(dump(Path(mnt))))
    finally:
        syscalls.umount2(mnt)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> None:
    """Skip (with the kernel's reason) where overlayfs cannot be mounted."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    base = tmp_path_factory.mktemp("probe")
    (base / "lower").mkdir()
    try:
        merged([base / "lower"], base)
    except AssertionError as e:
        pytest.skip(f"cannot mount overlayfs here: {e}")


def is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- A3: DiffID and ChainID ----------------------------------------------------------------------

THREE = [layer(d("a"), f("a/1", b"one")), layer(f("a/2", b"two")), layer(f("a/.wh.1"))]


def test_diff_ids_and_chain_id_follow_the_spec(tmp_path):
    """Check A3: DiffID = sha256 of the uncompressed tar; ChainID chains them with spaces."""
    padded = THREE[:2] + [THREE[2] + b"\0" * 4096]     # trailing padding is part of the tar
    diff_ids = flatten(padded, tmp_path / "root")
    assert diff_ids == ["sha256:" + hashlib.sha256(blob).hexdigest() for blob in padded]
    want = diff_ids[0]
    for diff_id in diff_ids[1:]:
        want = "sha256:" + hashlib.sha256(f"{want} {diff_id}".encode()).hexdigest()
    assert chain_id(diff_ids) == want
    assert chain_id(diff_ids[:1]) == diff_ids[0]
    assert names(tmp_path / "root") == ["a", "a/2"]


def test_compressed_layers_give_the_diff_id_of_the_tar(tmp_path):
    tar = layer(d("etc"), f("etc/motd", b"hello\n" * 100))
    blobs = {TAR: tar, GZIP: gzip.compress(tar),
             "application/vnd.docker.image.rootfs.diff.tar.gzip": gzip.compress(tar)}
    try:
        import zstandard
        blobs[TAR + "+zstd"] = zstandard.ZstdCompressor().compress(tar)
    except ImportError:
        pass
    for i, (media_type, blob) in enumerate(blobs.items()):
        root = tmp_path / str(i)
        root.mkdir()
        diff_id = apply_layer(open_layer(io.BytesIO(blob), media_type), root, overlay=False)
        assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest(), media_type
        assert (root / "etc" / "motd").read_bytes() == b"hello\n" * 100


def test_media_types():
    assert MEDIA_TYPES[TAR] is None and MEDIA_TYPES[GZIP] == "gzip"
    assert MEDIA_TYPES[TAR + "+zstd"] == "zstd"
    assert MEDIA_TYPES["application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"] == "gzip"
    assert MEDIA_TYPES["application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"] == "gzip"
    with pytest.raises(UnsafeLayer, match="unknown layer media type"):
        open_layer(io.BytesIO(b""), "application/vnd.in-toto+json")
    assert issubclass(UnsafeLayer, ValueError) and issubclass(UnsafeLayer, MiniError)


def test_a_layer_that_is_no_tar_is_refused(tmp_path):
    with pytest.raises(UnsafeLayer, match="not a valid tar"):
        apply_layer(io.BytesIO(b"no tar here" * 100), tmp_path, overlay=False)


def test_zstd_without_the_module_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(UnsafeLayer, match="python3-zstandard"):
        open_layer(io.BytesIO(b""), TAR + "+zstd")


# --- A4-A6: whiteouts, opaque directories, replacing --------------------------------------------

def test_whiteout_deletes_a_lower_file(tmp_path):
    """Check A4 (flatten): `.wh.f` removes f (and a whole directory); no `.wh.` file remains."""
    root = tmp_path / "root"
    flatten([layer(d("d"), f("d/f"), f("d/g"), d("gone"), f("gone/x")),
             layer(d("d"), f("d/.wh.f"), f("d/.wh.never-existed"), f(".wh.gone"))], root)
    assert names(root) == ["d", "d/g"]


def test_whiteout_is_a_char_device_in_a_layer_dir(tmp_path):
    """Check A4 (overlay): the whiteout becomes char 0/0 named like the file, never `.wh.f`."""
    (top,) = layer_dirs([layer(d("d"), f("d/.wh.f"))], tmp_path)
    assert names(top) == ["d", "d/f"] and is_whiteout(top / "d" / "f")


@pytest.mark.parametrize("mode", ["flatten", "overlay"])
@pytest.mark.parametrize("name", [".wh.", "d/.wh.", "d/.wh..", "d/.wh..."])
def test_whiteout_without_a_name_is_refused(tmp_path, mode, name):
    """Check A4: a bare `.wh.` (or one naming `.`/`..`) deletes nothing sensible: an error."""
    (tmp_path / "root").mkdir()
    with pytest.raises(UnsafeLayer, match="whiteout"):
        apply_layer(io.BytesIO(layer(f(name))), tmp_path / "root", overlay=mode == "overlay")


@pytest.mark.parametrize("where", ["before", "after"])
def test_opaque_dir_hides_only_lower_children(tmp_path, where):
    """Check A5: `.wh..wh..opq` hides every lower child, keeps this layer's, wherever it stands."""
    opq = [f("d/.wh..wh..opq")]
    own = [f("d/new", b"n"), d("d/sub"), f("d/sub/n2")]
    top = layer(d("d"), *(opq + own if where == "before" else own + opq))
    base = layer(d("d"), f("d/a"), f("d/b"), d("d/sub"), f("d/sub/c"), f("other"))
    root = tmp_path / "root"
    flatten([base, top], root)
    assert names(root) == ["d", "d/new", "d/sub", "d/sub/n2", "other"]
    (layer_dir,) = layer_dirs([top], tmp_path / "overlay")
    assert names(layer_dir) == ["d", "d/new", "d/sub", "d/sub/n2"]
    assert os.getxattr(layer_dir / "d", OPAQUE_XATTR) == b"y"
    assert OPAQUE_XATTR not in os.listxattr(layer_dir / "d" / "sub")


def test_dir_over_dir_keeps_children_other_types_replace(tmp_path):
    """Check A6: a directory over a directory changes its attributes only; any other pair of
    types replaces what was there."""
    root = tmp_path / "root"
    flatten([layer(d("d", 0o755), f("d/child"), f("file"), d("dir"), f("dir/x"), f("link-me", b"t"),
                   d("to-link"), f("to-link/y")),
             layer(d("d", 0o1750, uid=7, gid=8, mtime=MTIME + 5), d("file"), f("dir", b"now a file"),
                   sym("link-me", "/etc/passwd", uid=5, gid=6), sym("to-link", "elsewhere"))], root)
    st = os.stat(root / "d")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o1750, 7, 8, MTIME + 5)
    assert (root / "d" / "child").is_file()
    assert (root / "file").is_dir() and (root / "dir").read_bytes() == b"now a file"
    assert os.readlink(root / "link-me") == "/etc/passwd" and os.readlink(root / "to-link") == "elsewhere"
    assert os.lstat(root / "link-me").st_uid == 5


def test_metadata_is_kept(tmp_path):
    """setuid/sticky modes, numeric owners, mtimes, devices, fifos, allowed xattrs only."""
    root = tmp_path / "root"
    flatten([layer(d("t", 0o1777, mtime=MTIME - 9), f("t/suid", b"x", mode=0o4755, uid=0, gid=3),
                   f("t/mine", mode=0o640, uid=1000, gid=1000, mtime=MTIME - 1),
                   entry("t/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
                   entry("t/disk", tarfile.BLKTYPE, mode=0o660, dev=(7, 200)),
                   entry("t/fifo", tarfile.FIFOTYPE, mode=0o600, uid=1000),
                   f("t/cap", b"bin", mode=0o755,
                     xattrs={"security.capability": CAP, "user.k": b"\xff\x00v",
                             "trusted.overlay.opaque": b"y", "trusted.x": b"1"}),
                   d("t/dir", xattrs={"trusted.overlay.opaque": b"y", "user.d": b"1"}))], root)
    t = root / "t"
    assert stat.S_IMODE(os.stat(t).st_mode) == 0o1777 and int(os.stat(t).st_mtime) == MTIME - 9
    assert stat.S_IMODE(os.stat(t / "suid").st_mode) == 0o4755 and os.stat(t / "suid").st_gid == 3
    mine = os.stat(t / "mine")
    assert (mine.st_uid, mine.st_gid, int(mine.st_mtime)) == (1000, 1000, MTIME - 1)
    assert stat.S_ISCHR(os.lstat(t / "null").st_mode) and os.lstat(t / "null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(t / "disk").st_mode) and os.lstat(t / "disk").st_rdev == os.makedev(7, 200)
    assert stat.S_ISFIFO(os.lstat(t / "fifo").st_mode)
    assert sorted(os.listxattr(t / "cap")) == ["security.capability", "user.k"]
    assert os.getxattr(t / "cap", "security.capability") == CAP
    assert os.getxattr(t / "cap", "user.k") == b"\xff\x00v"
    assert os.listxattr(t / "dir") == ["user.d"]


# --- A7: overlay storage equals flattened extraction --------------------------------------------

A7 = [
    layer(d("./"), d("bin"), f("bin/tool", b"tool", mode=0o4755), hard("bin/tool-link", "bin/tool"),
          sym("bin/sh", "/bin/tool"),
          f("bin/ping", b"ping", mode=0o755, xattrs={"security.capability": CAP, "user.note": b"base"}),
          d("etc"), f("etc/passwd", b"root\n"), f("etc/shadow", b"secret", mode=0o640, gid=42),
          f("etc/hosts", b"old hosts"),
          d("dev"), entry("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
          d("run"), entry("run/fifo", tarfile.FIFOTYPE, mode=0o600, uid=1000, gid=1000),
          d("opaq"), f("opaq/a"), d("opaq/sub"), f("opaq/sub/c"), d("opaq2"), f("opaq2/old"),
          d("gone"), f("gone/x"), d("gone2"), f("gone2/old"), d("gone3"), f("gone3/old"),
          d("data"), d("data/old"), f("data/old/inner"), d("keep", 0o700, uid=1000), f("keep/k")),
    layer(d("etc", mtime=MTIME + 10), f("etc/.wh.shadow"), f("etc/passwd", b"root\nuser\n"),
          d("opaq", 0o750, mtime=MTIME + 10), f("opaq/.wh..wh..opq"), f("opaq/new", b"new"),
          d("data", mtime=MTIME + 10), f("data/old", b"now a file"),
          d("x"), f("x/h1", b"linked", uid=3), hard("x/h2", "x/h1")),
    layer(d("keep", 0o750, uid=1000, gid=1000, mtime=MTIME + 20),
          d("opaq2", mtime=MTIME + 20), f("opaq2/new3", b"n3"), f("opaq2/.wh..wh..opq"),
          f(".wh.gone"), f(".wh.gone2"), d("gone2", mtime=MTIME + 20), f("gone2/fresh"),
          d("gone3", mtime=MTIME + 20), f("gone3/fresh"), f(".wh.gone3"),
          d("etc", mtime=MTIME + 20), f("etc/.wh.hosts"), f("etc/hosts", b"new hosts"),
          sym("etc/link", "../bin/tool"),
          d("data", mtime=MTIME + 20), d("data/old", mtime=MTIME + 20), f("data/old/back")),
]


def test_overlay_layers_merge_like_the_flattened_image(tmp_path, overlay):
    """Check A7: per-layer dirs hold char 0/0 whiteouts and opaque xattrs, and overlayfs
    mounting them shows exactly the tree that flattening the same layers gives."""
    flat = tmp_path / "flat"
    flatten(A7, flat)
    want = dump(flat)
    assert sorted(want["entries"]) == [
        "bin", "bin/ping", "bin/sh", "bin/tool", "bin/tool-link", "data", "data/old", "data/old/back",
        "dev", "dev/null", "etc", "etc/hosts", "etc/link", "etc/passwd", "gone2", "gone2/fresh", "gone3",
        "gone3/fresh", "keep", "keep/k", "opaq", "opaq/new", "opaq2", "opaq2/new3", "run", "run/fifo",
        "x", "x/h1", "x/h2"]
    assert want["hardlinks"] == [["bin/tool", "bin/tool-link"], ["x/h1", "x/h2"]]
    assert want["entries"]["keep"]["mode"] == "0o750"

    dirs = layer_dirs(A7, tmp_path / "layers")
    assert is_whiteout(dirs[1] / "etc" / "shadow")
    assert os.getxattr(dirs[1] / "opaq", OPAQUE_XATTR) == b"y"
    assert is_whiteout(dirs[2] / "gone")
    for opaque in ("opaq2", "gone2", "gone3"):
        assert os.getxattr(dirs[2] / opaque, OPAQUE_XATTR) == b"y", opaque
    assert (dirs[2] / "etc" / "hosts").read_bytes() == b"new hosts"
    assert not [n for layer_dir in dirs for n in names(layer_dir) if ".wh." in n]

    assert merged(dirs[::-1], tmp_path / "mnt") == want


# --- commit: an upper dir back into a layer; docker diff ---------------------------------------

def test_upper_dir_becomes_a_layer_and_a_diff(tmp_path, overlay):
    """Check A8's layer half: the kernel's own whiteouts and opaque dirs (made by rm and rmdir in
    a real overlay mount) become `.wh.` entries; the tar applied on the lower gives the merged
    view; changes() lists what docker diff lists."""
    base = layer(d("etc"), f("etc/passwd", b"root\n"), f("etc/shadow", b"s", mode=0o600),
                 d("opaq"), f("opaq/a"), d("opaq/sub"), f("opaq/sub/b"), d("same"), f("same/f"))
    lower = tmp_path / "lower"
    flatten([base], lower)
    script = ("rm etc/shadow; echo changed > etc/passwd; rm -r opaq; mkdir opaq; echo n > opaq/new; "
              "echo again > opaq/a; echo hi > newfile; mkdir newdir; touch newdir/x; ln newfile newlink")
    want = merged([lower], tmp_path / "mnt", script)
    upper = tmp_path / "mnt" / "upper"

    out = io.BytesIO()
    write_tar(out, upper, upper=True)
    members = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getmembers()
    by_name = {m.name: m for m in members}
    assert by_name["etc/.wh.shadow"].isreg() and by_name["etc/.wh.shadow"].size == 0
    assert by_name["etc/.wh.shadow"].mode == 0o600
    assert by_name["opaq/.wh..wh..opq"].isreg()
    assert by_name["newlink"].islnk() and by_name["newlink"].linkname == "newfile"
    assert not [m for m in members if m.ischr() or m.isblk()]
    assert not [k for m in members for k in m.pax_headers if "trusted" in k]
    again = io.BytesIO()
    write_tar(again, upper, upper=True)
    assert again.getvalue() == out.getvalue()                       # deterministic

    check = tmp_path / "check"
    flatten([base, out.getvalue()], check)
    assert dump(check) == want

    assert changes(upper, [lower]) == [
        ("C", "/etc"), ("C", "/etc/passwd"), ("D", "/etc/shadow"), ("A", "/newdir"), ("A", "/newdir/x"),
        ("A", "/newfile"), ("A", "/newlink"), ("C", "/opaq"), ("C", "/opaq/a"), ("A", "/opaq/new")]


def test_changes_reads_whiteouts_in_lower_layers(tmp_path):
    """A name deleted by a lower layer and made again by the container is new (A), not changed."""
    dirs = layer_dirs([layer(d("d"), f("d/x")), layer(d("d"), f("d/.wh.x"))], tmp_path / "layers")
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "x").write_text("again")
    links = []                                   # the store names lower dirs by short symlinks
    for i, layer_dir in enumerate(dirs):
        links.append(tmp_path / f"l{i}")
        links[-1].symlink_to(layer_dir)
    assert changes(upper, links[::-1]) == [("C", "/d"), ("A", "/d/x")]


def test_export_round_trip(tmp_path):
    """write_tar of a plain tree (export/save) and back: same files, same hard links."""
    flat = tmp_path / "flat"
    flatten(A7, flat)
    out = io.BytesIO()
    write_tar(out, flat)
    copy = tmp_path / "copy"
    flatten([out.getvalue()], copy)
    assert dump(copy) == dump(flat)


def test_a_tree_deeper_than_pythons_recursion_limit_packs_and_diffs(tmp_path):
    """A container can make its upper dir deeper than that: write_tar (commit, export) and
    changes (diff) walk it without recursing, the tar unpacks to the same tree, and a symlink
    on the way is packed as a symlink, never followed."""
    from mini_runtime import paths

    upper, copy, depth = tmp_path / "upper", tmp_path / "copy", sys.getrecursionlimit() + 50
    try:
        here = upper
        for level in range(depth):
            here = here / "a"
            here.mkdir(parents=True)
        (here / "deepest").write_text("bottom")
        (upper / "a" / "out").symlink_to(tmp_path)
        out = io.BytesIO()
        write_tar(out, upper, upper=True)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            members = tar.getmembers()
        assert len(members) == depth + 2 and members[-2].name == "a/" * depth + "deepest"
        assert [m.linkname for m in members if m.issym()] == [str(tmp_path)]
        flatten([out.getvalue()], copy)
        assert (copy / ("a/" * depth) / "deepest").read_text() == "bottom"
        found = changes(upper, [])
        assert len(found) == depth + 2 and ("A", "/" + "a/" * depth + "deepest") in found
    finally:  # (pytest's own clean-up, shutil.rmtree, would recurse too deep: rm -rf does not)
        subprocess.run(["rm", "-rf", "--one-file-system", str(upper), str(copy)], check=True)


# --- H1: malicious layers ------------------------------------------------------------------------

def bomb() -> bytes:
    """A few KB of gzip that expand to 8 MiB (the test caps layers at 1 MiB)."""
    return gzip.compress(layer(f("zeros", b"\0" * (8 << 20))))


def sparse(name: str, size: int) -> Entry:
    """A PAX 1.0 sparse file (GNU tar --sparse): one byte of data at the end of `size` bytes of
    hole. tarfile expands the holes as zeros: a 1.5 KB tar declares any size it likes."""
    data = f"1\n{size - 1}\n1\n".encode().ljust(512, b"\0") + b"x"
    return f(name, data, pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                              "GNU.sparse.name": name, "GNU.sparse.realsize": str(size)})


# name -> (layers made from the outside dir's path, modes in which it must raise)
CORPUS: dict[str, tuple[Callable[[str], list[bytes]], str]] = {
    "dotdot": (lambda o: [layer(f("../../evil"))], "both"),
    "nested-dotdot": (lambda o: [layer(d("a"), f("a/../../../evil"))], "both"),
    "absolute": (lambda o: [layer(f(f"{o}/evil"))], "both"),
    "symlink-then-write": (lambda o: [layer(sym("a", o), f("a/f"))], "both"),
    "symlink-up-then-write": (lambda o: [layer(sym("a", "../../.."), f("a/tmp/x"))], "both"),
    "symlink-chain": (lambda o: [layer(sym("a", "b"), sym("b", o), f("a/f"))], "both"),
    "symlink-in-lower-then-write": (lambda o: [layer(sym("a", o)), layer(f("a/f"))], "flatten"),
    "dir-through-symlink": (lambda o: [layer(sym("a", o), d("a/sub"))], "both"),
    "hardlink-absolute": (lambda o: [layer(hard("h", f"{o}/sentinel"))], "both"),
    "hardlink-dotdot": (lambda o: [layer(hard("h", "../x"))], "both"),
    "hardlink-through-symlink": (lambda o: [layer(sym("a", o), hard("h", "a/sentinel"))], "both"),
    "hardlink-to-outward-symlink": (lambda o: [layer(sym("s", f"{o}/sentinel"), hard("h", "s"),
                                                     f("h", b"pwned"), f("s", b"pwned"))], "never"),
    "write-over-symlink": (lambda o: [layer(sym("s", f"{o}/sentinel"), f("s", b"pwned"))], "never"),
    "chmod-through-symlink": (lambda o: [layer(sym("a", o), d("a", 0o777, mtime=1))], "never"),
    "whiteout-through-symlink": (lambda o: [layer(sym("etc", o), f("etc/.wh.sentinel"))], "both"),
    "whiteout-through-lower-symlink": (lambda o: [layer(sym("etc", o)), layer(f("etc/.wh.sentinel"))],
                                       "flatten"),
    "opaque-through-symlink": (lambda o: [layer(sym("d", o), f("d/.wh..wh..opq"))], "both"),
    "opaque-through-lower-symlink": (lambda o: [layer(sym("d", o)), layer(f("d/.wh..wh..opq"))],
                                     "flatten"),
    "symlink-replaces-dir": (lambda o: [layer(d("d"), f("d/f"), sym("d", o), f("d/g"))], "both"),
    "bare-whiteout": (lambda o: [layer(f(".wh."))], "both"),
    "nul-in-name": (lambda o: [layer(f("a", pax={"path": "a\0/../../evil"}))], "both"),
    "nul-in-link": (lambda o: [layer(sym("a", "x", pax={"linkpath": f"x\0{o}"}))], "both"),
    "empty-name": (lambda o: [layer(f("a", pax={"path": ""}))], "both"),
    "gzip-bomb": (lambda o: [bomb()], "both"),
    "sparse-bomb": (lambda o: [layer(sparse("big", 8 << 20))], "both"),   # (any size: a TiB, too)
}


def snapshot(top: Path, skip: Path) -> dict[str, tuple]:
    """Every file under `top` except `skip`: type, mode, owner, size, mtime, contents, target."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [n for n in dirnames if Path(dirpath, n) != skip]
        for name in ["."] + dirnames + filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            content = (hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode)
                       else os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
            seen[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, content)
    return seen


@pytest.mark.parametrize("mode", ["flatten", "overlay"])
@pytest.mark.parametrize("case", list(CORPUS))
def test_malicious_layer_cannot_touch_the_host(tmp_path, case, mode):
    """Check H1: each layer is refused with a clear UnsafeLayer, or neutralised; nothing outside
    the root changes, byte for byte, mtime included, and nothing new appears there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"do not touch\n")
    (outside / "keep-dir").mkdir()
    os.utime(outside / "sentinel", (1, 1))
    root = tmp_path / "d1" / "d2" / "d3" / "root"             # `..`s stay inside tmp_path
    root.mkdir(parents=True)
    make, must_raise = CORPUS[case]
    blobs = make(str(outside))
    before = snapshot(tmp_path, root)
    raised = None
    try:
        for i, blob in enumerate(blobs):
            target = root if mode == "flatten" else root / f"layer{i}"
            target.mkdir(exist_ok=True)
            media_type = GZIP if case == "gzip-bomb" else TAR
            apply_layer(open_layer(io.BytesIO(blob), media_type, limit=1 << 20), target,
                        overlay=mode == "overlay", limit=1 << 20 if case == "sparse-bomb" else None)
    except UnsafeLayer as e:
        raised = str(e)
    assert snapshot(tmp_path, root) == before
    if must_raise in ("both", mode):
        assert raised, f"{case} was applied without an error"
    if raised:
        assert len(raised.splitlines()) == 1 and len(raised) > 30, raised


def test_a_layer_is_refused_before_it_writes_more_than_its_limit(tmp_path, monkeypatch):
    """The limit counts what a layer's files hold, not only the tar's bytes: a sparse file was
    written out whole (3 GiB from 1.5 KB, then a TiB). Each size is claimed before the file is
    written, so nothing of the refused entry is written; and a layer of many small entries (an
    inode each, and a path in memory) ends at MAX_ENTRIES."""
    from mini_runtime.image import layers

    small = layer(sparse("one", 600 << 10), sparse("two", 600 << 10))
    assert len(small) <= 10240                            # (one tar record)
    (tmp_path / "a").mkdir()
    with pytest.raises(UnsafeLayer, match=r"'two': its 614400 bytes \(a sparse file, expanded\) would "
                                          r"make the layer's files larger than 1048576 bytes"):
        apply_layer(io.BytesIO(small), tmp_path / "a", overlay=True, limit=1 << 20)
    assert os.listdir(tmp_path / "a") == ["one"] and (tmp_path / "a" / "one").stat().st_size == 600 << 10
    (tmp_path / "b").mkdir()
    with pytest.raises(UnsafeLayer, match="'dense': its 2000000 bytes would make"):
        apply_layer(io.BytesIO(layer(f("dense", bytes(2_000_000)))), tmp_path / "b", overlay=False,
                    limit=1 << 20)
    assert os.listdir(tmp_path / "b") == []
    monkeypatch.setattr(layers, "MAX_ENTRIES", 100)
    (tmp_path / "c").mkdir()
    with pytest.raises(UnsafeLayer, match="layer has more than 100 entries"):
        apply_layer(io.BytesIO(layer(*(f(f"e{i}") for i in range(101)))), tmp_path / "c", overlay=True)
    assert len(os.listdir(tmp_path / "c")) == 100


def _header(name: str, kind: bytes, data: bytes, *, declared: int | None = None) -> bytes:
    """One raw header block and its data, padded: what tarfile's writer would not make."""
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data) if declared is None else declared
    return info.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)


def _old_gnu_sparse(extended: int) -> bytes:
    """An old GNU sparse header ('S') that says `extended` more blocks of its map follow."""
    block = bytearray(_header("s", tarfile.GNUTYPE_SPARSE, b""))
    block[482] = 1                                          # isextended
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block[:512])          # the checksum again
    more = bytearray(b"".join(b"%011o\0%011o\0" % (i + 1, 1) for i in range(21)).ljust(512, b"\0"))
    more[504] = 1
    return bytes(block[:512]) + bytes(more) * extended


END = bytes(1024)
PAX_RECORD = b"11 a=bcdef\n"
# name -> (a layer, words of the one line): tarfile raised IndexError or ValueError (a traceback),
# recursed (RecursionError), or read any size it was told into memory.
MALFORMED: dict[str, tuple[Callable[[], bytes], str]] = {
    "a sparse map that is not numbers": (lambda: layer(f("x", b"junk\n", pax=SPARSE_10)), "malformed extended header"),
    "a sparse map cut short": (lambda: layer(f("x", b"5\n1\n", pax=SPARSE_10)), "malformed extended header"),
    "an old GNU sparse map cut short": (lambda: _old_gnu_sparse(0), "malformed extended header"),
    "an old GNU sparse map of 4 MiB": (lambda: _old_gnu_sparse(8192) + END, "larger than 1048576 bytes"),
    "a GNU long name of 2 MiB": (lambda: _header("././@LongLink", tarfile.GNUTYPE_LONGNAME, b"n" * (2 << 20))
                                 + _header("f", tarfile.REGTYPE, b"") + END, "larger than 1048576 bytes"),
    "a GNU long name that declares 1 TiB": (lambda: _header("././@LongLink", tarfile.GNUTYPE_LONGNAME, b"n",
                                                           declared=1 << 40) + END, "larger than 1048576 bytes"),
    "PAX records of 2 MiB": (lambda: _header("p", tarfile.XHDTYPE, PAX_RECORD * (200 << 10))
                             + _header("f", tarfile.REGTYPE, b"") + END, "larger than 1048576 bytes"),
    "5000 PAX headers chained": (lambda: _header("p", tarfile.XHDTYPE, PAX_RECORD) * 5000
                                 + _header("f", tarfile.REGTYPE, b"") + END, "more than 8 extended headers"),
}
SPARSE_10 = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "x", "GNU.sparse.realsize": "10"}


@pytest.mark.parametrize("mode", ["flatten", "overlay"])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_or_huge_extended_headers_are_one_line(tmp_path, case, mode):
    """Headers are read as Go's archive/tar reads them: at most 1 MiB of them per member, at
    most 8 chained, and a malformed one is an invalid tar, not an IndexError or a ValueError."""
    make, words = MALFORMED[case]
    refused_in_one_line(make(), tmp_path, mode, "layer is not a valid tar: ", words)


def refused_in_one_line(blob: bytes, root: Path, mode: str, start: str, words: str) -> None:
    """Applying `blob` raises UnsafeLayer: one line, not too long, that starts and says so."""
    with pytest.raises(UnsafeLayer) as raised:
        apply_layer(io.BytesIO(blob), root, overlay=mode == "overlay")
    message = str(raised.value)
    assert message.startswith(start) and words in message, message
    assert len(message.splitlines()) == 1 and len(message) < 300, message


@pytest.mark.parametrize("mode", ["flatten", "overlay"])
@pytest.mark.parametrize("target", ["/etc/passwd", "../x", "a/../../x"])
def test_a_hard_link_out_of_the_layer_names_the_link(tmp_path, mode, target):
    """Was "layer entry '/etc/passwd' is absolute": the target named as if it were the entry."""
    refused_in_one_line(layer(hard("h", target)), tmp_path, mode, f"hard link 'h' -> {target!r}: ",
                        "the target must be a file already unpacked in this layer's root")


def test_the_headers_real_tars_have_still_read(tmp_path):
    """A global and a member PAX header, a GNU long name and link, a sparse file: all read."""
    long = "d/" + "n" * 200
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(long)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
        info = tarfile.TarInfo("link")
        info.type, info.linkname = tarfile.SYMTYPE, "t" * 300
        tar.addfile(info)
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global"}) as tar:
        info = tarfile.TarInfo("p" * 150)
        info.size, info.pax_headers = 1, {"SCHILY.xattr.user.a": "b"}
        tar.addfile(info, io.BytesIO(b"x"))
    flatten([out.getvalue(), pax.getvalue(), layer(sparse("s", 1 << 20))], tmp_path / "root")
    assert (tmp_path / "root" / long).read_bytes() == b"hi"
    assert os.readlink(tmp_path / "root" / "link") == "t" * 300
    assert (tmp_path / "root" / ("p" * 150)).read_bytes() == b"x"
    assert os.getxattr(tmp_path / "root" / ("p" * 150), "user.a") == b"b"
    assert (tmp_path / "root" / "s").read_bytes() == bytes((1 << 20) - 1) + b"x"


# name -> (a layer, what the one line says after "layer entry <name>: ")
BAD_HEADERS: dict[str, tuple[Callable[[], bytes], str]] = {
    "mtime NaN": (lambda: layer(f("m", pax={"mtime": "nan"})), "mtime nan is not a time"),
    "mtime 1e30": (lambda: layer(f("m", pax={"mtime": "1e30"})), "mtime 1e+30 is not a time"),
    "mtime -1e20": (lambda: layer(f("m", pax={"mtime": "-1e20"})), "mtime -1e+20 is not a time"),
    "a directory's mtime NaN": (lambda: layer(d("dd", pax={"mtime": "nan"})), "mtime nan is not a time"),
    "a symlink's mtime 1e30": (lambda: layer(sym("s", "x", pax={"mtime": "1e30"})), "mtime 1e+30 is not a time"),
    "uid -5": (lambda: layer(f("m", pax={"uid": "-5"})), "uid -5 is not in 0-4294967294"),
    "gid 2**40": (lambda: layer(f("m", pax={"gid": str(1 << 40)})), "gid 1099511627776 is not in 0-4294967294"),
    "uid 2**32-1 (chown's 'unchanged')": (lambda: layer(f("m", pax={"uid": str((1 << 32) - 1)})),
                                          "uid 4294967295 is not in 0-4294967294"),
    "an xattr over 64 KiB": (lambda: layer(f("x", xattrs={"user.big": b"v" * 70000})),
                             "xattr user.big: argument list too long"),
    "a capability that is garbage": (lambda: layer(f("x", xattrs={"security.capability": b"junk"})),
                                     "xattr security.capability: invalid argument"),
    "a 256-byte component": (lambda: layer(f("b" * 256)), "file name too long (a name is at most 255"),
    "a 5000-character name": (lambda: layer(f("a" * 5000)), "'... (5000 characters): file name too long"),
    "a 5000-character link target": (lambda: layer(sym("s", "t" * 5000)), "file name too long"),
}


@pytest.mark.parametrize("mode", ["flatten", "overlay"])
@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_a_header_or_entry_the_kernel_refuses_is_one_line_naming_the_entry(tmp_path, case, mode):
    """Was a traceback (OverflowError from os.utime or os.chown, ValueError for NaN) or a bare
    'mini: 12: argument list too long', or the whole 5000-character name: now an UnsafeLayer
    (`invalid archive: ...` in load) that names the entry, cut to 100 characters."""
    make, words = BAD_HEADERS[case]
    refused_in_one_line(make(), tmp_path, mode, "layer entry '", words)


@pytest.fixture
def deep_root(tmp_path):
    """tmp_path as a tmpfs of its own, whose trees go when it is unmounted: pytest's rmtree dies
    of a tree 2000 levels deep, and removing one directory at a time costs about 1 ms an rmdir
    on a disk mounted with `discard` (this CI host's /tmp): the 20,000 levels of ten deep entries
    took 30 to 50 s. The path-length limits these tests meet are the VFS's, the same on tmpfs."""
    from mini_runtime import syscalls

    syscalls.mount("tmpfs", str(tmp_path), "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NODEV, "mode=755,size=64m")
    try:
        yield tmp_path
    finally:
        syscalls.umount2(str(tmp_path))


@pytest.mark.parametrize("mode", ["flatten", "overlay"])
def test_a_path_longer_than_path_max_is_refused(deep_root, mode):
    """Walking one name at a time, mini made any depth: 2 KB of "a/" a level, so a 1 MiB PAX
    name was a chain of 500,000 directories. The kernel takes no path over 4095 bytes, so no
    image made one, and docker's unpacking refuses it too (ENAMETOOLONG)."""
    refused_in_one_line(layer(f("a/" * 2100 + "f")), deep_root, mode, "layer entry 'a/a/",
                        "file name too long (a path is at most 4095 bytes")
    assert os.listdir(deep_root) == []
    flatten([layer(f("a/" * 2046 + "f", b"deep"))], deep_root / "ok")   # 4093 bytes: a path
    half = os.open(deep_root / "ok" / ("a/" * 1000), os.O_RDONLY)   # (deep_root + 4093: too long)
    try:
        assert os.stat("a/" * 1046 + "f", dir_fd=half).st_size == 4
    finally:
        os.close(half)


def test_memory_for_deep_entries_grows_with_the_names_not_their_square(deep_root):
    """What a layer wrote was a set of every prefix of every path, as tuples: an entry 2000
    names deep cost 16 MB, so a tar of a few KB per entry filled the memory (a 400 KB import
    grew past 20 GB). Kept as a tree of names, ten such entries take a few MB."""
    import tracemalloc

    deep = layer(*(f(f"x{i}/" + "a/" * 2000 + "f") for i in range(10)))
    tracemalloc.start()
    try:
        apply_layer(io.BytesIO(deep), deep_root, overlay=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak >> 20} MiB"


def _peak_memory(work: Callable[[], object]) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_global_pax_header_is_dropped_as_docker_drops_it(tmp_path):
    """tarfile added a global header's records to every later member, each a copy: 20,000
    records before 20,000 entries (300 KB of gzip) took minutes and gigabytes. Go's
    archive/tar hands a global header over as an entry of its own, which docker skips."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"uid": "1234", **{f"k{i}": "v" for i in range(20000)}}) as tar:
        for i in range(300):
            tar.addfile(tarfile.TarInfo(f"f{i}"))
    peak = _peak_memory(lambda: apply_layer(io.BytesIO(out.getvalue()), tmp_path, overlay=True))
    assert (tmp_path / "f0").stat().st_uid == 0 and (tmp_path / "f299").exists()
    assert peak < 32 << 20, f"{peak >> 20} MiB"


def test_a_member_is_not_kept_once_read(tmp_path):
    """tarfile keeps every member it read, with its PAX records (up to 1 MiB each): 1 MB of
    gzip of such entries held 1 GB while it was imported, or copied in by `cp`."""
    big = layer(*(f(f"f{i}", pax={"comment": "c" * (400 << 10)}) for i in range(200)))
    peak = _peak_memory(lambda: apply_layer(io.BytesIO(big), tmp_path, overlay=True))
    assert len(os.listdir(tmp_path)) == 200 and peak < 32 << 20, f"{peak >> 20} MiB"


def test_neutralised_cases_do_what_a_layer_says(tmp_path):
    """What the "never" cases above leave in the root: the layer's own files, nothing else."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    flatten(CORPUS["write-over-symlink"][0](str(outside)), root)
    assert (root / "s").read_bytes() == b"pwned" and not (root / "s").is_symlink()
    flatten(CORPUS["chmod-through-symlink"][0](str(outside)), root)
    assert (root / "a").is_dir() and not (root / "a").is_symlink()
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o777
    flatten([layer(sym("t", str(outside)), hard("h", "t"))], root)
    assert os.readlink(root / "h") == str(outside)          # the symlink itself, linked


if __name__ == "__main__":
    # Child side of merged(): `python test_layers.py merged LOWERS UPPER WORK MNT SCRIPT`,
    # run under `unshare -m` so the overlay mount lives and dies with this process.
    _mount_and_dump(*sys.argv[2:7])
