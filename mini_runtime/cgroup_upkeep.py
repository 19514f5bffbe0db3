"""Chapter 04: what mini does to the machine's cgroup hierarchies around its containers, rather
than to one container's cgroup (that is cgroups.py): sweeping the empty cgroups a killed `mini`
left, and taking the first cgroup.procs write's wait early (a speed trick, explained below)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mini_runtime import cgroups


def sweep_empty(min_age: float = 60.0, live: frozenset[str] = frozenset()) -> None:
    """Remove container cgroups under `mini/` that hold no process and are older than `min_age`
    seconds: what a killed `mini` left. (A new cgroup is empty for a moment before its
    process joins: the age keeps us off those.) Those of `live` containers are not even looked
    at: this runs at every create (and exec, ps, inspect), and should cost one directory listing
    per hierarchy: os.scandir's entries say which are directories, so the parent's own files
    (memory.stat and the rest, most of a v1 listing) are passed over without a stat each."""
    if cgroups.mode() == "v2":
        parents = [cgroups.ROOT / cgroups.PARENT]
    else:
        parents = list({(cgroups.ROOT / c).resolve(): cgroups.ROOT / c / cgroups.PARENT for c in cgroups.V1_CONTROLLERS}.values())
    now = time.time()
    for parent in parents:
        try:
            entries = list(os.scandir(parent))
        except OSError:
            continue  # (no container made under it yet)
        for entry in entries:
            if entry.name in live or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                if (now - entry.stat().st_mtime > min_age
                        and not Path(entry.path, "cgroup.procs").read_text().strip()):
                    os.rmdir(entry.path)
            except OSError:
                pass  # in use after all, or gone already


# >>> warm-up
#: Until when this process keeps the cgroup lock warm (0: it has not started to).
_warm_until = [0.0]


def warm_up(seconds: float = 0.3) -> None:
    """Keep the kernel's slow first cgroup.procs write off the start path.

    Every write to any cgroup.procs takes one lock for the whole machine (the kernel's
    cgroup_threadgroup_rwsem) for writing. Readers of that lock (every fork) are made cheap,
    and the writer pays: the first write after a quiet spell waits for an RCU grace period,
    8-20 ms here, and holds cgroup_mutex meanwhile, so a mkdir in any cgroup tree waits too.
    A write within ~10 ms of the last one does not wait. So, from the moment `mini` knows it
    will make a container, a thread writes our own pid into the cgroup we are already in
    (nothing moves) every few ms for `seconds`: the one wait passes while the pipeline's
    modules are imported, and the container's own write, later, is quick. Once per process;
    best effort: any error ends the thread."""
    import _thread

    if _warm_until[0]:
        return
    _warm_until[0] = time.monotonic() + seconds
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return
    own = next((where for _, names, where in lines if names == ("" if cgroups.mode() == "v2" else "pids")), None)
    if own is None:
        return
    procs = cgroups.ROOT / ("" if cgroups.mode() == "v2" else "pids") / own.lstrip("/") / "cgroup.procs"

    def keep_warm() -> None:
        try:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                while time.monotonic() < _warm_until[0]:
                    os.write(fd, str(os.getpid()).encode())
                    time.sleep(0.004)
            finally:
                os.close(fd)
        except OSError:
            pass
    _thread.start_new_thread(keep_warm, ())
# <<< warm-up
