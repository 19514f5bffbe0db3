"""The graded checks of chapter 02. Each plugs some of your functions into the real runtime."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

from exercises.grading import Chapter, CheckFailed, Context
from exercises.why import errno_of, errnos_in_child, expect_predictions
from mini_runtime.syscalls import MS_PRIVATE, MS_REC

CHAPTER = Chapter(number="02", slug="rootfs", module="mini_runtime.rootfs", learner_file="rootfs.py",
                  given=("DEV_LINKS", "DEVICES", "chroot_into", "mountpoint"))
check = CHAPTER.check

RUNTIME_MOUNTS = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/sys",
                  "/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}  # (the last three: chapter 07)
if __import__("mini_runtime.cgroups").cgroups.mode() == "v2":
    RUNTIME_MOUNTS.add("/sys/fs/cgroup")  # chapter 04: the container's own cgroup, on cgroup v2
if "\tmqueue\n" in open("/proc/filesystems").read():
    RUNTIME_MOUNTS.add("/dev/mqueue")  # chapter 03: its IPC namespace's POSIX message queues


def _image_top_level() -> set[str]:
    from mini_runtime.image.store import Store

    store = Store()
    return set(os.listdir(store.rootfs(store.get("busybox"))))


def _mountinfo(text: str) -> dict[str, list[str]]:
    """mount point -> the mountinfo fields of that line."""
    return {fields[4]: fields for fields in (line.split() for line in text.splitlines()) if len(fields) > 9}


def _sh(ctx: Context, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return ctx.mini("run", *flags, "busybox", "sh", "-c", script)


@check("2.1", "make_mounts_private: a mount made inside never reaches the outside", points=1.5,
       section="§ Mount namespaces and propagation", plug=("make_mounts_private",), retry=True)
def private_mounts(ctx: Context) -> None:
    # The jail (where mini runs) stands in for the host: its "/" is shared, like systemd makes it.
    ctx.shared_root = True
    marker = f"minimark{ctx.rng.randrange(10**6)}"
    proc = ctx.popen("run", "busybox", "sh", "-c",
                     f"mkdir -p /mnt/{marker} && mount -t tmpfs {marker} /mnt/{marker} "
                     "&& echo mounted && sleep 2", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line != "mounted\n":
            proc.kill()
            raise CheckFailed(f"expected the container to start and mount a tmpfs, got "
                              f"{line!r} {proc.communicate()[1].strip()[:150]!r}")
        leaked = marker in ctx.mountinfo()
    finally:
        try:
            proc.wait(timeout=15)  # let mini clean up after its container
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    ctx.expect(not leaked, "the container's tmpfs to stay invisible outside (the outside '/' is shared)",
               "it appeared in the outside mount table")


@check("2.2", "pivot_into: the image is the root and the host's root is gone", points=2,
       section="§ pivot_root", plug=("pivot_into",))
def pivot(ctx: Context) -> None:
    with tempfile.NamedTemporaryFile("w", prefix="mini-secret-") as secret:  # where the jail sees it
        word = f"secret{ctx.rng.randrange(10**9)}"
        secret.write(word)
        secret.flush()
        result = _sh(ctx, f"cat /proc/self/mountinfo; echo ---; ls -a /; echo ---; cat {secret.name}")
    parts = result.stdout.split("---\n")
    ctx.expect(len(parts) == 3, "the container to run `cat /proc/self/mountinfo; ls /`",
               f"exit {result.returncode}, stderr {result.stderr.strip()[:150]!r}")
    mounts = _mountinfo(parts[0])
    extra = sorted(set(mounts) - RUNTIME_MOUNTS)
    ctx.expect(not extra, "no mount inside but / /proc /dev /dev/pts /dev/shm /dev/mqueue /sys (the "
               "old root detached)", f"also {extra[:4]}")
    root = mounts.get("/", [])
    fstype = root[root.index("-") + 1] if "-" in root else "?"
    ctx.expect(fstype == "overlay", "/ to be the container's view of the image (an overlay mount)",
               f"a {fstype} mount: {' '.join(root[3:5])}")
    listing = set(parts[1].split()) - {".", ".."}
    ctx.expect(listing == _image_top_level(), f"`ls /` to list the image's top level {sorted(_image_top_level())}",
               repr(sorted(listing)))
    ctx.expect(word not in parts[2], "a file only the host has to be unreachable", "the container read it")
    # chroot(2) would pass all of the above. The difference: after pivot_root and the detach,
    # ".." at the container's root leads nowhere, even for someone outside walking in through
    # /proc/PID/root; under chroot it leads to the directory that holds the image's files.
    proc = ctx.popen("run", "busybox", "sh", "-c", "echo ready; sleep 1", stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
    try:
        ready = proc.stdout.readline() == "ready\n"  # type: ignore[union-attr]
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split() if ready else []
        ctx.expect(bool(children), "the container to start (for the /proc/PID/root probe)", "no process")
        root, up = (os.stat(f"/proc/{children[0]}/root{suffix}") for suffix in ("", "/.."))
    finally:
        proc.wait()
    ctx.expect((root.st_dev, root.st_ino) == (up.st_dev, up.st_ino),
               "'..' of the container's root to be the root itself (the old root detached, "
               "not just chroot)", "a way up out of the image's directory")


@check("2.3", "mount_proc: a fresh procfs, nosuid,nodev,noexec", points=0.5,
       section="§ /proc, /dev and /sys", plug=("mount_proc",))
def proc(ctx: Context) -> None:
    result = _sh(ctx, "cat /proc/self/mountinfo; echo ---; cat /proc/self/comm")
    mounts = _mountinfo(result.stdout.split("---")[0])
    entry = mounts.get("/proc")
    ctx.expect(entry is not None and entry[-3] == "proc", "a proc filesystem on /proc",
               f"{entry and entry[-3]!r} {result.stderr.strip()[:150]!r}")
    assert entry is not None
    options = set(entry[5].split(","))
    ctx.expect({"nosuid", "nodev", "noexec"} <= options, "/proc mounted nosuid,nodev,noexec", entry[5])
    ctx.expect(result.stdout.rstrip().endswith("cat"), "/proc/self/comm to read 'cat'",
               repr(result.stdout[-20:]))


@check("2.4", "mount_dev: a tmpfs /dev with the standard devices, pts, shm and links", points=1,
       section="§ /proc, /dev and /sys", plug=("mount_dev",))
def dev(ctx: Context) -> None:
    devices = ctx.rng.sample([("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                              ("urandom", 1, 9), ("tty", 5, 0)], 3)
    names = " ".join(f"/dev/{d[0]}" for d in devices)
    nbytes = ctx.rng.randrange(1, 64)
    result = _sh(ctx, f"stat -c '%n %F %t:%T %a' {names}; echo ---; "
                      "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done; echo ---; "
                      f"stat -c %a /dev/shm; head -c {nbytes} /dev/urandom | wc -c; "
                      "echo x > /dev/null && echo null-ok; echo ---; cat /proc/self/mountinfo")
    parts = result.stdout.split("---\n")
    ctx.expect(len(parts) == 4, "the container to start and run the /dev probes",
               f"exit {result.returncode}, stderr {result.stderr.strip()[:150]!r}")
    seen = {line.split()[0]: line.split()[1:] for line in parts[0].splitlines()}
    for name, major, minor in devices:
        want = ["character", "special", "file", f"{major:x}:{minor:x}", "666"]
        ctx.expect(seen.get(f"/dev/{name}") == want, f"/dev/{name} a char device {major}:{minor} mode 666",
                   repr(seen.get(f"/dev/{name}")))
    links = parts[1].split()
    ctx.expect(links == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2",
                         "pts/ptmx"], "the links fd, stdin, stdout, stderr, ptmx", repr(links))
    ctx.expect(parts[2].split() == ["1777", str(nbytes), "null-ok"],
               f"/dev/shm mode 1777, {nbytes} bytes from /dev/urandom, /dev/null writable",
               repr(parts[2].split()))
    mounts = _mountinfo(parts[3])
    kinds = {m: (mounts[m][-3] if m in mounts else None) for m in ("/dev", "/dev/pts", "/dev/shm")}
    ctx.expect(kinds == {"/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs"},
               "tmpfs on /dev, devpts on /dev/pts, tmpfs on /dev/shm", repr(kinds))


@check("2.5", "mount_sys: sysfs, read-only", points=0.5, section="§ /proc, /dev and /sys",
       plug=("mount_sys",))
def sys_ro(ctx: Context) -> None:
    name = f"x{ctx.rng.randrange(10**6)}"
    result = _sh(ctx, f"ls /sys/class | wc -l; touch /sys/{name}; cat /proc/self/mountinfo")
    mounts = _mountinfo(result.stdout)
    entry = mounts.get("/sys")
    ctx.expect(entry is not None and entry[-3] == "sysfs" and entry[5].split(",")[0] == "ro",
               "a read-only sysfs on /sys", f"{entry and entry[5]!r} {result.stderr.strip()[:120]!r}")
    ctx.expect("Read-only file system" in result.stderr, f"`touch /sys/{name}` to fail with EROFS",
               repr(result.stderr.strip()[:120]))


@check("2.6", "remount_readonly: --read-only makes / read-only, and only /", points=0.5,
       section="§ A read-only root", plug=("remount_readonly",))
def read_only(ctx: Context) -> None:
    name = f"f{ctx.rng.randrange(10**6)}"
    result = _sh(ctx, f"touch /{name}; touch /dev/shm/{name} && echo shm-ok; echo ---; "
                 "cat /proc/self/mountinfo", "--read-only")
    ctx.expect("Read-only file system" in result.stderr and "shm-ok" in result.stdout,
               f"`touch /{name}` to fail with EROFS while /dev/shm stays writable",
               f"stdout {result.stdout.strip()[:80]!r}, stderr {result.stderr.strip()[:150]!r}")
    # Read-only must be a property of this mount, not of the filesystem under it (which other
    # mounts may share): mountinfo's per-mount options say ro, the superblock's options rw.
    root = _mountinfo(result.stdout.partition("---\n")[2]).get("/", [])
    per_mount, per_filesystem = root[5].split(","), root[-1].split(",")
    ctx.expect("ro" in per_mount and "rw" in per_filesystem,
               "/ read-only as a mount (MS_BIND with MS_REMOUNT), its filesystem still read-write",
               f"mount options {root[5]}, filesystem options {root[-1][:60]}")
    result = _sh(ctx, f"touch /{name} && echo rw-ok")
    ctx.expect("rw-ok" in result.stdout, "a writable / without --read-only", repr(result.stderr.strip()[:150]))


@check("2.7", "enter: the new root first, then /proc /dev /sys in it; --no-pivot honoured", points=2,
       section="§ The whole pipeline", plug=("enter", "pivot_into", "mount_proc", "mount_dev", "mount_sys"))
def enter(ctx: Context) -> None:
    code = ctx.rng.randrange(1, 120)
    result = _sh(ctx, f"cat /proc/self/mountinfo; echo ---; stat -c %t:%T /dev/null; ls /sys/kernel >/dev/null "
                      f"&& echo sys-ok; exit {code}")
    parts = result.stdout.split("---\n")
    ctx.expect(result.returncode == code and len(parts) == 2,
               f"the container to read its own /proc/self/mountinfo and exit {code}",
               f"exit {result.returncode}, stdout {result.stdout[:80]!r}, stderr {result.stderr.strip()[:150]!r}")
    mounts = _mountinfo(parts[0])
    kinds = {m: (mounts[m][mounts[m].index("-") + 1] if m in mounts else None) for m in ("/proc", "/dev", "/sys")}
    ctx.expect(kinds == {"/proc": "proc", "/dev": "tmpfs", "/sys": "sysfs"} and set(mounts) <= RUNTIME_MOUNTS,
               "proc on /proc, tmpfs on /dev, sysfs on /sys inside the new root, and no other mount "
               "but / /dev/pts /dev/shm /dev/mqueue", f"{kinds}, mounts {sorted(mounts)[:8]}")
    ctx.expect(parts[1].split() == ["1:3", "sys-ok"], "/dev/null a 1:3 device and /sys/kernel readable",
               repr(parts[1].split()))
    # --no-pivot: chroot_into instead, so `..` of the container's root leads out of it.
    proc = ctx.popen("run", "--no-pivot", "busybox", "sh", "-c", "cat /proc/self/comm; echo ready; sleep 1",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # type: ignore[union-attr]
        children = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split() \
            if lines[1] == "ready\n" else []
        if not children:
            proc.kill()
            raise CheckFailed(f"expected `mini run --no-pivot` to start with a /proc of its own, got "
                              f"{lines!r} {proc.communicate()[1].strip()[:150]!r}")
        root, up = (os.stat(f"/proc/{children[0]}/root{suffix}") for suffix in ("", "/.."))
    finally:
        proc.wait()
    ctx.expect(lines[0] == "cat\n" and (root.st_dev, root.st_ino) != (up.st_dev, up.st_ino),
               "with --no-pivot (pivot=False), a chroot: /proc mounted, and '..' of the root leading out",
               f"comm {lines[0]!r}, '..' {'is the root itself: pivot_root was used' if root == up else 'leads out'}")


def _kernel_errnos() -> dict[str, object]:
    """The three mistakes of predicted_errnos(), made in a child with a mount namespace of its
    own (every mount private first, so nothing reaches the checker's; its tmpfs hides /tmp
    from that child only)."""
    from mini_runtime import syscalls

    def mistakes() -> dict[str, int]:
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)
        found = {"pivot_root_on_the_root_mount": errno_of(lambda: syscalls.pivot_root("/", "/"))}
        scratch = "/tmp"
        syscalls.mount("tmpfs", scratch, "tmpfs", 0, "size=64k")
        os.mkdir(os.path.join(scratch, "new"))
        new = os.path.join(scratch, "new")
        found["pivot_root_not_a_mount_point"] = errno_of(lambda: syscalls.pivot_root(new, new))
        os.chdir(scratch)
        found["umount_in_use"] = errno_of(lambda: syscalls.umount2(scratch, 0))
        return found

    return errnos_in_child(mistakes)


@check("2.8", "why? predict the kernel's errno for three mount mistakes", points=1,
       section="§ pivot_root", plug=("predicted_errnos",))
def why(ctx: Context) -> None:
    predicted = ctx.learner.predicted_errnos()
    kernel = _kernel_errnos()
    expect_predictions(ctx, predicted, kernel)


@check("2.9", "all together: your functions build the container's world", points=1,
       section="§ The whole pipeline",
       plug=("make_mounts_private", "pivot_into", "mount_proc", "mount_dev", "mount_sys",
             "remount_readonly", "enter"))
def everything(ctx: Context) -> None:
    code = ctx.rng.randrange(1, 120)
    result = _sh(ctx, f"ls /; touch /x; cat /dev/null; exit {code}", "--read-only")
    ctx.expect(result.returncode == code and set(result.stdout.split()) == _image_top_level(),
               f"`ls /` to show the image and exit {code}",
               f"exit {result.returncode}, {result.stdout.split()[:5]} {result.stderr.strip()[:120]!r}")
    ctx.expect("Read-only file system" in result.stderr, "EROFS for `touch /x` with --read-only",
               repr(result.stderr.strip()[:120]))
    start = time.monotonic()
    result = ctx.mini("run", "busybox", "nosuchcmd")
    ctx.expect(result.returncode == 127, "127 for a missing command inside the new root",
               f"{result.returncode} after {time.monotonic() - start:.1f}s")
