"""Shared test setup: private state roots, markers, and the leak check.

Every test runs with MINI_ROOT and MINI_RUN pointing at a private temporary directory (shared by
the session, so the built-in image is made once). The autouse `host_unchanged` fixture takes a
snapshot of the host before each test and fails the test if anything is left behind: a mount
(netns bind mounts included), a cgroup, a network link named like ours, a named netns (/run/netns,
$MINI_RUN/netns), an nftables table named mini* (of the machine's namespace), a child process
(pytest is a child subreaper, so even orphans of orphans come back to it), a container monitor of
this run (wherever its parent is), or a stray state file (a monitor's socket included).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_STATE = Path(tempfile.mkdtemp(prefix="mini-test-"))
os.environ["MINI_ROOT"] = str(_STATE / "lib")
os.environ["MINI_RUN"] = str(_STATE / "run")
# mini's default network is docker's, the bridge (chapter 07). Tests that run containers in the
# machine's own network namespace must never make a bridge, an address or NAT rules there, so
# their containers get `--network none` by default; the network tests run mini inside a private
# "test host" namespace (tests/netharness.py) and ask for the bridge there. Containers never see
# the machine's resolvers either: their resolv.conf starts from this file.
os.environ["MINI_DEFAULT_NETWORK"] = "none"
os.environ["MINI_DEBUG"] = "1"  # an unexpected exception is a traceback here, not mini's one line
os.environ["MINI_RESOLV_CONF"] = str(Path(__file__).resolve().parent / "data" / "resolv.conf")
# Container cgroups of this run live under a parent of its own, so that two test runs on one
# machine (a developer's and a helper's) never see each other's cgroups as leaks.
os.environ.setdefault("MINI_CGROUP_PARENT", f"mini-test-{os.getpid()}")
PR_SET_CHILD_SUBREAPER = 36


def pytest_configure(config: pytest.Config) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def pytest_unconfigure(config: pytest.Config) -> None:
    from mini_runtime import paths

    paths.remove_tree(_STATE)  # (not shutil.rmtree: a failed test may leave a tree too deep for it)
    # This run's cgroup parent, if empty (as /sys/fs/cgroup/*/docker, it stays after containers).
    parent = os.environ["MINI_CGROUP_PARENT"]
    for hierarchy in {"/sys/fs/cgroup", *(e.path for e in os.scandir("/sys/fs/cgroup") if e.is_dir())}:
        try:
            os.rmdir(os.path.join(hierarchy, parent))
        except OSError:
            pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (containers use namespaces, mounts and cgroups)")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)
    elif os.environ.get("MINI_V2_GUEST") == "1" and any(item.get_closest_marker("nat") for item in items):
        from netharness import NO_NAT, nat_missing  # the guest's kernel: skipped before any setup
        if nat_missing() is not None:
            skip = pytest.mark.skip(reason=f"v2 guest: {NO_NAT} (they run on the host)")
            for item in items:
                if item.get_closest_marker("nat"):
                    item.add_marker(skip)


# --- the leak check ----------------------------------------------------------------------------

_OTHER_RUNS = ("mini-test-", "mini-bench-")  # other test runs' and benchmarks' namespaces


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {" ".join(fields[3:5]) for fields in map(str.split, f) if not _another_runs(fields[4])}


def _another_runs(point: str) -> bool:
    """A mount in another test run's or benchmark's state dir (its containers' netns), or of its
    harness (/run/netns/mini-test-host-PID): this shared machine's other sessions, not our leak."""
    if point.startswith(str(_STATE)):
        return False
    name = point[len(tempfile.gettempdir()) + 1:] if point.startswith(tempfile.gettempdir() + "/") else ""
    last = point.rsplit("/", 1)[-1]
    return (name.startswith(_OTHER_RUNS)
            or last.startswith(_OTHER_RUNS) and not last.endswith(f"-{os.getpid()}"))


def _ours(name: str) -> bool:
    """Could this run have made it? This run's parent, its grader runs' per-check parents (`<parent>-grade-*`), or a mini
    name without a suffix (mini0). mini's default parent `mini` is shared with every other session
    on this machine (anyone's `mini run`), so it is not ours: what this run could leak under it is
    looked for by container id (`_ours_under_default`). Other `mini-*` names belong to other
    sessions' tests and benchmarks."""
    parent = os.environ["MINI_CGROUP_PARENT"]
    return (name == parent or name.startswith(parent + "-grade-")
            or not name.startswith("mini-"))


def _ours_under_default(hierarchy: str) -> set[str]:
    """A container of this run whose cgroup went under the default parent (code that ignores
    MINI_CGROUP_PARENT): a child of `mini` named after one of this run's containers."""
    containers = os.path.join(os.environ["MINI_ROOT"], "containers")
    default = os.path.join(hierarchy, "mini")
    if not (os.path.isdir(containers) and os.path.isdir(default)):
        return set()
    return {os.path.join(default, d) for d in set(os.listdir(default)) & set(os.listdir(containers))}


def _named_mini(base: str, depth: int) -> set[str]:
    found = set()
    for root, dirs, _ in os.walk(base):
        if root.count("/") - base.count("/") >= depth:
            dirs[:] = []
            continue
        if root.count("/") - base.count("/") <= 1 and "mini" in dirs:
            found |= _ours_under_default(root)
        for d in dirs:
            if d.startswith("mini") and d != "mini" and _ours(d):
                found.add(os.path.join(root, d))
    return found


#: The machine's network namespace, kept open: the checks below look there even while a network
#: test's thread is in its private "test host" namespace (tests/netharness.py).
_HOME_NET = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
CLONE_NEWNET = 0x40000000


def _at_home() -> None:
    if ctypes.CDLL(None, use_errno=True).setns(_HOME_NET, CLONE_NEWNET) != 0:
        os._exit(127)


def _nft_tables() -> set[str]:
    """The machine's nftables tables whose name says mini (ours, and other runs')."""
    if not shutil.which("nft"):
        return set()
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, preexec_fn=_at_home).stdout
    return {line for line in out.splitlines() if "mini" in line}


def _netns() -> set[str]:
    """Named network namespaces: `ip netns list` (/run/netns) and mini's ($MINI_RUN/netns)."""
    found = set()
    mine = f"-{os.getpid()}"
    for base in ("/run/netns", os.path.join(os.environ["MINI_RUN"], "netns")):
        if os.path.isdir(base):
            found |= {os.path.join(base, name) for name in os.listdir(base)
                      if not name.startswith(_OTHER_RUNS) or name.endswith(mine)}  # (another run's harness)
    return found


def _links() -> set[str]:
    """The machine's links named like ours: bridges mini*, veth ends mv*/mp* (and mr* of the notes),
    and the network harness's mth*/mto* pair, which belongs in its private namespaces only."""
    return {n for n in os.listdir("/sys/class/net") if n.startswith(("mini", "mv", "mp", "mr", "mth", "mto"))}


def _children() -> set[tuple[int, str]]:
    """Our living children. Dead ones (zombies, e.g. orphans that came to us as the subreaper)
    are reaped here: being dead, they hold nothing."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm_end = stat.rindex(")")
        fields = stat[comm_end + 2:].split()
        if int(fields[1]) == me and fields[0] == "Z":
            try:
                os.waitpid(int(entry), os.WNOHANG)
            except ChildProcessError:
                pass
        elif int(fields[1]) == me:
            found.add((int(entry), stat[stat.index("(") + 1:comm_end] + f" [{fields[0]}]"))
    return found


def _monitors() -> set[tuple[int, str]]:
    """Container monitors of this run (`-m mini_runtime.monitor ID`, chapter 06): they are in
    sessions of their own and need not be our children, so they are found by their command line
    and their MINI_RUN. (Their sockets are under MINI_RUN: "state files" covers them.)"""
    found = set()
    mine = ("MINI_RUN=" + os.environ["MINI_RUN"]).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if b"mini_runtime.monitor" not in argv or mine not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        found.add((int(entry), b" ".join(argv[argv.index(b"mini_runtime.monitor"):][:3]).decode()))
    return found


def _stray_state() -> set[str]:
    found = set()
    for base in (os.environ["MINI_ROOT"], os.environ["MINI_RUN"]):
        for root, dirs, files in os.walk(base):
            for name in dirs + files:
                if ".tmp-" in name or name.startswith(".unpack-"):
                    found.add(os.path.join(root, name))
    run = os.environ["MINI_RUN"]
    for name in os.listdir(run) if os.path.isdir(run) else []:  # (an empty containers/ may stay)
        inner = os.path.join(run, name)
        if name == "netns":
            continue                                               # counted under "netns"
        if name != "containers" or not os.path.isdir(inner):
            found.add(inner)
        else:
            found |= {os.path.join(inner, entry) for entry in os.listdir(inner)}
    containers = os.path.join(os.environ["MINI_ROOT"], "containers")
    for name in os.listdir(containers) if os.path.isdir(containers) else []:
        # A container that has exited is kept (chapter 05) with its record and files; one that
        # still has a work dir, volatile files under MINI_RUN, or no record was not finished properly.
        directory = os.path.join(containers, name)
        try:
            with open(os.path.join(directory, "container.json")) as f:
                exited = json.load(f)["State"]["Status"] == "exited"
        except (OSError, ValueError, KeyError):
            exited = False
        leftovers = {"work"} & set(os.listdir(directory))
        if not exited or leftovers:
            found.add(directory + (f" ({', '.join(sorted(leftovers))})" if leftovers else ""))
    index = os.path.join(os.path.dirname(containers), "names")
    for name in os.listdir(index) if os.path.isdir(index) else []:
        if not os.path.isdir(os.path.join(containers, os.readlink(os.path.join(index, name)))):
            found.add(os.path.join(index, name) + " (its container is gone)")  # a name not given back
    return found


def snapshot() -> dict[str, set]:
    return {
        "mounts": _mounts(),
        "cgroups": _named_mini("/sys/fs/cgroup", 3),
        "links": _links(),
        "netns": _netns(),
        "nftables": _nft_tables(),
        "children": _children(),
        "monitors": _monitors(),
        "state files": _stray_state(),
        "default roots": _default_roots(),
    }


def _default_roots() -> set[str]:
    """mini's own state roots on this machine, which a test that runs mini without the private
    MINI_ROOT and MINI_RUN (an env= that dropped them) would write into: each one's entries."""
    return {os.path.join(root, name) for root in ("/var/lib/mini", "/run/mini") if os.path.isdir(root)
            for name in os.listdir(root)}


def leaks(before: dict[str, set], after: dict[str, set]) -> dict[str, set]:
    return {k: after[k] - before[k] for k in after if after[k] - before[k]}


@pytest.fixture(autouse=True)
def host_unchanged(request: pytest.FixtureRequest):
    if "no_leak_check" in request.keywords:
        yield
        return
    before = snapshot()
    yield
    # Give exiting processes a moment to be reaped by whoever waits for them.
    deadline = time.monotonic() + 2
    while True:
        left = leaks(before, snapshot())
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid, _ in left.get("children", set()) | left.get("monitors", set()):  # don't let one leak poison the next test
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert not left, f"the test left this behind on the host: {left}"


# --- helpers -----------------------------------------------------------------------------------

def image_variant(name: str, drop: tuple[str, ...] = (), add: tuple = (), config: dict | None = None) -> str:
    """Store a variant of the built-in busybox image: entries named in `drop` left out,
    `add` = (name, kind, target-or-data) entries appended, `config` merged into its config's
    "config" (WorkingDir, User, ...). Returns the image name."""
    import io
    import tarfile

    from mini_runtime.image import busybox
    from mini_runtime.image.layout import sha256_digest
    from mini_runtime.image.store import Store

    source = tarfile.open(fileobj=io.BytesIO(busybox.build_layer()))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member in source:
            if member.name.rstrip("/") not in drop:
                tar.addfile(member, source.extractfile(member) if member.isreg() else None)
        for entry_name, kind, value in add:
            info = tarfile.TarInfo(entry_name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = value
                tar.addfile(info)
            elif kind == tarfile.DIRTYPE:
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(value), 0o644
                tar.addfile(info, io.BytesIO(value))
    layer = out.getvalue()
    image_config = busybox.image_config(sha256_digest(layer), 0)
    image_config["config"].update(config or {})
    Store().add_image(name, [layer], image_config)
    return name


MINI = [str(Path(sys.executable).parent / "mini")]


def mini(*args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the installed `mini` command, capturing text output."""
    return subprocess.run(MINI + list(args), capture_output=True, text=True, timeout=timeout, **kwargs)


def container_pid() -> int:
    """The host pid of the init of the container started last that runs: since chapter 06 it is
    the child of the container's monitor, not of `mini run`."""
    from mini_runtime import container

    running = [r for r in container.records() if r["State"]["Status"] == "running"]
    return max(running, key=lambda r: r["Created"])["State"]["Pid"]


@pytest.fixture(scope="session")
def state_root() -> Path:
    return Path(os.environ["MINI_ROOT"])
