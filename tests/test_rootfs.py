"""Chapter 02 acceptance: the image's files are the container's whole world."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from mini_runtime import cgroups

from conftest import MINI, REPO, image_variant, mini

pytestmark = [pytest.mark.root, pytest.mark.integration]

RUNTIME_MOUNTS = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys",
                  "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}  # (the last three: chapter 07)
if cgroups.mode() == "v2":
    RUNTIME_MOUNTS.add("/sys/fs/cgroup")  # chapter 04: the container's own cgroup, on cgroup v2
if "\tmqueue\n" in open("/proc/filesystems").read():
    RUNTIME_MOUNTS.add("/dev/mqueue")  # chapter 03: its IPC namespace's POSIX message queues


@pytest.fixture(scope="module")
def image_top_level() -> set[str]:
    from mini_runtime.image.store import Store

    store = Store()
    return set(os.listdir(store.rootfs(store.get("busybox"))))


@pytest.fixture
def host_secret(tmp_path_factory) -> Path:
    """A file only the host has."""
    path = Path("/tmp") / f"mini-sentinel-{os.getpid()}-{os.urandom(4).hex()}"
    path.write_text("host-only\n")
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def escape_binary(tmp_path_factory) -> Path:
    if not shutil.which("gcc"):
        if os.environ.get("CI"):
            pytest.fail("gcc missing: scripts/provision.sh installs it")
        pytest.skip("gcc not installed (scripts/provision.sh installs it)")
    out = tmp_path_factory.mktemp("escape") / "chroot-escape"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(REPO / "examples" / "chroot-escape.c")],
                   check=True)
    return out


def test_ls_shows_exactly_the_images_top_level(image_top_level):
    result = mini("run", "busybox", "ls", "-a", "/")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) - {".", ".."} == image_top_level


def test_no_host_path_is_reachable(host_secret):
    result = mini("run", "busybox", "sh", "-c", f"cat {host_secret}; ls /work /boot /var/lib/mini")
    assert host_secret.read_text() not in result.stdout
    assert "No such file or directory" in result.stderr


def test_mountinfo_has_no_entry_for_the_old_root(state_root):
    result = mini("run", "busybox", "cat", "/proc/self/mountinfo")
    mounts = [line.split() for line in result.stdout.splitlines()]
    assert {m[4] for m in mounts} == RUNTIME_MOUNTS
    root = next(m for m in mounts if m[4] == "/")
    fstype, options = root[root.index("-") + 1], root[-1]
    # chapter 05: the root is an overlay whose upper dir is the container's own
    assert fstype == "overlay" and f"{state_root}/containers/" in options and "/upper" in options


def test_a_mount_inside_never_reaches_the_host_even_when_shared(tmp_path):
    """The host side here is a private mount namespace of the test's own whose / is made
    *shared* (we never change the real host's mounts); the container's mount must not show."""
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import subprocess, sys
        assert "shared:" in next(l for l in open("/proc/self/mountinfo") if l.split()[4] == "/")
        p = subprocess.Popen({MINI!r} + ["run", "busybox", "sh", "-c",
            "mkdir -p /mnt/x && mount -t tmpfs minimarker /mnt/x && echo mounted && sleep 2"],
            stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "mounted\\n"
        seen = "minimarker" in open("/proc/self/mountinfo").read()
        p.wait()
        sys.exit(1 if seen else 0)
    """))
    # Private first (cut off from the real host), then shared within that namespace only.
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             f"mount --make-rshared / && exec {sys.executable} {driver}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chroot_breakout_escapes_chroot_but_not_pivot_root(escape_binary, host_secret):
    script = "cat > /escape && chmod +x /escape && /escape " + str(host_secret)
    run = lambda *args: subprocess.run(MINI + ["run", "-i", *args, "busybox", "sh", "-c", script],
                                       stdin=escape_binary.open("rb"), capture_output=True, timeout=30)
    chrooted = run("--no-pivot")
    assert chrooted.stdout == b"host-only\n", "the breakout should work under plain chroot"
    pivoted = run()
    assert pivoted.returncode == 1 and b"host-only" not in pivoted.stdout
    assert b"No such file or directory" in pivoted.stderr


@pytest.mark.parametrize("name, major, minor", [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
                                                 ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)])
def test_device_nodes(name, major, minor):
    result = mini("run", "busybox", "stat", "-c", "%F %t:%T %a", f"/dev/{name}")
    assert result.stdout.split() == ["character", "special", "file", f"{major:x}:{minor:x}", "666"]


def test_dev_has_pts_shm_and_links_and_hides_the_images_dev():
    image = image_variant("mini-test-devfile", add=(("dev/from-image", tarfile.REGTYPE, b"x"),))
    result = mini("run", image, "sh", "-c",
                  "ls /dev; for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; "
                  "stat -c %a /dev/shm; grep -E ' /dev/(pts|shm) ' /proc/self/mountinfo")
    assert "from-image" not in result.stdout
    assert "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\npts/ptmx\n1777\n" in result.stdout
    assert " - devpts devpts " in result.stdout and " - tmpfs shm " in result.stdout


def test_dev_mounts_have_dockers_options_D9():
    """devpts as docker's (gid=5: a new pty belongs to group tty, as on a host) and, where the
    kernel has POSIX message queues, the container's own at /dev/mqueue, nosuid,nodev,noexec."""
    result = mini("run", "busybox", "grep", "-E", " /dev/(pts|mqueue) ", "/proc/self/mountinfo")
    lines = {line.split()[4]: line.split() for line in result.stdout.splitlines()}
    pts = lines["/dev/pts"]
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= set(pts[-1].split(",")), pts
    if "/dev/mqueue" not in RUNTIME_MOUNTS:
        pytest.skip("this kernel has no POSIX message queues (CONFIG_POSIX_MQUEUE)")
    mqueue = lines["/dev/mqueue"]
    assert mqueue[mqueue.index("-") + 1] == "mqueue" and {"nosuid", "nodev", "noexec"} <= set(mqueue[5].split(","))


def test_sys_is_read_only():
    result = mini("run", "busybox", "sh", "-c", "touch /sys/x; grep ' /sys ' /proc/self/mountinfo")
    assert "Read-only file system" in result.stderr
    assert result.stdout.split()[5].startswith("ro,")


def test_proc_is_fresh_and_nosuid_noexec_nodev():
    result = mini("run", "busybox", "grep", " /proc ", "/proc/self/mountinfo")
    options = result.stdout.split()[5].split(",")
    assert {"nosuid", "nodev", "noexec"} <= set(options)


def test_read_only_gives_erofs_and_default_is_writable():
    result = mini("run", "--read-only", "busybox", "touch", "/x")
    assert result.returncode == 1 and "Read-only file system" in result.stderr
    assert mini("run", "busybox", "touch", "/x").returncode == 0


def test_writes_change_neither_the_image_nor_the_next_container(state_root):
    from mini_runtime.image.store import Store

    store = Store()
    cache = store.rootfs(store.get("busybox"))
    before = sorted(os.listdir(cache))
    assert mini("run", "busybox", "sh", "-c", "echo x > /written; rm /bin/ls").returncode == 0
    result = mini("run", "busybox", "sh", "-c", "ls /written; ls /bin/ls")
    assert "/written: No such file" in result.stderr and result.stdout == "/bin/ls\n"
    assert sorted(os.listdir(cache)) == before


def test_workdir_is_created_like_docker():
    assert mini("run", "-w", "/does/not/exist", "busybox", "pwd").stdout == "/does/not/exist\n"


def _digest(path: str) -> str:
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            st = os.lstat(p)
            h.update(f"{p} {st.st_mode} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@pytest.mark.parametrize("target, link", [("proc", "/"), ("dev", "/etc"), ("sys", "/"),
                                          ("proc", "../../../../etc")])
@pytest.mark.parametrize("mode", [[], ["--no-pivot"]], ids=["pivot_root", "chroot"])
def test_symlinked_mount_targets_never_touch_the_host(target, link, mode, host_secret):
    image = image_variant(f"mini-test-{target}-link", drop=(target,),
                          add=((target, tarfile.SYMTYPE, link),))
    etc_before, secret_before = _digest("/etc"), host_secret.read_text()
    result = mini("run", "--rm", *mode, image, "true")
    assert result.returncode == 125
    assert len(result.stderr.splitlines()) == 1 and f"/{target} is a symlink" in result.stderr
    assert _digest("/etc") == etc_before and host_secret.read_text() == secret_before


def test_exec_errors_after_pivot_root():
    assert mini("run", "--rm", "busybox", "nosuchcmd").returncode == 127
    assert mini("run", "--rm", "busybox", "/etc/passwd").returncode == 126


def test_read_only_with_a_new_workdir_creates_it_first():
    result = mini("run", "--read-only", "-w", "/made/here", "busybox", "sh", "-c", "pwd; touch x")
    assert result.stdout == "/made/here\n" and "Read-only file system" in result.stderr


def test_a_symlinked_working_directory_is_followed_inside_the_root(tmp_path):
    """An image's WorkingDir through a symlink: followed as docker follows it, inside the
    container's root (an absolute target starts at its `/`, `..` stops there), and a directory
    missing where it leads is made there; never on the host, even when the target names a host
    path. (Before: a link to a missing directory failed, `/dang: not a directory`.)"""
    links = (("srv", tarfile.DIRTYPE, None), ("srv/app", tarfile.DIRTYPE, None), ("work", tarfile.SYMTYPE, "/srv/app"),
             ("rel", tarfile.SYMTYPE, "srv/app"), ("up", tarfile.SYMTYPE, "../../.."),
             ("out", tarfile.SYMTYPE, f"{tmp_path}/abs"),
             ("esc", tarfile.SYMTYPE, f"../../../../../../../..{tmp_path}/rel"),
             ("loop", tarfile.SYMTYPE, "/loop"))
    expected = {"/work": "/srv/app", "/rel/made": "/srv/app/made", "/up/up/x": "/x",
                "/out": f"{tmp_path}/abs", "/esc/a/../b": f"{tmp_path}/rel/b",
                "/work/../y": "/y"}                 # (cleaned first, as docker cleans it)
    for number, (workdir, where) in enumerate(expected.items()):
        image = image_variant(f"mini-test-workdir-{number}", add=links, config={"WorkingDir": workdir})
        result = mini("run", "--rm", image, "pwd")
        assert (result.returncode, result.stdout, result.stderr) == (0, where + "\n", ""), workdir
    assert os.listdir(tmp_path) == []              # nothing made on the host's side
    image = image_variant("mini-test-workdir-loop", add=links, config={"WorkingDir": "/loop/x"})
    result = mini("run", "--rm", image, "pwd")
    assert (result.returncode, result.stderr) == (
        125, "mini: container setup failed: evalSymlinksInScope: too many links in /loop/x\n")
    made = mini("create", "--name", "mini-test-workdir", "-w", "/rel/./q/../q", image, "pwd")
    try:
        shown = mini("inspect", "-f", "{{.Config.WorkingDir}}", "mini-test-workdir").stdout
        assert shown == "/rel/q\n" and mini("start", "-a", "mini-test-workdir").stdout == "/srv/app/q\n"
    finally:
        mini("rm", "-f", made.stdout.strip())
