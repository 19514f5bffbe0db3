"""`mini cp` (chapter 06): both directions, running and stopped containers, `-`, docker's path
semantics and words, and the container's files as an attacker's: symlinks to / and ../../..,
a hostile tar on stdin, a symlink swapped during the copy (CVE-2018-15664)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import MINI, mini

#: The running container's files: a directory, a file, and links that point out of it.
SETUP = ("mkdir -p /d/sub && echo inside > /d/sub/f && chmod 640 /d/sub/f && touch -d '2001-02-03 04:05:06' /d/sub/f"
         " && ln -s / /d/up && ln -s ../../.. /d/dots && ln -s sub/f /d/flink && chown 7:8 /d/sub/f")


def ok(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = mini(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result


def tar_of(*entries: tuple[str, str, str]) -> bytes:
    """A tar of (name, kind, value) entries: f = file with that content, l = symlink, h = hard link."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            if kind == "f":
                info.size, info.mode = len(value), 0o644
                tar.addfile(info, io.BytesIO(value.encode()))
            else:
                info.type, info.linkname = {"l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind], value
                tar.addfile(info)
    return out.getvalue()


def read_out(name: str, path: str) -> bytes:
    """A file of the container, by `mini cp NAME:PATH -`."""
    out = subprocess.run(MINI + ["cp", f"{name}:{path}", "-"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        return tar.extractfile(tar.next()).read()


# --- without containers ----------------------------------------------------------------------

def test_openat2_resolves_inside_the_root_it_is_given(tmp_path):
    from mini_runtime import syscalls

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "mine").write_text("container")
    (root / "up").symlink_to("/")
    (root / "dots").symlink_to("../../../..")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path in ("up/etc/mine", "dots/etc/mine", "../../etc/mine", "/etc/mine"):
            opened = syscalls.openat2(fd, path, os.O_RDONLY, resolve=syscalls.RESOLVE_IN_ROOT)
            with os.fdopen(opened) as f:
                assert f.read() == "container", path
        with pytest.raises(FileNotFoundError) as raised:   # the host's /etc/hostname: not in it
            syscalls.openat2(fd, "up/etc/hostname", os.O_RDONLY, resolve=syscalls.RESOLVE_IN_ROOT)
        assert raised.value.errno == 2
        with pytest.raises(OSError) as raised:               # /proc/self/root: a magic link
            syscalls.openat2(fd, "/proc/self/root", os.O_RDONLY, resolve=syscalls.RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(fd)


@pytest.mark.parametrize("argument, expected", [
    ("c:/x", ("c", "/x")), ("/abs:x", ("", "/abs:x")), ("./file:name", ("", "./file:name")),
    ("file", ("", "file")), ("c:", ("c", "")), ("-", ("", "-"))])
def test_a_container_path_is_told_from_a_local_one_as_docker_does(argument, expected):
    from mini_runtime.cli.cp import split_argument

    assert split_argument(argument) == expected


@pytest.mark.parametrize("source, destination, expected", [
    (("/s/f", True, False), ("/d", True, True), ("/d", "f")),            # into a directory
    (("/s/f", True, False), ("/d/new", False, False), ("/d", "new")),    # cp a b: b is made
    (("/s/dir", True, True), ("/d/new", False, False), ("/d", "new")),
    (("/s/dir/.", True, True), ("/d", True, True), ("/d", ".")),         # what is in dir
    (("/", True, True), ("/d/new", False, False), ("/d", "new")),
    (("/s/dir", True, True), ("/d/file", True, False), "cannot copy directory"),
    (("/s/f", True, False), ("/d/new/", False, False), "no such directory")])
def test_what_a_copy_means_is_dockers(source, destination, expected):
    from mini_runtime.hostcopy import CopyInfo, prepare

    if isinstance(expected, str):
        with pytest.raises(Exception, match=expected):
            prepare(CopyInfo(*source), CopyInfo(*destination))
    else:
        assert prepare(CopyInfo(*source), CopyInfo(*destination)) == expected


@pytest.mark.parametrize("words, message", [
    (["a", "b"], "must specify at least one container source"),
    (["a:/x", "b:/y"], "copying between containers is not supported"),
    (["", "b:/y"], "source can not be empty"),
    (["a:/x", ""], "destination can not be empty"),
    (["a:/x"], '"mini cp" requires exactly 2 arguments'),
    (["a:/x", "/nonexistent-dir/y"], 'invalid output path: directory "/nonexistent-dir" does not exist'),
    (["a:/x", "/dev/null"], 'invalid output path: "/dev/null" must be a directory or a regular file: got a device'),
    (["/nonexistent-file", "a:/x"], "lstat //nonexistent-file: no such file or directory")])  # (docker's two slashes)
def test_bad_arguments_are_the_docker_clients_words_and_exit_1(words, message):
    result = mini("cp", *words)
    assert (result.returncode, result.stdout) == (1, "")
    assert message in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_container_cp_is_cp():
    result = mini("container", "cp", "a", "b")
    assert result.returncode == 1 and "must specify at least one container source" in result.stderr


# --- with containers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def containers():
    """A running container (`run`), an exited one (`done`) and a created one (`new`), each with
    SETUP's files (the created one has none: it never ran)."""
    tag = uuid.uuid4().hex[:8]
    names = {kind: f"cp-{kind}-{tag}" for kind in ("run", "done", "new")}
    try:
        ok("run", "-d", "--name", names["run"], "busybox", "sh", "-c", SETUP + " && touch /ready && sleep 600")
        ok("run", "--name", names["done"], "busybox", "sh", "-c", SETUP)
        ok("create", "--name", names["new"], "busybox", "cat", "/file")
        deadline = time.monotonic() + 10
        while mini("exec", names["run"], "test", "-e", "/ready").returncode != 0:
            assert time.monotonic() < deadline, "the container did not set up its files"
            time.sleep(0.1)
        yield names
    finally:
        mini("rm", "-f", *names.values())


@pytest.fixture
def sentinel(tmp_path_factory):
    """A host directory at a path the container also names (/tmp/<random>): what a copy that
    escaped would read or write. Nothing may change in it."""
    directory = Path("/tmp") / f"mini-cp-host-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    (directory / "secret").write_text("HOST")
    try:
        yield directory
    finally:
        assert sorted(p.name for p in directory.iterdir()) == ["secret"], "a copy reached the host"
        assert (directory / "secret").read_text() == "HOST"
        (directory / "secret").unlink()
        directory.rmdir()


@pytest.mark.root
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["run", "done"])
def test_a_directory_comes_out_with_modes_times_and_symlinks_as_they_are(containers, kind, tmp_path):
    ok("cp", f"{containers[kind]}:/d", str(tmp_path / "out"))
    copied = tmp_path / "out"
    f = copied / "sub" / "f"
    assert f.read_text() == "inside\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert time.gmtime(f.stat().st_mtime)[:6] == (2001, 2, 3, 4, 5, 6)
    assert (f.stat().st_uid, f.stat().st_gid) == (os.getuid(), os.getgid())   # docker: the user's
    assert os.readlink(copied / "up") == "/" and os.readlink(copied / "dots") == "../../.."
    ok("cp", "-a", f"{containers[kind]}:/d/sub/f", str(tmp_path / "kept"))
    assert ((tmp_path / "kept").stat().st_uid, (tmp_path / "kept").stat().st_gid) == (7, 8)


@pytest.mark.root
@pytest.mark.integration
@pytest.mark.parametrize("path", ["/d/up/tmp/{name}/secret", "/d/dots/tmp/{name}/secret",
                                  "/../../tmp/{name}/secret", "/d/up/d/up/tmp/{name}/secret"])
@pytest.mark.parametrize("kind", ["run", "done"])
def test_a_symlink_out_of_the_container_stays_inside_it(containers, kind, path, sentinel, tmp_path):
    result = mini("cp", f"{containers[kind]}:{path.format(name=sentinel.name)}", str(tmp_path / "x"))
    assert result.returncode == 1 and not (tmp_path / "x").exists()
    assert result.stderr == f"Error: No such container:path: {containers[kind]}:{path.format(name=sentinel.name)}\n"
    ok("cp", f"{containers[kind]}:/d/up/etc/passwd", str(tmp_path / "passwd"))   # the container's
    assert (tmp_path / "passwd").read_text() != Path("/etc/passwd").read_text()
    mine = tmp_path / f"{sentinel.name}-in"
    mine.write_text("in")
    for target in ("/d/up/tmp/", "/d/dots/tmp/", "/d/up/../../tmp/"):   # in: its /tmp, not ours
        ok("cp", str(mine), f"{containers[kind]}:{target}")
        assert not (Path("/tmp") / mine.name).exists()
        assert read_out(containers[kind], f"/tmp/{mine.name}") == b"in"


@pytest.mark.root
@pytest.mark.integration
def test_copied_in_files_are_seen_by_the_running_container_at_once(containers, tmp_path):
    (tmp_path / "dir" / "inner").mkdir(parents=True)
    (tmp_path / "dir" / "inner" / "b").write_text("B")
    os.chown(tmp_path / "dir" / "inner" / "b", 1234, 5678)
    name = containers["run"]
    ok("cp", str(tmp_path / "dir"), f"{name}:/tmp/made")               # cp a b: b is made
    ok("cp", str(tmp_path / "dir") + "/.", f"{name}:/tmp/")            # dir/.: what is in it
    ok("cp", "-a", str(tmp_path / "dir" / "inner" / "b"), f"{name}:/tmp/kept")
    assert ok("exec", name, "cat", "/tmp/made/inner/b", "/tmp/inner/b").stdout == "BB"
    assert ok("exec", name, "stat", "-c", "%u:%g", "/tmp/made/inner/b", "/tmp/kept").stdout == "0:0\n1234:5678\n"


@pytest.mark.root
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["done", "new"])
def test_a_stopped_container_gets_the_file_when_it_starts(containers, kind, tmp_path):
    (tmp_path / "file").write_text(f"for {kind}\n")
    ok("cp", str(tmp_path / "file"), f"{containers[kind]}:/")
    assert read_out(containers[kind], "/file") == f"for {kind}\n".encode()
    if kind == "new":
        assert ok("start", "-a", containers[kind]).stdout == "for new\n"
    else:      # overlay's scratch space, made for the copy, is gone again (as after the exit)
        identity = ok("inspect", "-f", "{{.Id}}", containers[kind]).stdout.strip()
        assert not (Path(os.environ["MINI_ROOT"]) / "containers" / identity / "work").exists()


@pytest.mark.root
@pytest.mark.integration
def test_dash_is_a_tar_on_stdout_and_on_stdin(containers, tmp_path):
    name = containers["run"]
    out = subprocess.run(MINI + ["cp", f"{name}:/d", "-"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        names = sorted(m.name for m in tar)
    assert names == ["d", "d/dots", "d/flink", "d/sub", "d/sub/f", "d/up"]
    result = subprocess.run(MINI + ["cp", "-", f"{name}:/tmp"], input=tar_of(("fromstdin", "f", "S")),
                            capture_output=True)
    assert result.returncode == 0, result.stderr
    assert ok("exec", name, "cat", "/tmp/fromstdin").stdout == "S"
    result = subprocess.run(MINI + ["cp", "-", f"{name}:/d/sub/f"], input=b"", capture_output=True)
    assert (result.returncode, result.stderr) == (1, f'mini: destination "{name}:/d/sub/f" must be a directory\n'.encode())


@pytest.mark.root
@pytest.mark.integration
@pytest.mark.parametrize("entries, words", [
    ([("../evil", "f", "x")], "'..'"),
    ([("/abs", "f", "x")], "absolute"),
    ([("a", "l", "/"), ("a/tmp/{name}/pwned", "f", "x")], "symlink"),
    ([("a", "l", "../../../../tmp/{name}"), ("a/pwned", "f", "x")], "symlink"),
    ([("hl", "h", "/tmp/{name}/secret")], "hard link"),
    ([("hl", "h", "../../tmp/{name}/secret")], "hard link")])
def test_a_hostile_tar_on_stdin_writes_nothing_outside(containers, entries, words, sentinel):
    entries = [(n.format(name=sentinel.name), k, v.format(name=sentinel.name)) for n, k, v in entries]
    result = subprocess.run(MINI + ["cp", "-", f"{containers['run']}:/tmp"], input=tar_of(*entries),
                            capture_output=True, text=False)
    assert result.returncode == 1 and words in result.stderr.decode(), result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.root
@pytest.mark.integration
def test_garbage_on_stdin_is_one_line(containers):
    result = subprocess.run(MINI + ["cp", "-", f"{containers['run']}:/tmp"], input=b"not a tar" * 100,
                            capture_output=True)
    assert result.returncode == 1 and result.stderr.startswith(b"mini: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.root
@pytest.mark.integration
def test_a_missing_container_or_path_is_dockers_404(containers, tmp_path):
    for words, shown in ((["nosuch-cp:/x", str(tmp_path)], "nosuch-cp:/x"),
                         ([f"{containers['run']}:/nonexistent", str(tmp_path)], f"{containers['run']}:/nonexistent"),
                         ([str(tmp_path), f"{containers['run']}:/nonexistent/x"], f"{containers['run']}:/nonexistent")):
        result = mini("cp", *words)
        assert (result.returncode, result.stderr) == (1, f"Error: No such container:path: {shown}\n")
    from mini_runtime.backend.local import LocalBackend   # the daemon's own words, under them
    with pytest.raises(Exception, match=f"Could not find the file /nonexistent in container {containers['run']}"):
        LocalBackend().container_stat_path(containers["run"], "/nonexistent")


@pytest.mark.root
@pytest.mark.integration
def test_docker_path_rules(containers, tmp_path):
    name = containers["run"]
    (tmp_path / "f").write_text("F")
    for words, error in (([str(tmp_path / "f"), f"{name}:/tmp/nodir/"], "no such directory"),
                         ([str(tmp_path), f"{name}:/d/sub/f"], "cannot copy directory"),
                         ([f"{name}:/d/sub/f", str(tmp_path / "f") + "/"], "not a directory")):
        result = mini("cp", *words)
        assert result.returncode == 1 and error in result.stderr, result.stderr
    ok("cp", f"{name}:/d/sub/.", str(tmp_path / "contents"))
    assert sorted(os.listdir(tmp_path / "contents")) == ["f"]
    ok("cp", "-L", f"{name}:/d/flink", str(tmp_path / "followed"))
    assert (tmp_path / "followed").read_text() == "inside\n" and not (tmp_path / "followed").is_symlink()


@pytest.mark.root
@pytest.mark.integration
def test_a_read_only_rootfs_takes_no_copy(tmp_path):
    name = f"cp-ro-{uuid.uuid4().hex[:8]}"
    ok("run", "--read-only", "--name", name, "busybox", "true")
    try:
        (tmp_path / "f").write_text("F")
        result = mini("cp", str(tmp_path / "f"), f"{name}:/tmp/")
        assert (result.returncode, result.stderr) == (1, "mini: container rootfs is marked read-only\n")
    finally:
        mini("rm", "-f", name)


@pytest.mark.root
@pytest.mark.integration
def test_a_symlink_swapped_during_the_copy_never_reaches_the_host(sentinel, tmp_path):
    """CVE-2018-15664: the container swaps a directory and a symlink to the host's path, as
    fast as it can, while we copy out of it and into it."""
    name = f"cp-race-{uuid.uuid4().hex[:8]}"
    swap = (f"mkdir -p /w /tmp/{sentinel.name}; while true; do rm -rf /w/d; mkdir /w/d; "
            f"echo container > /w/d/secret; rm -rf /w/d; ln -s /tmp/{sentinel.name} /w/d; done")
    ok("run", "-d", "--name", name, "busybox", "sh", "-c", swap)
    try:
        (tmp_path / "in").write_text("in")
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            out = subprocess.run(MINI + ["cp", f"{name}:/w/d/secret", "-"], capture_output=True)
            assert b"HOST" not in out.stdout
            subprocess.run(MINI + ["cp", str(tmp_path / "in"), f"{name}:/w/d/"], capture_output=True)
    finally:
        mini("rm", "-f", name)
