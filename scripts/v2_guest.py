#!/usr/bin/env python3
"""Run tests inside a real cgroup-v2-only Linux: `make test-v2`.

Learners' VMs are cgroup v2; a CI host may be v1 or hybrid. Debian's `user-mode-linux` package
is a Linux 6.1 kernel (cgroup v2 only) that boots as an ordinary process in about two seconds.
We boot it with this machine's own filesystem as its root (hostfs), so the guest sees this
checkout and its virtualenv, and an init script of ours:

- mounts /proc, /sys and cgroup2 at /sys/fs/cgroup, and tmpfs on /tmp and /run (the guest's
  scratch space: tests put their state there, never on the host's /tmp);
- loads overlay, veth, bridge and nf_tables (for later chapters) from the package's own module
  tree, seen through a guest-only mount;
- runs pytest on the kernel-facing tests and powers off.

The guest has no network device at all, so nothing inside can reach any network. Its exit
status and output come back to the host: output on our stdout, the status in a file.

    python scripts/v2_guest.py                    # the default kernel-facing test files
    python scripts/v2_guest.py tests/test_cgroups.py -k oom
    python scripts/v2_guest.py --run python -m exercises grade 04 --path /home/me/cgroups.py

`--run` runs any command in the checkout instead of pytest: that is how to grade chapter 04
(a cgroup v2 exercise) on a v1 machine. The guest sees the host's files, except under /tmp.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TESTS = ["tests/test_cgroups.py", "tests/test_namespaces.py", "tests/test_rootfs.py", "tests/test_images.py",
                 "tests/test_grader.py", "-m", "not grader or v2guest"]  # chapter 04's grader tests
MODULES = ("overlay", "veth", "bridge", "nf_tables")
UML = shutil.which("linux.uml") or shutil.which("linux")


def init_script(command: list[str], status_file: Path) -> str:
    modules = " ".join(MODULES)
    return f"""#!/bin/sh
# init of the cgroup-v2 guest (scripts/v2_guest.py); runs as PID 1 of the guest kernel
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /run
# /tmp becomes the guest's own tmpfs; if this checkout lives under /tmp (CI clones may), keep
# it visible at the same path through a bind mount made before the tmpfs covers it.
repo={shlex.quote(str(REPO))}
mkdir -p /run/repo && mount --bind "$repo" /run/repo
mount -t tmpfs tmpfs /tmp
mkdir -p "$repo" && mount --bind /run/repo "$repo"
mkdir -p /run/netns
ver=$(uname -r)
# The package's modules, seen as <root>/lib/modules/<version> under a guest-only tmpfs root.
mkdir -p /run/modroot/lib/modules
mount --bind /usr/lib/uml/modules /run/modroot/lib/modules
for m in {modules}; do modprobe -d /run/modroot -q $m 2>/dev/null || echo "v2 guest: could not load module $m (is kmod installed on the host?)"; done
echo "v2 guest: Linux $ver, cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
cd "$repo"
CI={shlex.quote(os.environ.get("CI", ""))} PYTHONDONTWRITEBYTECODE=1 {shlex.join(command)}
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


def main() -> int:
    if UML is None:
        print("v2_guest: linux.uml not found (apt-get install user-mode-linux; "
              "scripts/provision.sh --test does it)", file=sys.stderr)
        return 1 if os.environ.get("CI") else 0
    # The result must land on the host's disk: not under /tmp, which the guest covers with tmpfs.
    work = Path(tempfile.mkdtemp(prefix="mini-v2-guest-", dir="/var/tmp"))
    try:
        status_file = work / "status"
        init = work / "init"
        init.write_text(init_script(guest_command(sys.argv[1:]), status_file))
        init.chmod(0o755)
        command = [UML, "mem=1536M", "rootfstype=hostfs", "rootflags=/", "rw", f"init={init}",
                   "con=null", "con0=null,fd:1", "quiet", "loglevel=1"]
        print(f"v2_guest: booting {UML} ({platform.machine()}) with {init}", flush=True)
        try:
            subprocess.run(command, stdin=subprocess.DEVNULL, timeout=900, cwd=work)
        except subprocess.TimeoutExpired:
            print("v2_guest: the guest did not finish in 15 minutes", file=sys.stderr)
            return 1
        if not status_file.exists():
            print("v2_guest: the guest ended without a test status (see its output above)",
                  file=sys.stderr)
            return 1
        return int(status_file.read_text().strip() or 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
