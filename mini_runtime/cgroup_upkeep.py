"""Chapter 04: what mini does to the machine's cgroup hierarchies around its containers, rather
than to one container's cgroup (that is cgroups.py): sweeping the empty cgroups a killed `mini`
left, and taking the first cgroup.procs write's wait early (a speed trick, explained below)."""

from __future__ import annotations

import os
import time

from mini_runtime import cgroups


def sweep_empty(min_age: float = 60.0, live: frozenset[str] = frozenset()) -> None:
    """Remove container cgroups under `mini/` that hold no process and are older than `min_age`
    seconds: what a killed `mini` left. (A new cgroup is empty for a moment before its
    process joins: the age keeps us off those.) Those of `live` containers are not even looked
    at: this runs at every create, and should cost one directory listing per hierarchy."""
    if cgroups.mode() == "v2":
        parents = [cgroups.ROOT / cgroups.PARENT]
    else:
        parents = list({(cgroups.ROOT / c).resolve(): cgroups.ROOT / c / cgroups.PARENT for c in cgroups.V1_CONTROLLERS}.values())
    now = time.time()
    for parent in parents:
        if not parent.is_dir():
            continue
        for directory in parent.iterdir():
            if directory.name in live:
                continue
            try:
                if (directory.is_dir() and now - directory.stat().st_mtime > min_age
                        and not (directory / "cgroup.procs").read_text().strip()):
                    directory.rmdir()
            except OSError:
                pass  # in use after all, or gone already


# >>> warm-up
def warm_up() -> None:
    """Start paying, in a thread, the wait of the first cgroup.procs write after a quiet spell.

    Every write to any cgroup.procs takes one lock for the whole machine (the kernel's
    cgroup_threadgroup_rwsem) for writing. Readers of that lock (every fork) are made cheap,
    and the price is paid by the writer: the first one after a quiet spell waits for an RCU
    grace period, 5-20 ms here; writers that follow within a moment do not. So we write our own
    pid into the cgroup we are already in (nothing moves) while the container is being made,
    and the real write, a few ms later, is quick. Best effort: any error is ignored."""
    import _thread

    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return
    own = next((where for _, names, where in lines if names == ("" if cgroups.mode() == "v2" else "pids")), None)
    if own is None:
        return
    procs = cgroups.ROOT / ("" if cgroups.mode() == "v2" else "pids") / own.lstrip("/") / "cgroup.procs"

    def write() -> None:
        try:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass
    _thread.start_new_thread(write, ())
# <<< warm-up
