"""runc and crun, the OCI runtimes under docker and podman, driven directly with a bundle.

The bundle is `runc spec`'s default (5 namespaces, pivot_root, 3 capabilities, no seccomp), the
process `/bin/true`, the root the very busybox tree mini runs (its image store flattens it),
read-only, and the cgroup under `/mini-bench-<pid>-oci/`. Each run is docker's two steps with
an explicit life cycle, `run --keep` then `delete`, timed together like mini's `run --rm`.

crun on a hybrid host: crun 1.8 refuses ("cgroups in hybrid mode not supported, drop all
controllers from cgroupv2") when the cgroup2 tree at /sys/fs/cgroup/unified lists a controller
in its cgroup.controllers (here: hugetlb, which v1 does not hold). The harness gives crun a
mount namespace of its own in which that one file is an empty one (a bind mount, invisible to
the host), held by a sleeping process; the launcher joins it before it starts the clock, so
crun pays no wrapper process. runc, mini and the others never see the mask.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bench.workspace import CGROUP_ROOT, Workspace
from bench.measure import Side

UNIFIED = CGROUP_ROOT / "unified"


class Unavailable(Exception):
    """A peer that cannot run here: the reason is one line."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise Unavailable(f"{name} is not installed (scripts/provision.sh --bench installs it)")
    return path


def version(argv: list[str]) -> str:
    """The first line a tool prints about its version ('?' if it will not say)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def runtime_version(ws: Workspace, runtime: str) -> str:
    """`RUNTIME --version`, with our state root: a bare `crun --version` makes /run/crun."""
    return version([tool(runtime), "--root", str(ws.path(f"{runtime}-state")), "--version"])


def make_bundle(ws: Workspace, name: str, rootfs: Path, memory: int | None = None,
                args: tuple[str, ...] = ("/bin/true",)) -> Path:
    """An OCI bundle running `args` (/bin/true) in `rootfs`, with a memory limit if given (and
    swap twice as much in all, as mini and docker default to)."""
    bundle = ws.path(f"bundle-{name}")
    subprocess.run([tool("runc"), "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"].update(terminal=False, args=list(args))
    spec["hostname"] = "bench"
    spec["linux"]["cgroupsPath"] = f"/{ws.cgroup_prefix}-oci/{name}"
    if memory:
        spec["linux"].setdefault("resources", {})["memory"] = {"limit": memory, "swap": 2 * memory}
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return bundle


def run_delete(ws: Workspace, runtime: str, bundle: Path, mount_ns: str | None = None) -> Side:
    """runc: `run --keep` then `delete`, docker's explicit life cycle, with a state root of
    our own. crun 1.8 has no `run --keep`: its `run` deletes the container at exit, one step."""
    binary = tool(runtime)
    state = ws.path(f"{runtime}-state")
    cid = f"{ws.cgroup_prefix}-{bundle.name}"
    base = [binary, "--root", str(state)]
    if runtime == "crun":
        return Side("crun run (deletes at exit)", [[*base, "run", "-b", str(bundle), cid]],
                    env=ws.env, mount_ns=mount_ns)
    return Side(f"{runtime} run + delete",
                [[*base, "run", "--keep", "-b", str(bundle), cid], [*base, "delete", cid]],
                env=ws.env, mount_ns=mount_ns)


def exec_side(ws: Workspace, bundle: Path) -> Side:
    """`runc run -d` of the bundle (a long sleep), kept until the workspace closes (`delete
    -f`), and the side to time: `runc exec ID /bin/true`."""
    binary = tool("runc")
    base = [binary, "--root", str(ws.path("runc-state"))]
    cid = f"{ws.cgroup_prefix}-{bundle.name}"
    ws.on_close(f"runc container {cid}", lambda: subprocess.run(
        [*base, "delete", "-f", cid], capture_output=True, timeout=60))
    errors = ws.dir / "runc-run-d.err"
    with open(errors, "wb") as err:  # (not a pipe: the container keeps its stdio open)
        started = subprocess.run([*base, "run", "-d", "-b", str(bundle), cid], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    if started.returncode != 0:
        raise Unavailable(f"runc run -d: {errors.read_text(errors='replace').strip()[-200:]}")
    return Side("runc exec", [[*base, "exec", cid, "/bin/true"]], env=ws.env)


def crun_needs_mask() -> bool:
    """Hybrid host whose cgroup2 tree lists a controller: crun 1.8 refuses to start."""
    controllers = UNIFIED / "cgroup.controllers"
    return (not (CGROUP_ROOT / "cgroup.controllers").exists() and controllers.exists()
            and bool(controllers.read_text().split()))


def crun_mount_ns(ws: Workspace) -> str | None:
    """None where crun runs as it is; else a mount namespace where the unified tree's
    cgroup.controllers reads empty (and /run is a tmpfs, so nothing crun might write at a
    default path reaches the host)."""
    if not crun_needs_mask():
        return None
    empty = ws.dir / "empty-cgroup.controllers"
    empty.write_text("")
    return ws.mount_namespace("crun", f"mount --bind {empty} {UNIFIED / 'cgroup.controllers'} && "
                                      "mount -t tmpfs -o size=16m mini-bench-crun /run")
