#!/usr/bin/env python3
"""Run tests inside a real cgroup-v2-only Linux: `make test-v2`.

Learners' VMs are cgroup v2; a CI host may be v1 or hybrid. Debian's `user-mode-linux` package
is a Linux 6.1 kernel (cgroup v2 only) that boots as an ordinary process in about two seconds.
We boot it with this machine's own filesystem as its root (hostfs), so the guest sees this
checkout and its virtualenv, and an init script of ours:

- mounts /proc, /sys and cgroup2 at /sys/fs/cgroup, a devpts of its own for /dev/ptmx, and tmpfs
  on /tmp, /var/tmp and /run (the guest's scratch space: tests put their state there, never on
  the host's /tmp);
- loads overlay, veth, bridge and nf_tables (for later chapters) from the package's own module
  tree, seen through a guest-only mount;
- runs pytest on the kernel-facing tests (MINI_V2_GUEST=1: the network tests that need nftables'
  ip family, which this kernel lacks, skip saying so) and powers off.

The guest has no network device at all, so nothing inside can reach any network. Its exit
status and output come back to the host: output on our stdout, the status in a file.

    python scripts/v2_guest.py                    # the default kernel-facing test files
    python scripts/v2_guest.py tests/test_cgroups.py -k oom
    python scripts/v2_guest.py --run python -m exercises grade 04 --path /home/me/cgroups.py

`--run` runs any command in the checkout instead of pytest: that is how to grade chapter 04
(a cgroup v2 exercise) on a v1 machine. The guest sees the host's files, except under /tmp.

On CPUs with AVX-512 or AMX the host's XSAVE area is larger than the one UML keeps per guest
thread, and the host refuses UML's short FPU writes: the guest's first process would die. A
small library of ours (scripts/uml_xstate_shim.c, compiled once with the machine's `cc` into
a cache) is preloaded into the UML process to widen those writes; it does nothing where the
sizes already match. If the guest cannot run, this script says why in one line and fails:
`make test` never skips it silently.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# What the cgroup version or the guest's kernel changes: cgroups and chapter 04's grader, the
# limits `update` writes into a live cgroup, the mounts of a container (its /sys/fs/cgroup),
# netns and veth (the guest's kernel lacks NAT: those tests skip, saying why), pause, OOM and
# stats (the freezer and the memory files differ), and the notebooks, which learners run on v2.
# The rest (images, the CLI, the network's NAT) is the host's.
DEFAULT_TESTS = ["tests/test_cgroups.py", "tests/test_update.py", "tests/test_network.py",
                 *(f"tests/test_rootfs.py::{name}" for name in (
                     "test_mountinfo_has_no_entry_for_the_old_root",  # (/sys/fs/cgroup on v2)
                     "test_sys_is_read_only", "test_a_mount_inside_never_reaches_the_host_even_when_shared",
                     "test_chroot_breakout_escapes_chroot_but_not_pivot_root")),
                 "tests/test_grader.py", "tests/test_course.py::test_notebook_runs_top_to_bottom",
                 "tests/test_lifecycle.py::test_a_detached_oom_kill_is_recorded",
                 "tests/test_lifecycle.py::test_pause_freezes_the_counter_and_unpause_thaws_it_top_lists_it",
                 "tests/test_exec.py::test_stats_no_stream_columns",
                 "tests/test_exec.py::test_exec_into_a_stopped_or_paused_container_is_refused",
                 "tests/test_namespaces.py::test_namespaces_are_recorded_while_running",
                 # chapter 04's grader tests only (the browser test of the lab is the host's alone)
                 "-m", "(not grader or v2guest) and not browser"]
MODULES = ("overlay", "veth", "bridge", "nf_tables")
# The device nodes the guest's /dev keeps: docker's list, which containers bind, and two more.
DEV_ENTRIES = "null zero full random urandom tty console kmsg"
UML = shutil.which("linux.uml") or shutil.which("linux")
SHIM_SOURCE = REPO / "scripts" / "uml_xstate_shim.c"
SHIM_CACHE = Path("/var/tmp/mini-uml-shim")
TIMEOUT = 1200


class GuestError(Exception):
    """The guest cannot run here; the message says why in one line."""


def shim_library() -> Path | None:
    """The FPU-state shim for UML (see the module's docstring), compiled once per source and
    compiler; None where UML is not an x86-64 binary (the shim concerns x86's XSAVE only)."""
    if platform.machine() != "x86_64":
        return None
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise GuestError("no C compiler to build scripts/uml_xstate_shim.c "
                         "(apt-get install gcc; scripts/provision.sh does it)")
    source = SHIM_SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True).stdout
    library = SHIM_CACHE / f"uml_xstate_shim-{hashlib.sha256(source + version).hexdigest()[:16]}.so"
    if not library.exists():
        SHIM_CACHE.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(f".tmp-{os.getpid()}")
        built = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(partial), str(SHIM_SOURCE), "-ldl"],
                               capture_output=True, text=True)
        if built.returncode != 0:
            partial.unlink(missing_ok=True)
            raise GuestError(f"could not compile {SHIM_SOURCE.name}: {built.stderr.strip().splitlines()[-1:]}")
        partial.replace(library)
    return library


def init_script(command: list[str], status_file: Path) -> str:
    modules = " ".join(MODULES)
    return f"""#!/bin/sh
# init of the cgroup-v2 guest (scripts/v2_guest.py); runs as PID 1 of the guest kernel
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /run
# ptys (the notebooks' `run -it`): the kernel's /dev has no devpts (and legacy ptys by the
# hundred). So the guest gets a /dev of its own: a tmpfs with the device nodes that containers
# and tests use bound at their names (each mount costs a tenth of a second in UML: binding
# every node took 45 s), the standard links, /dev/shm, a devpts at /dev/pts, and
# /dev/ptmx -> pts/ptmx.
mkdir -p /run/hostdev && mount --bind /dev /run/hostdev
mount -t tmpfs -o mode=0755 tmpfs /dev
for name in {DEV_ENTRIES}; do
  e="/run/hostdev/$name" n="/dev/$name"
  [ -e "$e" ] && touch "$n" && mount --bind "$e" "$n"
done
ln -s /proc/self/fd /dev/fd && ln -s fd/0 /dev/stdin && ln -s fd/1 /dev/stdout && ln -s fd/2 /dev/stderr
mkdir /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mkdir /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
# /tmp and /var/tmp become the guest's own tmpfs (the host's disk, seen through hostfs, cannot
# hold overlay upper directories, and nothing a test leaves there must reach the host). The
# checkout (CI clones may live under /tmp) and the result directory stay visible at their paths
# through bind mounts made before the tmpfs covers them.
keep() {{ mkdir -p "/run/keep$1" && mount --bind "$1" "/run/keep$1"; }}
back() {{ mkdir -p "$1" && mount --bind "/run/keep$1" "$1"; }}
repo={shlex.quote(str(REPO))}
work={shlex.quote(str(status_file.parent))}
keep "$repo"; keep "$work"
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
back "$repo"; back "$work"
mkdir -p /run/netns
ip link set lo up  # Jupyter's kernels (the notebook tests) talk over 127.0.0.1
ver=$(uname -r)
# The package's modules, seen as <root>/lib/modules/<version> under a guest-only tmpfs root.
mkdir -p /run/modroot/lib/modules
mount --bind /usr/lib/uml/modules /run/modroot/lib/modules
for m in {modules}; do modprobe -d /run/modroot -q $m 2>/dev/null || echo "v2 guest: could not load module $m (is kmod installed on the host?)"; done
echo "v2 guest: Linux $ver, cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd "$repo"
CI={shlex.quote(os.environ.get("CI", ""))} PYTHONPATH={shlex.quote(os.environ.get("PYTHONPATH", ""))} MINI_V2_GUEST=1 PYTHONDONTWRITEBYTECODE=1 {shlex.join(command)}
echo $? > {shlex.quote(str(status_file))}
sync
poweroff -f
"""


def guest_command(args: list[str]) -> list[str]:
    """pytest on ARGS (the default test files if none), or `--run COMMAND...` as given;
    `python` there means this virtualenv's."""
    if args[:1] == ["--run"]:
        command = args[1:]
        return [sys.executable, *command[1:]] if command[:1] in (["python"], ["python3"]) else command
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no", "-q",
            *(args or DEFAULT_TESTS)]


def boot(args: list[str]) -> int:
    """Boot the guest, run the command in it, and return its exit status."""
    if UML is None:
        raise GuestError("linux.uml not found (apt-get install user-mode-linux; "
                         "scripts/provision.sh --test does it)")
    shim = shim_library()
    # The result must land on the host's disk: not under /tmp, which the guest covers with tmpfs.
    work = Path(tempfile.mkdtemp(prefix="mini-v2-guest-", dir="/var/tmp"))
    try:
        status_file = work / "status"
        init = work / "init"
        init.write_text(init_script(guest_command(args), status_file))
        init.chmod(0o755)
        (work / "uml").mkdir()  # UML's own files (else it leaves them under ~/.uml)
        command = [UML, "mem=1536M", "rootfstype=hostfs", "rootflags=/", "rw", f"init={init}",
                   f"uml_dir={work / 'uml'}", "con=null", "con0=null,fd:1", "quiet", "loglevel=1"]
        env = dict(os.environ, LD_PRELOAD=str(shim)) if shim else None
        print(f"v2_guest: booting {UML} ({platform.machine()}) with {init}", flush=True)
        # Its own process group: UML forks helpers, and a timeout must end all of them.
        guest = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=work, env=env,
                                 start_new_session=True)
        try:
            guest.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise GuestError(f"the guest did not finish in {TIMEOUT // 60} minutes") from None
        finally:
            end_group(guest)
        if not status_file.exists():
            raise GuestError("the guest ended without a test status (see its output above)")
        return int(status_file.read_text().strip() or 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def end_group(guest: subprocess.Popen) -> None:
    """SIGKILL what is left of the guest's process group, and reap the guest."""
    try:
        os.killpg(guest.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    guest.wait()


def main() -> int:
    # `make test` stops a guest it started beside pytest with SIGTERM: end it as an exception,
    # so that boot()'s `finally` ends UML's process group and removes the work directory.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return boot(sys.argv[1:])
    except GuestError as e:
        print(f"v2_guest: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
