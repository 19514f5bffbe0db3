"""The rows of `make bench`: each a small function that returns the two sides to interleave.

A row function gets the `Bench` (the workspace and the peers, each set up on first use) and
returns (A, B); the ratio reported is A/B. A row that cannot run raises `Skip` with a one-line
reason; a peer that cannot run here makes every row that needs it skip with the same reason.
Adding a row is one function with `@row(...)`; the rows of chapters not written yet say which
chapter they wait for (`needs`), and say so differently once that chapter's command exists.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import engines, images, oci
from bench import measure
from bench.measure import Side
from bench.workspace import Workspace

MIB = 1024 * 1024
START = "Start → exit of `true`, no network"
FLOORS = "Floors: what any start pays"
MEMORY = "Start → exit with `--memory 64m` (the cgroup's cost)"
IMAGES = "Images"
LATER = "Later chapters"


class Skip(Exception):
    """This row cannot run here; the message is the one-line reason."""


@dataclass
class RowSpec:
    group: str
    title: str
    make: Callable[["Bench"], tuple[Side, Side]]
    warmup: int = 2


ROWS: list[RowSpec] = []


def row(group: str, title: str, warmup: int = 2) -> Callable:
    def register(make: Callable[["Bench"], tuple[Side, Side]]) -> Callable:
        ROWS.append(RowSpec(group, title, make, warmup))
        return make
    return register


class Bench:
    """The workspace, and each peer set up once, on first use, and remembered (or its failure,
    so every row that needs a missing peer skips with the same one line)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.launcher = measure.build_launcher(ws.dir)
        self.versions: dict[str, str] = {}
        self.notes: list[str] = []
        self._cache: dict[str, Any] = {}

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = make()
            except (oci.Unavailable, RuntimeError, OSError, subprocess.SubprocessError) as e:
                self._cache[key] = Skip(f"{key}: {e}")
        value = self._cache[key]
        if isinstance(value, Skip):
            raise value
        return value

    def started(self, key: str) -> Any | None:
        """The peer `key` if a row has set it up (None if none did, or it could not run)."""
        value = self._cache.get(key)
        return None if isinstance(value, Skip) else value

    # --- mini -------------------------------------------------------------------------------

    def mini(self, label: str, *args: str) -> Side:
        self.cached("busybox", lambda: images.busybox_rootfs(self.ws))  # built before timing
        return Side(label, [[*images.mini_argv(), *args]], env=self.ws.env)

    def mini_commands(self) -> str:
        """`mini --help` and `mini run --help`: what commands and flags exist today."""
        return self.cached("mini-help", lambda: images.mini(self.ws, "--help")
                           + images.mini(self.ws, "run", "--help"))

    def needs(self, chapter: str, word: str) -> None:
        """Skip: the row waits for a chapter, or (once its command exists) for its code here."""
        if word not in self.mini_commands():
            raise Skip(f"needs chapter {chapter}")
        raise Skip(f"mini has `{word.strip()}` now: write this row in bench/rows.py")

    # --- peers ------------------------------------------------------------------------------

    def rootfs(self) -> str:
        return str(self.cached("busybox", lambda: images.busybox_rootfs(self.ws)))

    def oci(self, runtime: str, memory: int | None = None) -> Side:
        mount_ns = self.cached("crun-mask", self._crun_mask) if runtime == "crun" else None
        self.cached(runtime, lambda: self.versions.setdefault(
            runtime, oci.runtime_version(self.ws, runtime)))
        bundle = self.cached(f"bundle-{memory}", lambda: oci.make_bundle(
            self.ws, f"m{memory // MIB}" if memory else "plain", images.busybox_rootfs(self.ws), memory))
        return oci.run_delete(self.ws, runtime, bundle, mount_ns)

    def _crun_mask(self) -> str | None:
        oci.tool("crun")
        mount_ns = oci.crun_mount_ns(self.ws)
        if mount_ns:
            self.notes.append("crun 1.8 refuses a hybrid cgroup host whose cgroup2 tree lists a "
                              "controller (here hugetlb): it runs in a private mount namespace where "
                              "/sys/fs/cgroup/unified/cgroup.controllers reads empty; the launcher joins "
                              "it before its clock starts (no wrapper process is timed). crun 1.8 has "
                              "no `run --keep`: its row is `crun run`, which deletes at exit.")
        return mount_ns

    def podman(self) -> engines.Podman:
        def start() -> engines.Podman:
            podman = engines.Podman(self.ws)
            podman("load", "-i", str(images.busybox_archive(self.ws)))
            self.versions["podman"] = podman.version + ", runtime runc"
            return podman
        return self.cached("podman", start)

    def docker(self) -> engines.Docker:
        def start() -> engines.Docker:
            docker = engines.Docker(self.ws)
            docker("load", "-i", str(images.busybox_archive(self.ws)))
            self.versions["docker"] = docker.version
            return docker
        return self.cached("docker", start)


def then(call: Callable[..., object], *args: object) -> Callable[[], None]:
    """An untimed step after each run (e.g. remove what the run made), its output dropped."""
    def step() -> None:
        call(*args)
    return step


def floor(b: Bench) -> Side:
    return Side("unshare … chroot", [["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc",
                                      "--net", "--mount-proc", "chroot", b.rootfs(), "/bin/true"]],
                env=b.ws.env)


def mini_run(b: Bench, *flags: str) -> Side:
    """`mini run --rm --network none busybox true` (the peers' rows have no network either)."""
    return b.mini(" ".join(["mini run --rm", *flags]), "run", "--rm", "--network", "none", *flags,
                  "busybox", "true")


# --- start → exit of `true` ----------------------------------------------------------------

@row(START, "mini vs the bare syscalls")
def true_floor(b: Bench) -> tuple[Side, Side]:
    return mini_run(b), floor(b)


@row(START, "mini vs runc")
def true_runc(b: Bench) -> tuple[Side, Side]:
    return mini_run(b), b.oci("runc")


@row(START, "mini vs crun")
def true_crun(b: Bench) -> tuple[Side, Side]:
    return mini_run(b), b.oci("crun")


@row(START, "mini vs podman")
def true_podman(b: Bench) -> tuple[Side, Side]:
    podman = b.podman()
    return mini_run(b), podman.side("podman run --rm", *podman.run_args())


@row(START, "mini vs docker")
def true_docker(b: Bench) -> tuple[Side, Side]:
    docker = b.docker()
    return mini_run(b), docker.side("docker run --rm", "run", "--rm", "--network=none", "busybox", "true")


# --- floors ----------------------------------------------------------------------------------

@row(FLOORS, "Python floor vs the bare syscalls")
def python_floor(b: Bench) -> tuple[Side, Side]:
    return Side("python3 -c pass", [[sys.executable, "-c", "pass"]], env=b.ws.env), floor(b)


@row(FLOORS, "CLI floor vs Python floor")
def cli_floor(b: Bench) -> tuple[Side, Side]:
    return b.mini("mini version", "version"), \
        Side("python3 -c pass", [[sys.executable, "-c", "pass"]], env=b.ws.env)


@row(FLOORS, "mini run vs CLI floor")
def run_vs_cli(b: Bench) -> tuple[Side, Side]:
    return mini_run(b), b.mini("mini version", "version")


# --- with a memory limit ---------------------------------------------------------------------

@row(MEMORY, "mini vs runc")
def memory_runc(b: Bench) -> tuple[Side, Side]:
    return mini_run(b, "--memory", "64m"), b.oci("runc", 64 * MIB)


@row(MEMORY, "mini vs crun")
def memory_crun(b: Bench) -> tuple[Side, Side]:
    return mini_run(b, "--memory", "64m"), b.oci("crun", 64 * MIB)


@row(MEMORY, "mini vs podman")
def memory_podman(b: Bench) -> tuple[Side, Side]:
    podman = b.podman()
    return mini_run(b, "--memory", "64m"), \
        podman.side("podman run --rm --memory 64m", *podman.run_args("--memory", "64m"))


@row(MEMORY, "mini vs docker")
def memory_docker(b: Bench) -> tuple[Side, Side]:
    docker = b.docker()
    return mini_run(b, "--memory", "64m"), docker.side(
        "docker run --rm --memory 64m", "run", "--rm", "--network=none", "--memory", "64m", "busybox", "true")


@row(MEMORY, "mini with vs without the limit")
def memory_cost(b: Bench) -> tuple[Side, Side]:
    return mini_run(b, "--memory", "64m"), mini_run(b)


# --- images ------------------------------------------------------------------------------------

def mini_commit(b: Bench) -> Side:
    def container() -> str:
        images.mini(b.ws, "run", "--name", images.COMMIT_CONTAINER, "--network", "none", "busybox", *images.CHANGE)
        return images.COMMIT_CONTAINER
    name = b.cached("mini-commit-container", container)
    side = b.mini("mini commit (10 MB)", "commit", name, images.COMMIT_IMAGE)
    side.after = then(images.mini, b.ws, "rmi", images.COMMIT_IMAGE)
    return side


@row(IMAGES, "commit of a 10 MB change: mini vs docker", warmup=1)
def commit_docker(b: Bench) -> tuple[Side, Side]:
    docker = b.docker()
    b.cached("docker-commit-container", lambda: docker(
        "run", "--name", images.COMMIT_CONTAINER, "--network=none", "busybox", *images.CHANGE))
    side = docker.side("docker commit (10 MB)", "commit", images.COMMIT_CONTAINER, images.COMMIT_IMAGE)
    side.after = then(docker, "rmi", images.COMMIT_IMAGE)
    return mini_commit(b), side


@row(IMAGES, "commit of a 10 MB change: mini vs podman", warmup=1)
def commit_podman(b: Bench) -> tuple[Side, Side]:
    podman = b.podman()
    b.cached("podman-commit-container", lambda: podman(
        "run", "--name", images.COMMIT_CONTAINER, "--network=none", f"--cgroup-parent={podman.cgroup}",
        "busybox", *images.CHANGE))
    side = podman.side("podman commit (10 MB)", "commit", "-q", images.COMMIT_CONTAINER, images.COMMIT_IMAGE)
    side.after = then(podman, "rmi", images.COMMIT_IMAGE)
    return mini_commit(b), side


def mini_load(b: Bench) -> Side:
    archive = str(b.cached("load-archive", lambda: images.load_archive(b.ws)))
    side = b.mini("mini load (100 MB, 5 layers)", "load", "-q", "-i", archive)
    side.after = then(images.mini, b.ws, "rmi", images.LOAD_IMAGE)
    return side


@row(IMAGES, "load of 100 MB in 5 layers: mini vs docker", warmup=1)
def load_docker(b: Bench) -> tuple[Side, Side]:
    docker, a = b.docker(), mini_load(b)
    side = docker.side("docker load", "load", "-q", "-i", str(images.load_archive(b.ws)))
    side.after = then(docker, "rmi", images.LOAD_IMAGE)
    return a, side


@row(IMAGES, "load of 100 MB in 5 layers: mini vs podman", warmup=1)
def load_podman(b: Bench) -> tuple[Side, Side]:
    podman, a = b.podman(), mini_load(b)
    side = podman.side("podman load", "load", "-q", "-i", str(images.load_archive(b.ws)))
    side.after = then(podman, "rmi", images.LOAD_IMAGE)
    return a, side


# --- later chapters: one function each, skipped until the chapter lands -------------------------

@row(LATER, "exec `true` into a running container: mini vs runc exec")
def exec_true(b: Bench) -> tuple[Side, Side]:
    b.needs("06", " exec ")


@row(LATER, "logs of 100k lines: mini vs docker")
def logs_100k(b: Bench) -> tuple[Side, Side]:
    b.needs("06", " logs ")


@row(LATER, "ps with 50 containers: mini vs docker")
def ps_50(b: Bench) -> tuple[Side, Side]:
    b.needs("06", " ps ")


@row(LATER, "monitor USS per container, 50 running: mini vs conmon, containerd-shim")
def monitor_uss(b: Bench) -> tuple[Side, Side]:
    b.needs("06", "--detach")


@row(LATER, "run with the default bridge: mini vs podman, docker")
def bridge(b: Bench) -> tuple[Side, Side]:
    b.needs("07", "--network")


@row(LATER, "pull busybox from a local registry: mini vs skopeo")
def pull(b: Bench) -> tuple[Side, Side]:
    b.needs("10", " pull ")
