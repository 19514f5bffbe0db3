"""Chapter 05 acceptance: images as layers, overlayfs copy-on-write, kept containers, and the
image commands (images, tag, rmi, history, import, save, load, export, diff, commit)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import MINI, image_variant, mini
from mini_runtime.cli.formatting import IMAGES_FORMAT
from mini_runtime import units
from mini_runtime.image import busybox, manifest
from mini_runtime.image.layout import sha256_digest
from mini_runtime.image.store import Store

pytestmark = [pytest.mark.root, pytest.mark.integration]


def _record(name: str) -> dict:
    from mini_runtime import container

    return container.load(container.find(name))


def _tree_digest(root: Path) -> str:
    """Names, modes and contents of a directory tree: did anything change?"""
    digest = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(root)):
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, root)} {st.st_mode} {st.st_size}".encode())
            if os.path.isfile(path) and not os.path.islink(path):
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def _image(name: str, config: dict, extra: dict[str, bytes] | None = None) -> str:
    """busybox plus an optional layer of extra files, with `config` merged into the image config."""
    layer = busybox.build_layer()
    layers = [layer]
    if extra:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for path, data in extra.items():
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
        layers.append(out.getvalue())
    base = busybox.image_config(sha256_digest(layer), 0)
    base["config"].update(config)
    base["rootfs"]["diff_ids"] = [sha256_digest(x) for x in layers]
    Store().add_image(name, layers, base)
    return name


def test_a_container_is_kept_after_it_exits_unless_rm():
    result = mini("run", "--name", "kept1", "busybox", "sh", "-c", "exit 3")
    assert result.returncode == 3
    record = _record("kept1")
    assert record["State"]["Status"] == "exited" and record["State"]["ExitCode"] == 3
    assert record["Name"] == "/kept1" and record["Image"] == Store().get("busybox").id
    again = mini("run", "--name", "kept1", "busybox", "true")
    assert again.returncode == 125 and 'The container name "/kept1" is already in use' in again.stderr
    assert mini("rm", "kept1").stdout == "kept1\n"
    assert mini("run", "--rm", "--name", "gone", "busybox", "true").returncode == 0
    assert mini("diff", "gone").returncode == 1


def test_only_an_rm_containers_overlay_is_volatile():
    """Unmounting an overlay syncs the whole filesystem of its upper dir (the host's disk), and
    the container's end waits for it. An `--rm` container's upper dir is thrown away at its end:
    its overlay is `volatile` (never synced), as podman's is. A kept one's must survive a crash."""
    show = ["busybox", "sh", "-c", "grep '^overlay / ' /proc/mounts"]
    removed = mini("run", "--rm", *show)
    assert removed.returncode == 0, removed.stderr
    assert "volatile" in removed.stdout       # (the kernel shows `volatile`, or `fsync=volatile`)
    kept = mini("run", "--name", "synced", *show)
    assert kept.returncode == 0 and "volatile" not in kept.stdout, kept.stdout
    again = mini("start", "-a", "synced")                   # (a fresh work dir: it mounts again)
    assert again.returncode == 0 and again.stdout.startswith("overlay / ") and "volatile" not in again.stdout
    mini("rm", "synced")


def test_copy_on_write_leaves_the_image_and_other_containers_alone(state_root):
    image = Store().get("busybox")
    lower = Store().layers_root / Store().layer_dirs(image)[0]
    before = _tree_digest(lower)
    writer = mini("run", "--name", "writer", "busybox", "sh", "-c",
                  "echo mine > /etc/motd; echo extra >> /etc/passwd; rm /bin/ls; ls / > /dev/null")
    assert writer.returncode == 0, writer.stderr
    other = mini("run", "--rm", "busybox", "sh", "-c", "cat /etc/motd; grep -c extra /etc/passwd; ls /bin/ls")
    assert other.stdout.split() == ["0", "/bin/ls"] and "motd" in other.stderr
    assert _tree_digest(lower) == before
    upper = state_root / "containers" / _record("writer")["Id"] / "upper"
    whiteout = os.lstat(upper / "bin" / "ls")
    assert (whiteout.st_mode & 0o170000, whiteout.st_rdev) == (0o020000, 0)  # char device 0/0
    assert (upper / "etc" / "motd").read_text() == "mine\n"


def test_diff_commit_and_run_the_committed_image():
    assert mini("run", "--name", "box", "busybox", "sh", "-c",
                "echo hi > /new; echo x >> /etc/passwd; rm /bin/ls").returncode == 0
    lines = mini("diff", "box").stdout.splitlines()
    for line in ("A /new", "C /etc", "C /etc/passwd", "C /bin", "D /bin/ls"):
        assert line in lines, lines
    committed = mini("commit", "-m", "a file, a change, a deletion", "box", "snap:1")
    assert committed.returncode == 0 and committed.stdout.startswith("sha256:")
    image = Store().get("snap:1")
    assert image.id == committed.stdout.strip()
    layer = Store().layout.read_blob(image.layers[-1]["digest"])
    assert image.diff_ids[-1] == sha256_digest(layer)  # the DiffID of the new layer, in the config
    names = tarfile.open(fileobj=io.BytesIO(layer)).getnames()
    assert "bin/.wh.ls" in names and "new" in names
    run = mini("run", "--rm", "snap:1", "sh", "-c", "cat /new; tail -1 /etc/passwd; ls /bin/ls")
    assert run.stdout.split() == ["hi", "x"] and "/bin/ls" in run.stderr
    history = mini("history", "snap:1").stdout.splitlines()
    assert history[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert history[1].startswith(image.short_id) and "a file, a change, a deletion" in history[1]
    assert mini("rm", "box").returncode == 0                  # (the name is free for other tests)


def test_commit_spools_the_layer_and_refuses_more_than_a_layer_may_hold(tmp_path, monkeypatch):
    """A container's files can be any size at no cost (`truncate -s 1T`, a sparse file): commit
    held the whole layer tar in memory (2.1 GB of RSS for a 2 GiB sparse file; a TiB is the
    OOM killer), and would write more than any layer may unpack to. The tar is now spooled into
    the store as it is written, and refused, before it is written, past the layers' limit."""
    from mini_runtime.image import layers
    from mini_runtime.image.pack import write_tar
    from mini_runtime.image.tree import UnsafeLayer

    assert mini("run", "--name", "sparse", "busybox", "truncate", "-s", "300M", "/big").returncode == 0
    try:
        measure = ("import os, sys; pid = os.spawnv(os.P_NOWAIT, sys.argv[1], sys.argv[1:]); _, status, usage"
                   " = os.wait4(pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")
        result = subprocess.run([sys.executable, "-c", measure, *MINI, "commit", "sparse", "sparse:1"],
                                capture_output=True, text=True, timeout=120)
        code, peak = map(int, result.stdout.splitlines()[-1].split())
        assert code == 0, result.stderr
        assert peak < 100 << 10, f"peak RSS {peak} KiB"
        assert Store().get("sparse:1").layers[-1]["size"] > 300 << 20
        assert not [p.name for p in Store().layout.root.glob("blobs/sha256/.*")]   # (no spool left)
    finally:
        mini("rm", "sparse")
        mini("rmi", "sparse:1")
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "small").write_bytes(b"x" * 1000)
    (upper / "holes").touch()
    os.truncate(upper / "holes", 8 << 20)
    monkeypatch.setattr(layers, "DEFAULT_LIMIT", 4 << 20)
    out = io.BytesIO()
    with pytest.raises(UnsafeLayer, match=r"'/holes': 8388608 bytes would make the layer larger than 4194304"):
        write_tar(out, upper, upper=True)
    assert len(out.getvalue()) < 1 << 20                                     # nothing of it written
    write_tar(io.BytesIO(), upper)                                           # (export: the user's)


def test_save_streams_each_blob_and_refuses_a_corrupt_one(tmp_path):
    """save read every blob whole into memory (a 200 MB layer: 200 MB more of RSS), and a blob
    changed in the store was a ValueError traceback. Now blobs stream out, checked as they go:
    one line, exit 1, and no file."""
    env = dict(os.environ, MINI_ROOT=str(tmp_path / "root"))
    layer = tmp_path / "fs.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 200 << 20
        with open("/dev/zero", "rb") as zeros:
            tar.addfile(info, zeros)
    assert mini("import", str(layer), "big:1", env=env, timeout=120).returncode == 0
    layer.unlink()
    measure = ("import os, sys; pid = os.spawnv(os.P_NOWAIT, sys.argv[1], sys.argv[1:]); _, status, usage"
               " = os.wait4(pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")
    out = tmp_path / "big.tar"
    result = subprocess.run([sys.executable, "-c", measure, *MINI, "save", "-o", str(out), "big:1"],
                            capture_output=True, text=True, timeout=120, env=env)
    code, peak = map(int, result.stdout.splitlines()[-1].split())
    assert code == 0 and out.stat().st_size > 200 << 20, result.stderr
    assert peak < 100 << 10, f"peak RSS {peak} KiB"
    out.unlink()
    blob = Store(tmp_path / "root").layout.blob_path(Store(tmp_path / "root").get("big:1").layers[0]["digest"])
    blob.chmod(0o644)
    with blob.open("r+b") as f:
        f.seek(100 << 20)
        f.write(b"x")
    result = mini("save", "-o", str(out), "big:1", env=env, timeout=120)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "in the store is corrupt" in result.stderr and not out.exists()


def test_a_failed_save_or_export_leaves_no_file(tmp_path):
    """-o FILE appears only complete: a missing image or container leaves no FILE, no temp file."""
    for command in (["save", "-o", str(tmp_path / "out.tar"), "no-such-image:1"],
                    ["export", "-o", str(tmp_path / "out.tar"), "no-such-container"]):
        result = mini(*command)
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
        assert list(tmp_path.iterdir()) == []


def test_save_and_export_never_replace_a_device_a_pipe_or_a_directory(tmp_path):
    """-o FILE is written beside FILE and renamed over it: a device node or a named pipe there
    would become a regular file (`mini save -o /dev/null` once replaced /dev/null). Refused
    first, as docker's ValidateOutputPath does, and left as they were."""
    device, fifo, directory = tmp_path / "null", tmp_path / "fifo", tmp_path / "dir"
    os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))      # a /dev/null of our own
    os.mkfifo(fifo)
    directory.mkdir()
    cases = {device: "got a device", fifo: "got a named pipe", directory: "is a directory",
             tmp_path / "none" / "x.tar": 'directory "' + str(tmp_path / "none") + '" does not exist'}
    for command in ("save", "export"):
        for path, words in cases.items():
            result = mini(command, "-o", str(path), "busybox" if command == "save" else "no-such-container")
            assert (result.returncode, result.stdout) == (1, "") and words in result.stderr, result.stderr
    assert stat.S_ISCHR(device.lstat().st_mode) and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "fifo", "null"]


def test_export_is_the_containers_whole_filesystem(tmp_path):
    assert mini("run", "--name", "exp", "busybox", "sh", "-c", "echo data > /root/f; rm /bin/ls").returncode == 0
    target = tmp_path / "exp.tar"
    assert mini("export", "-o", str(target), "exp").returncode == 0
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("root/f").read() == b"data\n"
    assert "bin/busybox" in names and "bin/ls" not in names and not any(".wh." in n for n in names)


def test_images_tag_rmi_like_docker():
    image = Store().get("busybox")
    assert mini("tag", "busybox", "me/app:v1").returncode == 0
    listed = mini("images").stdout.splitlines()
    assert listed[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:3] == ["me/app", "v1", image.short_id] for line in listed)
    assert mini("rmi", "me/app:v1").stdout == "Untagged: me/app:v1\n"
    mini("tag", "busybox", "me/app:v2")
    assert mini("rmi", "--no-prune", "me/app:v2").stdout == "Untagged: me/app:v2\n"   # (no parents)
    mini("tag", "busybox", "other:x")
    assert mini("run", "--name", "user-of-other", "other:x", "true").returncode == 0
    refused = mini("rmi", image.short_id)
    assert refused.returncode == 1 and "conflict" in refused.stderr
    assert mini("rmi", "nosuch:tag").returncode == 1
    mini("rm", "user-of-other")
    assert mini("rmi", "other:x").stdout == "Untagged: other:x\n"  # busybox:latest still names it
    assert image.short_id in mini("images", "-q").stdout.split()
    assert not any(line.startswith(("other ", "me/app ")) for line in mini("images").stdout.splitlines())


def test_an_image_by_a_short_prefix_of_its_id_as_docker():
    """docker looks a name up first, then any unique prefix of an image id: `run 6464`."""
    image = Store().get("busybox")
    short = image.id.removeprefix("sha256:")[:4]
    ran = mini("run", "--rm", short, "echo", "ok")
    assert (ran.returncode, ran.stdout) == (0, "ok\n"), ran.stderr
    shown = mini("image", "inspect", "-f", "{{.Id}}", short)
    assert shown.stdout == f"{image.id}\n", shown.stderr
    assert mini("tag", "busybox", "prefix/two:1").returncode == 0
    try:                                   # by id, an image of two names is refused unforced
        refused = mini("rmi", short)
        assert refused.returncode == 1 and "referenced in multiple repositories" in refused.stderr
    finally:
        assert mini("rmi", "prefix/two:1").returncode == 0
    assert mini("run", "--rm", "ffffffffff" if not image.id[7:].startswith("f") else "eeeeeeeeee",
                "true").returncode == 125


def test_an_unknown_image_is_dockers_no_such_image_but_for_run_and_create():
    for command in (["rmi"], ["history"], ["tag"], ["save", "-o", "/tmp/never-written.tar"]):
        result = mini(*command, "nope", *(["x:1"] if command == ["tag"] else []))
        assert result.returncode == 1 and "No such image: nope:latest" in result.stderr, (command, result.stderr)
    for command, code in ((["run", "--rm"], 125), (["run", "-d"], 125), (["create"], 1)):   # (docker's
        result = mini(*command, "nope", "true")                          # create: its pull failed, 1)
        assert result.returncode == code and result.stderr.startswith(
            "mini: Unable to find image 'nope:latest' locally"), (command, result.stderr)


def test_tag_refuses_a_name_that_does_not_parse_with_dockers_prefix_before_looking_up():
    """docker's client parses both names before it asks for the image: `tag nope Bad:Name` is
    about the name, not "No such image", and says which name with docker's prefix (exit 1)."""
    for source, target in (("busybox", "Bad:Name"), ("nope", "Bad:Name"), ("Bad:Name", "x")):
        result = mini("tag", source, target)
        assert (result.returncode, result.stderr) == (1, 'mini: Error parsing reference: "Bad:Name" is not a '
                                                      "valid repository/tag: invalid reference format: repository "
                                                      "name must be lowercase\n"), (source, target)
    assert "bad" not in mini("images", "--format", "{{.Repository}}").stdout.lower().split()


def test_save_to_a_full_disk_or_a_closed_pipe():
    """A full disk is one line and exit 1 (docker's code outside run and create); a reader that
    went away (`mini save | head -c 10`) is silence and 141, as for a program killed by SIGPIPE."""
    with open("/dev/full", "wb") as full:
        result = subprocess.run(MINI + ["save", "busybox"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert (result.returncode, result.stderr) == (1, "mini: no space left on device\n")
    reader, writer = os.pipe()
    with subprocess.Popen(MINI + ["save", "busybox"], stdout=writer, stderr=subprocess.PIPE, text=True) as proc:
        os.close(writer)
        assert os.read(reader, 10)
        os.close(reader)                                # the reader goes away
        assert (proc.wait(timeout=30), proc.stderr.read()) == (141, "")


def test_a_digest_or_an_image_id_cannot_be_a_tag():
    """docker's refusals: a digest names content, 64 hex digits look like an image ID."""
    digest_ref = "bb@sha256:" + "0" * 64
    for target, words in ((digest_ref, "refusing to create a tag with a digest reference"),
                          ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
                          ("sha256:" + "b" * 64, "ambiguous tag using digest algorithm as name"),
                          ("sha256", "ambiguous tag using digest algorithm as name")):
        for command in (["tag", "busybox", target], ["import", "-", target]):
            result = mini(*command, input="")
            assert result.returncode == 1 and words in result.stderr, (command, result.stderr)
    listed = mini("images", "--format", "{{.Repository}}").stdout.split()
    assert "bb" not in listed and "sha256" not in listed


def test_ps_and_inspect_s_show_what_the_container_wrote():
    """`ps -s` and `inspect -s`: the bytes of the upper dir (a file with two names once), and
    with the image's (docker's "virtual" size); `.Size` in a --format asks for them too."""
    image = Store().get("busybox")
    assert mini("run", "--name", "sized", "busybox", "sh", "-c",
                "dd if=/dev/zero of=/f bs=1000 count=300 2>/dev/null && ln /f /g").returncode == 0
    try:
        sizes = mini("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", "sized").stdout.split()
        assert sizes == ["300000", str(300000 + image.size)]
        assert mini("inspect", "-f", "{{.SizeRw}}", "sized").stdout == "<no value>\n"   # asked for only
        virtual = f"300kB (virtual {units.human_size(300000 + image.size)})"
        assert mini("ps", "-a", "-f", "name=sized", "--format", "{{.Size}}").stdout == virtual + "\n"
        table = mini("ps", "-as", "-f", "name=sized").stdout.splitlines()
        assert table[0].split()[-1] == "SIZE" and table[1].endswith(virtual)
    finally:
        assert mini("rm", "sized").returncode == 0


def test_images_format_as_docker():
    """`images --format`: docker's fields and its table; CreatedAt as Go prints a time."""
    image = Store().get("busybox")
    assert mini("tag", "busybox", "fmt/app:v2").returncode == 0
    try:
        named = mini("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
        assert f"fmt/app:v2 {image.short_id}" in named and f"busybox:latest {image.short_id}" in named
        lines = mini("images", "--format", "table {{.Repository}}\\t{{.Size}}").stdout.splitlines()
        assert lines[0].split() == ["REPOSITORY", "SIZE"] and len(lines) == len(named) + 1
        created = mini("images", "--format", "{{.CreatedAt}}").stdout.splitlines()[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", created)
        def ago(text: str) -> list[list[str]]:   # "2 seconds ago" may be "3 seconds ago" a call
            return [re.sub(r"(Less than a second|About an? \w+|\d+ \w+) ago", "AGO", line).split()
                    for line in text.splitlines()]  # later, and the column's width with it
        assert ago(mini("images").stdout) == ago(mini("images", "--format", IMAGES_FORMAT).stdout)
        assert ago(mini("image", "ls").stdout) == ago(mini("images").stdout)      # docker's other name
        bad = mini("images", "--format", "{{.Nope")
        assert bad.returncode == 1 and bad.stderr.startswith("mini: template parsing error:")
    finally:
        mini("rmi", "fmt/app:v2")


def _dated(name: str | None, created: float, labels: dict[str, str]) -> str:
    """An image of busybox's layer, created at `created`, with `labels`: its id."""
    layer = busybox.build_layer()
    config = busybox.image_config(sha256_digest(layer), created)
    config["config"]["Labels"] = labels
    return Store().add_image(name, [layer], config).id


def test_images_filters_as_docker():
    """`images [REPOSITORY[:TAG]]` and `-f`: docker's reference (Go's path.Match), dangling,
    label, before and since; newest first; `-q` prints an id per row, as docker does."""
    old = _dated("flt/old:v1", 1_000_000_000, {"tier": "db"})
    mid = _dated("flt/mid:v1", 1_100_000_000, {"tier": "web", "team": "a"})
    new = _dated(None, 1_200_000_000, {"tier": "web"})
    assert mini("tag", "flt/mid:v1", "flt/mid:v2").returncode == 0
    try:
        def listed(*words: str) -> list[str]:
            result = mini("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", *words)
            assert result.returncode == 0, result.stderr
            return [line for line in result.stdout.splitlines() if line.split()[-1] in (old, mid, new)]
        assert listed("flt/mid") == [f"flt/mid:v1 {mid}", f"flt/mid:v2 {mid}"]
        assert listed("flt/mid:v2") == [f"flt/mid:v2 {mid}"]
        assert listed("flt/*") == [f"flt/mid:v1 {mid}", f"flt/mid:v2 {mid}", f"flt/old:v1 {old}"]
        assert listed("-f", "reference=*") == []                  # `*` stops at `/`
        assert listed("-f", "reference=flt/[m]id:v?") == [f"flt/mid:v1 {mid}", f"flt/mid:v2 {mid}"]
        assert listed("-f", "dangling=true") == [f"<none>:<none> {new}"]
        assert f"<none>:<none> {new}" not in listed("-f", "dangling=false")
        assert listed("-f", "label=tier=web") == [f"<none>:<none> {new}", f"flt/mid:v1 {mid}",
                                                 f"flt/mid:v2 {mid}"]
        assert listed("-f", "label=tier=web", "-f", "label=team") == [f"flt/mid:v1 {mid}", f"flt/mid:v2 {mid}"]
        assert listed("-f", "before=flt/mid:v1") == [f"flt/old:v1 {old}"]
        assert listed("-f", "since=flt/mid:v2", "-f", "dangling=true") == [f"<none>:<none> {new}"]
        quiet = mini("images", "-q", "--no-trunc", "flt/mid").stdout.split()
        assert quiet == [mid, mid]                                 # a row per name, as docker
        table = mini("images", "-a", "--digests", "flt/old").stdout.splitlines()
        assert table[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
        assert table[1].split()[:3] == ["flt/old", "v1", "<none>"]
        for words, message in ((["-f", "colour=red"], "invalid filter 'colour'"),
                               (["-f", "dangling=maybe"], "Invalid filter 'dangling=[maybe]'"),
                               (["-f", "reference=flt/["], "syntax error in pattern"),
                               (["-f", "before=nosuch"], "No such image: nosuch:latest"),
                               (["-f", "label"], 'invalid argument "label" for "-f, --filter" flag: '
                                                 'bad format of filter (expected name=value)')):
            bad = mini("images", *words)
            code = 125 if words == ["-f", "label"] else 1      # a flag's error, or the daemon's
            assert (bad.returncode, bad.stderr) == (code, f"mini: {message}\n"), words
    finally:
        mini("rmi", "flt/old:v1", "flt/mid:v1", "flt/mid:v2", new)


def test_inspect_an_image_as_docker():
    """`inspect` takes an image where no container has the name (`--type` and `image inspect`
    ask for one kind); docker's fields, and its words when there is none."""
    image = Store().get("busybox")
    found = json.loads(mini("inspect", "busybox").stdout)
    assert [d["Id"] for d in found] == [image.id] and "busybox:latest" in found[0]["RepoTags"]
    assert found[0]["Config"] == image.config["config"]
    assert found[0]["RootFS"] == {"Type": "layers", "Layers": image.diff_ids}
    assert found[0]["Os"] == "linux" and found[0]["Size"] == image.size
    by_id = mini("image", "inspect", "-f", "{{.Id}} {{.Os}}", image.short_id)
    assert (by_id.returncode, by_id.stdout) == (0, f"{image.id} linux\n")
    for words, kind in ((["container", "inspect", "busybox"], "container"),
                        (["inspect", "--type", "image", "nosuch"], "image"), (["inspect", "nosuch"], "object")):
        missing = mini(*words)
        assert (missing.returncode, missing.stdout) == (1, "[]\n")
        assert missing.stderr == f"Error: No such {kind}: {words[-1]}\n"


def test_rmi_deletes_blobs_and_unpacked_layers_of_the_last_name():
    _image("solo:1", {"Cmd": ["cat", "/only-here"]}, {"only-here": b"solo\n"})
    store = Store()
    image = store.get("solo:1")
    assert mini("run", "--rm", "solo:1").stdout == "solo\n"
    top = store.layers_root / image.chain_ids[-1].removeprefix("sha256:")
    assert top.is_dir()
    removed = mini("rmi", "solo:1")
    assert removed.stdout.splitlines() == ["Untagged: solo:1", f"Deleted: {image.id}"]
    assert not top.exists() and not store.layout.blob_path(image.id).exists()
    assert store.layout.blob_path(image.layers[0]["digest"]).exists()  # busybox's layer stays


def test_save_and_load_round_trip_keeps_ids(tmp_path, monkeypatch):
    _image("saved:1", {"Cmd": ["cat", "/hello"]}, {"hello": b"hello from a saved image\n"})
    ids = {name: Store().get(name).id for name in ("busybox:latest", "saved:1")}
    archive = tmp_path / "images.tar"
    assert mini("save", "-o", str(archive), "busybox", "saved:1", "busybox").returncode == 0   # (once)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        docker_manifest = json.load(tar.extractfile("manifest.json"))
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert sorted(tag for entry in docker_manifest for tag in entry["RepoTags"]) == ["busybox:latest", "saved:1"]
    monkeypatch.setenv("MINI_ROOT", str(tmp_path / "elsewhere"))
    loaded = mini("load", "-i", str(archive))
    assert loaded.stdout.splitlines() == ["Loaded image: busybox:latest", "Loaded image: saved:1"]
    assert {name: Store().get(name).id for name in ids} == ids
    assert mini("run", "--rm", "saved:1").stdout == "hello from a saved image\n"


def test_import_a_filesystem_tarball(tmp_path):
    assert mini("run", "--name", "src", "busybox", "sh", "-c", "echo imported > /marker").returncode == 0
    exported = tmp_path / "fs.tar"
    mini("export", "-o", str(exported), "src")
    result = mini("import", "-m", "from a tarball", str(exported), "flat:1")
    assert result.returncode == 0 and result.stdout.startswith("sha256:")
    assert mini("run", "--rm", "flat:1", "cat", "/marker").stdout == "imported\n"
    nocmd = mini("run", "--rm", "flat:1")
    assert nocmd.returncode == 125 and "no command" in nocmd.stderr
    # --change gives the imported image what a Dockerfile would: here a command and a variable.
    changed = mini("import", "-c", 'CMD ["sh", "-c", "cat /marker; echo $MODE"]', "-c", "ENV MODE=prod",
                   str(exported), "flat:2")
    assert changed.returncode == 0, changed.stderr
    assert mini("run", "--rm", "flat:2").stdout == "imported\nprod\n"
    refused = mini("import", "-c", "RUN rm -rf /", str(exported), "flat:3")
    assert (refused.returncode, refused.stderr) == (1, "mini: run is not a valid change command\n")
    assert mini("image", "inspect", "flat:3").returncode == 1


def test_image_config_becomes_the_process_A9():
    _image("cfg:1", {"Entrypoint": ["sh", "-c"], "Cmd": ["echo $A $(pwd) $(id -u)"],
                     "Env": ["A=from-image", f"PATH={busybox.DEFAULT_PATH}"], "WorkingDir": "/var", "User": "nobody"})
    assert mini("run", "--rm", "cfg:1").stdout == "from-image /var 65534\n"
    assert mini("run", "--rm", "-e", "A=flag", "-u", "root", "cfg:1", "echo $A $(id -u)").stdout == "flag 0\n"
    assert mini("run", "--rm", "--entrypoint", "id", "cfg:1", "-g").stdout == "65534\n"  # Cmd dropped
    assert mini("run", "--rm", "-u", "1234:5", "busybox", "id").stdout.startswith("uid=1234 gid=5")
    unknown = mini("run", "--rm", "-u", "ghost", "busybox", "true")
    assert unknown.returncode == 125
    assert "unable to find user ghost: no matching entries in passwd file" in unknown.stderr


def test_run_P_of_an_image_exposing_no_port_runs_on_network_none():
    """With --network none there is nothing to publish: docker's daemon discards the bindings
    and does not read the exposed ports (on the bridge they are refused: test_network_cli)."""
    _image("badports:1", {"ExposedPorts": {"80/tcp": {}, "notaport": {}}})
    result = mini("run", "--rm", "-P", "--network", "none", "badports:1", "true")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert mini("rmi", "badports:1").returncode == 0


def test_groups_are_the_users_from_etc_group_plus_the_gid_as_in_docker():
    """setgroups was never called without -u (the host's groups stayed), and with -u it left
    the gid out: docker's `run busybox id` says groups=0(root), with the image's memberships."""
    assert mini("run", "--rm", "busybox", "id").stdout == "uid=0(root) gid=0(root) groups=0(root)\n"
    image_variant("wheel:1", drop=("etc/group",),
                  add=(("etc/group", tarfile.REGTYPE, b"root:x:0:\nwheel:x:10:root,nobody\nnogroup:x:65534:\n"),))
    ids = {user: mini("run", "--rm", *(["-u", user] if user else []), "wheel:1", "id").stdout
           for user in ("", "nobody", "1000", "1000:1000", "nobody:0")}
    assert ids == {"": "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n",
                   "nobody": "uid=65534(nobody) gid=65534(nogroup) groups=10(wheel),65534(nogroup)\n",
                   "1000": "uid=1000 gid=0(root) groups=0(root)\n",        # a bare uid: the gid only
                   "1000:1000": "uid=1000 gid=1000 groups=1000\n",         # an explicit group: that one
                   "nobody:0": "uid=65534(nobody) gid=0(root) groups=0(root)\n"}
    assert mini("rmi", "wheel:1").returncode == 0


@pytest.mark.parametrize("file, kind, target, user, words", [
    ("passwd", tarfile.SYMTYPE, "/dev/zero", "nobody", "unable to find user nobody: /etc/passwd is not a regular file"),
    ("passwd", tarfile.SYMTYPE, "/dev/zero", "1000:1000", "unable to find user 1000: /etc/passwd is not a regular file"),
    ("passwd", tarfile.FIFOTYPE, b"", "", "unable to find user 0: /etc/passwd is not a regular file"),
    ("group", tarfile.SYMTYPE, "/dev/zero", "", "unable to find groups of user 0: /etc/group is not a regular file"),
    ("group", tarfile.FIFOTYPE, b"", "root:1", "unable to find group 1: /etc/group is not a regular file"),
])
def test_an_etc_passwd_or_group_that_is_no_file_is_125_not_a_read_without_end(file, kind, target, user, words):
    """An image's /etc/passwd -> /dev/zero made the child read without end (13 GB after 20 s;
    --memory here only bounds the damage before the fix), a FIFO blocked it for good."""
    image_variant("hostile-etc:1", drop=(f"etc/{file}",), add=((f"etc/{file}", kind, target),))
    result = mini("run", "--rm", "--memory", "64m", *(["-u", user] if user else []), "hostile-etc:1", "id")
    assert (result.returncode, result.stdout) == (125, ""), result.stderr
    assert result.stderr == f"mini: container setup failed: {words}\n"
    assert mini("rmi", "hostile-etc:1").returncode == 0


def test_many_layers_fit_in_one_overlay_mount():
    layers, diff_ids = [busybox.build_layer()], []
    for i in range(150):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(f"layers/{i}")
            info.size = len(str(i))
            tar.addfile(info, io.BytesIO(str(i).encode()))
        layers.append(out.getvalue())
    config = busybox.image_config(sha256_digest(layers[0]), 0)
    config["rootfs"]["diff_ids"] = [sha256_digest(x) for x in layers]
    Store().add_image("tall:1", layers, config)
    result = mini("run", "--rm", "tall:1", "sh", "-c", "ls /layers | wc -l; cat /layers/149", timeout=120)
    assert result.stdout.split() == ["150", "149"], result.stderr


def test_platform_selection_A10():
    amd64 = {"mediaType": manifest.OCI_MANIFEST, "digest": "sha256:" + "a" * 64,
             "platform": {"os": "linux", "architecture": "amd64"}}
    arm64 = {"mediaType": manifest.OCI_MANIFEST, "digest": "sha256:" + "b" * 64,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
    attestation = {"mediaType": manifest.OCI_MANIFEST, "digest": "sha256:" + "c" * 64,
                   "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    index = {"manifests": [attestation, arm64, amd64]}
    x86 = {"os": "linux", "architecture": "amd64", "variant": ""}
    assert manifest.select(index, lambda d: {}, x86) == amd64
    assert manifest.select(index, lambda d: {}, {"os": "linux", "architecture": "arm64", "variant": ""}) == arm64
    nested = {"manifests": [{"mediaType": manifest.OCI_INDEX, "digest": "sha256:" + "d" * 64}]}
    assert manifest.select(nested, lambda d: index, x86) == amd64
    with pytest.raises(manifest.NoMatchingPlatform, match="linux/s390x"):
        manifest.select(index, lambda d: {}, {"os": "linux", "architecture": "s390x"})


def test_a_failed_start_with_rm_leaves_no_container(state_root):
    containers = state_root / "containers"
    before = set(os.listdir(containers)) if containers.exists() else set()
    assert mini("run", "--rm", "busybox", "/no/such/command").returncode == 127
    assert mini("run", "--rm", "-u", "ghost", "busybox", "true").returncode == 125
    assert set(os.listdir(containers)) == before


def test_load_an_oci_archive_with_a_multi_platform_index_of_docker_media_types(tmp_path):
    """An index (an attestation, arm64, this machine's platform) of Docker schema 2 manifests
    with gzip layers: load picks this platform's manifest and keeps its digest."""
    import gzip

    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        digest = sha256_digest(data)
        blobs[digest] = data
        return digest

    def image(marker: str, arch: str) -> dict:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("platform")
            info.size = len(marker)
            tar.addfile(info, io.BytesIO(marker.encode()))
        layers = [busybox.build_layer(), out.getvalue()]
        config = busybox.image_config(sha256_digest(layers[0]), 0)
        config["architecture"], config["config"]["Cmd"] = arch, ["cat", "/platform"]
        config["rootfs"]["diff_ids"] = [sha256_digest(x) for x in layers]
        config_bytes = json.dumps(config).encode()
        zipped = [gzip.compress(x, mtime=0) for x in layers]
        body = json.dumps({"schemaVersion": 2, "mediaType": manifest.DOCKER_MANIFEST,
                           "config": {"mediaType": manifest.DOCKER_CONFIG, "digest": put(config_bytes),
                                      "size": len(config_bytes)},
                           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                       "digest": put(z), "size": len(z)} for z in zipped]}).encode()
        return {"mediaType": manifest.DOCKER_MANIFEST, "digest": put(body), "size": len(body)}

    here = manifest.host_platform()["architecture"]
    other = "arm64" if here != "arm64" else "amd64"
    chosen = image("mine", here)
    entries = [dict(image("attestation", "unknown"), platform={"os": "unknown", "architecture": "unknown"}),
               dict(image("other", other), platform={"os": "linux", "architecture": other}),
               dict(chosen, platform={"os": "linux", "architecture": here})]
    index = json.dumps({"schemaVersion": 2, "mediaType": manifest.DOCKER_LIST, "manifests": entries}).encode()
    top = {"mediaType": manifest.DOCKER_LIST, "digest": put(index), "size": len(index),
           "annotations": {"org.opencontainers.image.ref.name": "multi:1"}}
    archive = tmp_path / "multi.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()),
                           *((f"blobs/sha256/{d[7:]}", b) for d, b in blobs.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert mini("load", "-i", str(archive)).stdout == "Loaded image: multi:1\n"
    assert Store().get("multi:1").manifest_digest == chosen["digest"]
    assert mini("run", "--rm", "multi:1").stdout == "mine"
    mini("rmi", "multi:1")


def test_loading_an_image_with_a_malicious_layer_keeps_nothing_of_it(tmp_path):
    """H1 through `load`: the layer is refused at load time, as docker refuses it, and no blob,
    unpacked layer or name of the image stays; the file it aimed at is untouched."""
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("untouched\n")
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../" * 12 + str(sentinel).lstrip("/"))
        info.size = 5
        tar.addfile(info, io.BytesIO(b"evil\n"))
    layers = [busybox.build_layer(), evil.getvalue()]
    config = busybox.image_config(sha256_digest(layers[0]), 0)
    config["rootfs"]["diff_ids"] = [sha256_digest(x) for x in layers]
    config_bytes = json.dumps(config).encode()
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [("config.json", config_bytes), ("base/layer.tar", layers[0]), ("evil/layer.tar", layers[1]),
                           ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["evil:1"],
                                                          "Layers": ["base/layer.tar", "evil/layer.tar"]}]).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    store = Store()
    store.layer_dirs(store.get("busybox"))
    blobs, layer_dirs = store.layout.blobs(), set(os.listdir(store.layers_root))
    result = mini("load", "-i", str(archive))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and "climb out of the image root" in result.stderr
    assert sentinel.read_text() == "untouched\n"
    assert store.layout.blobs() == blobs and set(os.listdir(store.layers_root)) == layer_dirs
    assert mini("images").stdout.count("evil") == 0


def test_history_takes_docker_boolean_syntax():
    raw = mini("history", "--human=false", "busybox").stdout.splitlines()[1]
    assert raw.split()[1].startswith("20") and raw.split()[-1].isdigit()
    assert mini("run", "--rm", "busybox", "echo", "--human=false").stdout == "--human=false\n"


def test_history_format_has_docker_s_fields_and_headers():
    rows = mini("history", "--format", "{{.ID}}|{{.CreatedAt}}|{{.Size}}|{{.CreatedBy}}", "busybox")
    image_id, created_at, size, by = rows.stdout.splitlines()[0].split("|")
    assert mini("images", "-q", "busybox").stdout.strip() == image_id
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", created_at)
    assert re.fullmatch(r"[\d.]+[kMG]?B", size) and by.endswith("…") and len(by) == 45
    raw = mini("history", "-H=false", "busybox").stdout.splitlines()
    assert re.split(r"\s{2,}", raw[0])[:2] == ["IMAGE", "CREATED AT"] and raw[1].split()[1] == created_at
    table = mini("history", "--no-trunc", "--format", r"table {{.ID}}\t{{.Comment}}", "busybox").stdout
    assert table.splitlines()[0].split() == ["IMAGE", "COMMENT"] and "sha256:" in table
    wrong = mini("history", "--format", "{{.Nope}}", "busybox")
    assert wrong.returncode == 1 and "can't evaluate field Nope in type *image.historyContext" in wrong.stderr


def test_a_store_damaged_by_hand_is_one_line_and_MINI_DEBUG_shows_the_traceback(state_root):
    """No input a user can give reaches a traceback; a file under MINI_ROOT truncated by hand
    (here an image's config blob) is not input, and mini cannot name it, but the user still gets
    one line that says what to do. The tests run with MINI_DEBUG=1, which keeps the traceback."""
    name = _image("mini-damaged-by-hand:1", {"Labels": {"damaged": "yes"}})
    image_id = json.loads(mini("inspect", "-f", "{{json .Id}}", name).stdout)
    blob = state_root / "images" / "blobs" / "sha256" / image_id.removeprefix("sha256:")
    kept = blob.read_bytes()
    try:
        blob.write_bytes(kept[:10])
        quiet = {k: v for k, v in os.environ.items() if k != "MINI_DEBUG"}
        done = mini("images", env=quiet)
        assert done.returncode == 1, done
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mini: internal error: "), done.stderr
        assert "MINI_DEBUG=1" in lines[0] and str(state_root) in lines[0]
        loud = mini("images")
        assert loud.returncode != 0 and "Traceback" in loud.stderr, loud
    finally:
        blob.write_bytes(kept)
        assert mini("rmi", name).returncode == 0
