"""The rows of `make bench`: each a small function that returns the two sides to interleave.

A row function gets the `Bench` (peers.py: the workspace and the peers, each set up on first
use) and returns (A, B); the ratio reported is A/B. A row that cannot run raises `Skip` with a
one-line reason; a peer that cannot run here makes every row that needs it skip with the same
reason. Adding a row is one function with `@row(...)`; the rows of chapters not written yet say
which chapter they wait for (`needs`), and say so differently once that chapter's command exists.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import images, oci
from bench import measure
from bench.measure import Side
from bench.peers import MIB, Bench, Skip  # noqa: F401 (Skip: what rows raise, for readers and tests)

START = "Start → exit of `true`, no network"
FLOORS = "Floors: what any start pays"
MEMORY = "Start → exit with `--memory 64m` (the cgroup's cost)"
IMAGES = "Images"
LATER = "Later chapters"
COURSE = "The course"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


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

#: What any container runtime in Python imports before its own first line: records (json), the
#: monitor's socket, signals, the syscalls Python lacks (ctypes), and the paths of readable code
#: (pathlib). Not typing: mini's annotations need none of it at run time (mini_runtime/tuples.py).
RUNTIME_STDLIB = "import json, socket, signal, ctypes, pathlib, fcntl, select, termios, struct"


def python_floor_side(b: Bench) -> Side:
    """The interpreter as `mini` starts it: -S, no `site` (scripts/launcher.py)."""
    return Side("python3 -S -c pass", [[sys.executable, "-S", "-c", "pass"]], env=b.ws.env)


@row(FLOORS, "Python floor vs the bare syscalls")
def python_floor(b: Bench) -> tuple[Side, Side]:
    return python_floor_side(b), floor(b)


@row(FLOORS, "a runtime's standard library vs Python floor")
def stdlib_floor(b: Bench) -> tuple[Side, Side]:
    return Side("python3 -S -c 'import json, socket, …'", [[sys.executable, "-S", "-c", RUNTIME_STDLIB]],
                env=b.ws.env), python_floor_side(b)


@row(FLOORS, "CLI floor vs Python floor")
def cli_floor(b: Bench) -> tuple[Side, Side]:
    return b.mini("mini --version", "--version"), python_floor_side(b)


@row(FLOORS, "mini run vs CLI floor")
def run_vs_cli(b: Bench) -> tuple[Side, Side]:
    return mini_run(b), b.mini("mini --version", "--version")


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

LOGS = "mini-bench-logs"          # a container that printed 100k lines
MANY = 50                         # containers for the ps and USS rows


class Measured(Exception):
    """A row whose figure is not a pair of times (memory per container, the notebooks' time):
    the message is the result."""


def mini_running(b: Bench, name: str) -> str:
    """A detached mini container that sleeps, made once, removed when the workspace closes."""
    def start() -> str:
        images.mini(b.ws, "run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000000")
        b.ws.on_close(f"mini container {name}", then(images.mini, b.ws, "rm", "-f", name))
        return name
    return b.cached(f"mini-running-{name}", start)


@row(LATER, "exec `true` into a running container: mini vs runc exec")
def exec_true(b: Bench) -> tuple[Side, Side]:
    b.requires("06", " exec ")
    name = mini_running(b, "mini-bench-exec")
    runc = b.cached("runc-exec", lambda: oci.exec_side(b.ws, oci.make_bundle(
        b.ws, "sleep", images.busybox_rootfs(b.ws), args=("/bin/sleep", "1000000"))))
    return b.mini("mini exec", "exec", name, "true"), runc


@row(LATER, "logs of 100k lines: mini vs docker", warmup=1)
def logs_100k(b: Bench) -> tuple[Side, Side]:
    b.requires("06", " logs ")
    docker = b.docker()
    seq = ["busybox", "seq", "100000"]
    b.cached("mini-logs", lambda: images.mini(b.ws, "run", "--name", LOGS, "--network", "none", *seq))
    b.cached("docker-logs", lambda: docker("run", "--name", LOGS, "--network=none", *seq))
    return b.mini("mini logs", "logs", LOGS), docker.side("docker logs", "logs", LOGS)


@row(LATER, f"ps -a with {MANY} containers (exited): mini vs docker")
def ps_50(b: Bench) -> tuple[Side, Side]:
    b.requires("06", " ps ")
    docker = b.docker()

    def fill(count: Callable[[], int], run: Callable[[int], object]) -> Callable[[], None]:
        def make() -> None:
            for i in range(MANY - count()):  # (other rows' containers count too)
                run(i)
        return make
    b.cached("mini-ps", fill(lambda: len(images.mini(b.ws, "ps", "-aq").split()),
                             lambda i: images.mini(b.ws, "run", "--name", f"mini-bench-ps-{i}",
                                                   "--network", "none", "busybox", "true")))
    b.cached("docker-ps", fill(lambda: len(docker("ps", "-aq").split()),
                               lambda i: docker("run", "--name", f"mini-bench-ps-{i}", "--network=none",
                                                "busybox", "true")))
    return b.mini("mini ps -a", "ps", "-a"), docker.side("docker ps -a", "ps", "-a")


@row(LATER, f"monitor USS per container, {MANY} running: mini vs containerd-shim")
def monitor_uss(b: Bench) -> tuple[Side, Side]:
    """Not a time: the unique memory (USS) of each container's monitor with MANY running, mini's
    against docker's containerd-shim (podman's conmon: not measured here). Measured, then the
    containers are removed at once (they would weigh on the other rows)."""
    b.requires("06", "--detach")
    names = [f"mini-bench-uss-{i}" for i in range(MANY)]
    for name in names:
        images.mini(b.ws, "run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000000")
    try:
        ids = images.mini(b.ws, "ps", "-q", "--no-trunc", "--filter", "name=mini-bench-uss-").split()
        owners = [b.ws.mini_root / "run" / "containers" / cid / "owner" for cid in ids]
        mini = sorted(measure.uss_mib(int(owner.read_text().split()[0])) for owner in owners)
    finally:
        images.mini(b.ws, "rm", "-f", *names)
    text = (f"mini's monitor: {statistics.median(mini):.1f} MiB USS per container (median of {len(mini)}; "
            f"{mini[0]:.1f}–{mini[-1]:.1f})")
    docker = b.started("docker")
    if docker is not None:
        ids = [docker("run", "-d", "--network=none", "busybox", "sleep", "1000000").strip()
               for _ in range(MANY)]
        try:
            shims = sorted(measure.uss_mib(int(pid)) for pid in (docker.cpuacct / "cgroup.procs").read_text().split()
                           if Path(f"/proc/{pid}/comm").read_text().startswith("containerd-shim"))
        finally:
            docker("rm", "-f", *ids)
        if shims:
            text += (f"; docker's containerd-shim: {statistics.median(shims):.1f} MiB "
                     f"(median of {len(shims)}; {shims[0]:.1f}–{shims[-1]:.1f})")
    raise Measured(text + ". podman's conmon: not measured")


def mini_bridge(b: Bench) -> Side:
    """mini on its default bridge, in a private network namespace (netns.py), as docker and
    podman run there: never a bridge or NAT rule in this machine's own namespace."""
    b.requires("07", "--network")
    return b.bridge_mini()


@row(LATER, "run with the default bridge: mini vs docker")
def bridge_docker(b: Bench) -> tuple[Side, Side]:
    a, docker = mini_bridge(b), b.bridge_docker()
    return a, docker.side("docker run --rm (bridge)", "run", "--rm", "busybox", "true")


@row(LATER, "run with the default bridge: mini vs podman")
def bridge_podman(b: Bench) -> tuple[Side, Side]:
    a, podman = mini_bridge(b), b.bridge_podman()
    return a, podman.side("podman run --rm (bridge)", "run", "--rm", "--pull=never",
                          f"--cgroup-parent={podman.cgroup}", "busybox", "true")


@row(COURSE, "the notebooks, each run top to bottom once")
def notebooks(b: Bench) -> tuple[Side, Side]:
    """Not a pair: what a learner's "Run All" costs, each notebook run once by nbclient in a
    fresh kernel, as `make test` runs them (each makes and removes its own lab directory)."""
    import time

    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        raise Skip("needs nbclient and nbformat (make setup)") from None
    took = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        start = time.monotonic()
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        took[path.name[:2]] = time.monotonic() - start  # (a failing cell raises: the row fails)
    if not took:
        raise Skip(f"no notebook in {NOTEBOOKS}")
    slowest = max(took, key=took.__getitem__)
    raise Measured(f"{len(took)} notebooks in {sum(took.values()):.1f} s ("
                   + ", ".join(f"{n}: {t:.1f}" for n, t in took.items()) + f"; slowest {slowest})")


@row(LATER, "pull busybox from a local registry: mini vs skopeo")
def pull(b: Bench) -> tuple[Side, Side]:
    b.needs("10", " pull ")
