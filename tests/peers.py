"""Real peers for the image tests: a private Docker daemon and skopeo (Debian's docker.io, skopeo).

`dockerd` is a session-scoped fixture: one daemon for the whole session, started on first use.
A test module takes it with `from peers import dockerd` (tests/ is on sys.path). The daemon is
as private as it can be made:

- its data root, exec root, pidfile, trust key, containerd's state and the API socket all live
  in one temporary directory; it listens on that unix socket only (no TCP);
- `--iptables=false --ip6tables=false --bridge=none --ip-forward=false --ip-masq=false`: it
  creates no bridge and writes no firewall rule or sysctl; tests run containers with
  `--network none` (a private, empty network namespace) and `--rm`;
- it runs in a mount namespace of its own (`unshare --mount --propagation private`): its layer,
  shm and netns mounts are invisible to the host and vanish with the namespace, even if the
  daemon dies (nothing for the leak check in tests/conftest.py to find). dockerd 20.10 and
  containerd 1.6 also write at fixed paths whatever their roots are (/run/docker/plugins,
  /opt/containerd/{bin,lib}, shim sockets in /run/containerd/s): inside the namespace a tmpfs
  covers each of those three directories, so nothing of theirs reaches the host's (and a
  system Docker's own sockets there stay out of our daemon's sight);
- its containers' cgroups go under a parent named `mini-docker-PID`, made before the first test
  and removed at the end, instead of docker's default `/docker`;
- it gets SIGTERM if the test process dies without a teardown (PR_SET_PDEATHSIG).

Teardown stops the daemon by PID (SIGTERM, wait, SIGKILL), kills by PID whatever is left in its
cgroups or its mount namespace (containers and shims, if the daemon had to be killed), lazily
unmounts anything still mounted under its own directory (deepest first; never anything else),
removes the cgroups, the mount-point directories it had to create (unless another session's
daemon now uses them) and its directory. Whatever was not clean is reported as an error of the
fixture's teardown.

Missing tools skip the tests, except in CI (env CI set), where `make test` should have installed
them (scripts/provision.sh --test): there they fail.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCKERD = Path("/usr/sbin/dockerd")
# Debian's own client (20.10, like the daemon, and installed with it). A newer client on PATH,
# e.g. /usr/local/bin/docker 28, negotiates the API down too, but a fresh machine may lack it.
DOCKER = Path("/usr/bin/docker")
SKOPEO = Path("/usr/bin/skopeo")
UNSHARE = Path("/usr/bin/unshare")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

# Where dockerd/containerd write whatever their roots: covered by a tmpfs in the daemon's own
# mount namespace. A missing one is made (a mount point, marked) and removed at the end.
_COVERED = ("/run/docker", "/run/containerd", "/opt/containerd")
_MADE_MARK = ".made-by-mini-dockerd"  # in such a directory that we made, on the host's side
_HOST_KEY = "/etc/docker/key.json"  # dockerd's default; moved by deprecated-key-path
_SKOPEO_SYSTEM_CACHE = "/var/lib/containers"  # skopeo's blob-info cache as root; kept away
PR_SET_PDEATHSIG = 1
MNT_DETACH = 2

# In the new mount namespace: a tmpfs on each directory named before `--`, then exec the
# daemon (the PID stays the one subprocess started).
_LAUNCH = ('while [ "$1" != -- ]; do mount -t tmpfs -o mode=0711,size=64m mini-dockerd "$1" '
           '|| exit 125; shift; done; shift; exec "$@"')


def unavailable(what: str) -> None:
    """Skip (fail in CI, where `make test` installs the peers) because `what` is missing."""
    message = f"{what} (scripts/provision.sh --test installs docker.io and skopeo)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need(*tools: Path) -> None:
    for tool in tools:
        if not os.access(tool, os.X_OK):
            unavailable(f"{tool} is not installed")


# --- skopeo ------------------------------------------------------------------------------------

def skopeo(*args: str, work: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`skopeo ARGS` keeping all it keeps in the directory `work`; the result, or AssertionError
    with skopeo's stderr. No host configuration matters and nothing on the host changes:

    - a private trust policy that accepts anything (the images are local files);
    - its temporary files under `work`;
    - its blob-info cache (which digests are compressed forms of which: skopeo uses it to reuse
      blobs, so a shared one would make results depend on earlier copies) under `work` too.
      As root, skopeo 1.9 keeps that cache in /var/lib/containers/cache, with no flag to move
      it; for another UID it keeps it under $XDG_DATA_HOME. containers/image takes that UID from
      _CONTAINERS_ROOTLESS_UID when set, which changes nothing else for local transports.
    """
    need(SKOPEO)
    work.mkdir(parents=True, exist_ok=True)
    policy = work / "policy.json"
    if not policy.exists():
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    env = dict(os.environ, TMPDIR=str(work), XDG_DATA_HOME=str(work / "data"),
               _CONTAINERS_ROOTLESS_UID=str(os.getuid() or 65534))
    had_cache = os.path.lexists(_SKOPEO_SYSTEM_CACHE)
    result = subprocess.run([str(SKOPEO), "--policy", str(policy), *args], capture_output=True,
                            text=True, timeout=timeout, env=env)
    assert had_cache or not os.path.lexists(_SKOPEO_SYSTEM_CACHE), \
        f"skopeo made {_SKOPEO_SYSTEM_CACHE} after all"
    if result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stderr}{result.stdout}")
    return result


# --- the private Docker daemon -----------------------------------------------------------------

@dataclass
class Dockerd:
    """A running private daemon, and a client for it."""

    root: Path
    pid: int
    driver: str
    env: dict[str, str] = field(repr=False)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def run(self, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`docker ARGS` against this daemon, output captured; never raises on exit status."""
        return subprocess.run([str(DOCKER), *args], capture_output=True, text=True, input=input,
                              timeout=timeout, env=self.env)

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None) -> str:
        """`docker ARGS`: its stdout, or AssertionError with its stderr and the daemon log's tail."""
        result = self.run(*args, timeout=timeout, input=input)
        if result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stderr}{result.stdout}\n--- dockerd log (tail) ---\n"
                                 f"{self.log_tail()}")
        return result.stdout

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        # containerd's gRPC connection chatter says nothing useful: keep the daemon's own lines.
        kept = [line for line in text.splitlines() if "module=grpc" not in line]
        return "\n".join(kept[-lines:])


def _cgroup_hierarchies() -> list[Path]:
    """The mount points of the cgroup hierarchies (v1 controllers, named ones, v2)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup"):
                found.append(Path(fields[4]))
    return found


def _make_cgroup_parent(name: str) -> list[Path]:
    """`/NAME` in every hierarchy, made now so that the daemon's first container does not make
    it in the middle of a test (the leak check would see a new `mini*` cgroup)."""
    made = []
    for hierarchy in _cgroup_hierarchies():
        directory = hierarchy / name
        try:
            directory.mkdir()
        except FileExistsError:
            pass
        except OSError:
            continue  # e.g. a read-only hierarchy: runc does without it, or says why
        made.append(directory)
        for cpuset in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until copied down
            own, parent = directory / cpuset, hierarchy / cpuset
            if own.exists() and parent.exists() and not own.read_text().strip():
                own.write_text(parent.read_text())
    return made


def _pids_in_cgroups(directories: list[Path]) -> set[int]:
    pids = set()
    for directory in directories:
        for procs in directory.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                pass
    return pids


def _remove_cgroups(directories: list[Path]) -> list[str]:
    problems = []
    for directory in directories:
        subs = [p for p in directory.rglob("*") if p.is_dir()]
        for sub in sorted(subs, key=lambda p: len(p.parts), reverse=True) + [directory]:
            try:
                sub.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f"cgroup {sub} not removed: {e}")
    return problems


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return [p for p in points if p == str(root) or p.startswith(prefix)]


def _unmount_under(root: Path) -> list[str]:
    """Lazily unmount every mount point under `root` (ours only), deepest first."""
    left = _mounts_under(root)
    libc = ctypes.CDLL(None, use_errno=True)
    for point in sorted(left, key=lambda p: p.count("/"), reverse=True):
        libc.umount2(point.encode(), MNT_DETACH)
    return left


def _mount_ns(pid: int | str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def _private_mount_ns(pid: int) -> int | None:
    """The daemon's mount namespace, once `unshare` has made it (None before)."""
    ns = _mount_ns(pid)
    return ns if ns != _mount_ns("self") else None


def _mount_points_elsewhere() -> set[str]:
    """Mount points of every other mount namespace on the machine."""
    seen, points = {_mount_ns("self")}, set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (ns := _mount_ns(entry)) in seen:
            continue
        seen.add(ns)
        try:
            with open(f"/proc/{entry}/mountinfo") as f:
                points.update(line.split()[4] for line in f)
        except OSError:
            pass
    return points


def _kill_leftovers(ns: int | None, cgroups: list[Path]) -> list[str]:
    """SIGKILL, by PID, what the daemon left: processes in its mount namespace (containerd,
    shims) or in its containers' cgroups (a container has its own mount namespace)."""
    def left() -> set[int]:
        pids = _pids_in_cgroups(cgroups)
        if ns is not None:
            pids.update(int(e) for e in os.listdir("/proc") if e.isdigit() and _mount_ns(e) == ns)
        return pids - {os.getpid()}

    deadline = time.monotonic() + 5
    while (pids := left()) and time.monotonic() < deadline:
        time.sleep(0.1)  # containerd and the shims exit just after dockerd
    problems = []
    for pid in sorted(pids):
        try:
            os.kill(pid, signal.SIGKILL)
            problems.append(f"pid {pid} outlived the daemon: killed")
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:  # reap the ones that came to us (pytest is a child subreaper)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return problems


def _stop(process: subprocess.Popen) -> list[str]:
    """SIGTERM the daemon (it stops its containers and its containerd), wait, SIGKILL."""
    if process.poll() is not None:
        return []
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
        return []
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return [f"dockerd (pid {process.pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f} s: killed"]


def _command(root: Path, driver: str, cgroup_parent: str) -> list[str]:
    (root / "daemon.json").write_text(json.dumps({
        # dockerd 20.10 writes its libtrust key to /etc/docker/key.json unless told otherwise.
        "deprecated-key-path": str(root / "key.json"),
    }))
    return [
        str(UNSHARE), "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", _LAUNCH, "mini-dockerd-launch", *_COVERED, "--",
        str(DOCKERD),
        "--config-file", str(root / "daemon.json"),
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "docker.pid"),
        "--host", f"unix://{root / 'docker.sock'}",
        "--iptables=false", "--ip6tables=false", "--bridge=none",
        "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
        "--storage-driver", driver,
        "--exec-opt", "native.cgroupdriver=cgroupfs",  # plain directories, also under systemd
        "--cgroup-parent", f"/{cgroup_parent}",
    ]


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _start(root: Path, driver: str, cgroup_parent: str) -> subprocess.Popen:
    data = root / "data"
    if data.exists():
        shutil.rmtree(data)
    with open(root / "dockerd.log", "ab") as log:
        log.write(f"=== dockerd, storage driver {driver} ===\n".encode())
        log.flush()
        return subprocess.Popen(_command(root, driver, cgroup_parent), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                                start_new_session=True)  # its own session and process group


def _client_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "BUILDKIT_"))}
    (root / "client").mkdir(exist_ok=True)
    env.update(DOCKER_HOST=f"unix://{root / 'docker.sock'}",
               DOCKER_CONFIG=str(root / "client"),  # not ~/.docker
               DOCKER_BUILDKIT="0")  # the classic builder: `docker build --network none`
    return env


@contextmanager
def private_dockerd(root: Path) -> Iterator[Dockerd]:
    """A private dockerd in the empty directory `root` for the duration of the block."""
    need(DOCKERD, DOCKER, UNSHARE)
    if len(str(root / "exec" / "containerd" / "containerd.sock.ttrpc")) > 100:
        raise ValueError(f"{root}: too long for the daemon's unix sockets (108 bytes at most)")
    key_before = os.path.lexists(_HOST_KEY)
    for directory in _COVERED:
        if not os.path.lexists(directory):
            os.makedirs(directory, mode=0o711)
            Path(directory, _MADE_MARK).touch()
    cgroup_parent = f"mini-docker-{os.getpid()}"
    cgroups = _make_cgroup_parent(cgroup_parent)
    env = _client_env(root)
    process = ns = daemon = None
    problems: list[str] = []
    try:
        for driver in ("overlay2", "vfs"):
            process, ns = _start(root, driver, cgroup_parent), None
            daemon = Dockerd(root, process.pid, driver, env)
            deadline = time.monotonic() + START_TIMEOUT
            while process.poll() is None and time.monotonic() < deadline:
                ns = ns or _private_mount_ns(process.pid)
                if daemon.socket.exists():
                    probe = daemon.run("info", "--format", "{{.ServerVersion}}", timeout=10)
                    if probe.returncode == 0 and probe.stdout.strip():
                        break
                time.sleep(0.2)
            if process.poll() is None and time.monotonic() < deadline:
                break  # it answers
            problems += _stop(process) + _kill_leftovers(ns, cgroups)
            process = None
            if time.monotonic() >= deadline:
                unavailable(f"dockerd did not answer within {START_TIMEOUT:.0f} s; its log:\n"
                            f"{daemon.log_tail()}")
            # It exited: overlay2 may be impossible here (e.g. on an overlay or old kernel): vfs.
        else:
            unavailable(f"dockerd did not start (overlay2 nor vfs); its log:\n{daemon.log_tail()}")
        yield daemon
    finally:
        if process is not None:
            problems += _stop(process) + _kill_leftovers(ns, cgroups)
        left = _unmount_under(root)
        if left:
            problems.append(f"mounts left under {root} (lazily unmounted): {left}")
        netns = root / "exec" / "netns"
        if netns.is_dir() and os.listdir(netns):
            problems.append(f"network namespace files left: {sorted(os.listdir(netns))}")
        problems += _remove_cgroups(cgroups)
        for directory in _COVERED:
            # Made here or by another session (marked), and only ever a mount point in a
            # private namespace. If another session's daemon uses it now, it stays: rmdir
            # would detach that one's tmpfs (the kernel allows it); that session removes it.
            mark = Path(directory, _MADE_MARK)
            if mark.exists() and directory not in _mount_points_elsewhere():
                mark.unlink()
                try:
                    os.rmdir(directory)
                except OSError as e:
                    problems.append(f"{directory} not removed: {e}")
        if not key_before and os.path.lexists(_HOST_KEY):
            problems.append(f"dockerd wrote {_HOST_KEY} after all (left alone)")
        shutil.rmtree(root, ignore_errors=True)
        if problems:
            raise AssertionError("the private dockerd did not stop cleanly:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """One private Docker daemon for the session (see the module's docstring)."""
    need(DOCKERD, DOCKER, UNSHARE)
    with private_dockerd(tmp_path_factory.mktemp("mini-dockerd")) as daemon:
        yield daemon
