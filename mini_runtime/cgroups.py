"""Chapter 04: control groups — limits, priority, accounting and control.

A cgroup is a directory in a special filesystem: make one, write a pid into its process list,
and from then on the kernel counts and limits that process and its children by the numbers in
the directory's files. Two interfaces exist:

- v2 (unified): one tree at /sys/fs/cgroup; `memory.max`, `cpu.max`, `cpu.weight`, `pids.max`,
  `cgroup.freeze`. A controller works in a child only if every ancestor lists it in its
  `cgroup.subtree_control` (and a cgroup with processes may not hand controllers down).
- v1: one tree per controller (/sys/fs/cgroup/memory, .../cpu, ...), each with its own files:
  `memory.limit_in_bytes`, `cpu.cfs_quota_us`, `cpu.shares`, `pids.max`, `freezer.state`.
  "Hybrid" hosts have both: v1 controllers, plus a v2 tree that holds none of them.

This module hides the difference behind one small class. Every container gets a cgroup named
after its id under a parent named `mini`, in every hierarchy it uses, and loses it on exit.
"""

from __future__ import annotations

import errno
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from mini_runtime.errors import Exercise, System, Unavailable, UsageError

ROOT = Path(os.environ.get("MINI_CGROUP_ROOT", "/sys/fs/cgroup"))
# The parent of every container cgroup. Tests give each run its own (runs may overlap).
PARENT = os.environ.get("MINI_CGROUP_PARENT", "mini")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "cpuset")
V2_CONTROLLERS = ("memory", "cpu", "pids", "cpuset")
CPU_PERIOD = 100_000  # microseconds: docker's default CFS period


class CgroupBusy(System):
    """A cgroup that could not be removed: something is still in it. Said, never swallowed:
    the caller must not believe it gone (a later run's sweep_empty removes it once empty)."""

    def __init__(self, busy: list[Path], timeout: float) -> None:
        more = f" (and {len(busy) - 1} more hierarchies)" if len(busy) > 1 else ""
        super().__init__(f"cgroup {busy[0]}{more} left behind: still in use after {timeout:g} s")
        self.paths = busy


def mode(root: Path = ROOT) -> str:
    """'v2' (unified), 'hybrid' (v1 controllers and a v2 tree beside them) or 'v1'."""
    if (root / "cgroup.controllers").exists():
        return "v2"
    if (root / "unified" / "cgroup.controllers").exists():
        return "hybrid"
    return "v1"


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc >= 1.4 does:
    a curve through 2 -> 1, 1024 -> 100 (both defaults) and 262144 -> 10000."""
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    log = math.log2(shares)
    return math.ceil(10 ** ((log * log + 125 * log) / 612.0 - 7.0 / 34.0))


def wait_until(done: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll the kernel's answer to a write that takes effect asynchronously (freezing)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _inherit_cpuset(directory: Path) -> None:
    """v1 cpuset cgroups start with no CPUs and no memory nodes, and a process cannot join one
    like that: copy the parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not (directory / name).read_text().strip():
            (directory / name).write_text((directory.parent / name).read_text())


# --- the v2 interface, one function per mechanism ------------------------------------------

# >>> enable-controllers
def enable_controllers(root: Path, parent: Path) -> None:
    """v2 delegation: a controller works in a cgroup only if its parent lists it in
    `cgroup.subtree_control`, and so on up to the root. Hand memory, cpu, pids (and cpuset)
    down from the root to `parent`; `parent` never holds a process, so it may."""
    available = (root / "cgroup.controllers").read_text().split()
    wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS if c in available)
    for directory in (root, parent):
        (directory / "cgroup.subtree_control").write_text(wanted)
# <<< enable-controllers


# >>> join
def join(directory: Path, pid: int) -> None:
    """Move a process (and so all its future children) into the cgroup at `directory`."""
    (directory / "cgroup.procs").write_text(str(pid))
# <<< join


# >>> limit-files
def limit_files(*, memory: int | None = None, memory_swap: int | None = None,
                cpus: float | None = None, cpu_shares: int | None = None,
                pids: int | None = None) -> dict[str, str]:
    """docker's --memory, --memory-swap, --cpus, --cpu-shares and --pids-limit as v2 files:
    {file name: what to write}. A limit that is None is left out."""
    files = {}
    if memory is not None:
        files["memory.max"] = str(memory)
        if memory_swap is None:
            memory_swap = 2 * memory  # docker: as much swap again as memory, by default
        # docker's flag counts memory + swap; v2 counts the swap alone
        files["memory.swap.max"] = "max" if memory_swap < 0 else str(max(memory_swap - memory, 0))
    if cpus is not None:
        files["cpu.max"] = f"{int(cpus * CPU_PERIOD)} {CPU_PERIOD}"
    if cpu_shares is not None:
        files["cpu.weight"] = str(shares_to_weight(cpu_shares))
    if pids is not None:
        files["pids.max"] = "max" if pids <= 0 else str(pids)
    return files
# <<< limit-files


# >>> create-limited
def create_limited(root: Path, parent: Path, directory: Path, files: dict[str, str]) -> None:
    """Make `directory`, a cgroup in `parent`, with `files` (limit_files's) in it. A limit file
    appears only once `parent` hands its controller down; a value the kernel refuses leaves
    nothing behind (the cgroup goes, and `parent` too if nothing else is in it)."""
    parent.mkdir(exist_ok=True)
    enable_controllers(root, parent)
    directory.mkdir()  # no exist_ok: a new id's cgroup that is already there is a bug
    try:
        for name, value in files.items():
            if name != "memory.swap.max" or (directory / name).exists():  # swap accounting on?
                (directory / name).write_text(value)
    except BaseException:
        directory.rmdir()
        try:
            parent.rmdir()
        except OSError:
            pass  # another container's cgroup is in there
        raise
# <<< create-limited


# >>> read-usage
def read_usage(directory: Path) -> dict[str, int]:
    """Accounting: memory now and at its peak (bytes), CPU time (ns), process count."""
    cpu = dict(line.split() for line in (directory / "cpu.stat").read_text().splitlines())
    peak = directory / "memory.peak"  # Linux 5.19 and later
    return {"memory": int((directory / "memory.current").read_text()),
            "memory_peak": int(peak.read_text()) if peak.exists() else 0,
            "cpu_ns": int(cpu["usage_usec"]) * 1000,
            "pids": int((directory / "pids.current").read_text())}
# <<< read-usage


# >>> set-frozen
def set_frozen(directory: Path, frozen: bool) -> None:
    """Stop (or restart) every process in the cgroup at once, and wait until it has."""
    (directory / "cgroup.freeze").write_text("1" if frozen else "0")
    want = f"frozen {1 if frozen else 0}"  # freezing takes effect asynchronously
    wait_until(lambda: want in (directory / "cgroup.events").read_text().splitlines(),
               f"{directory} to reach {want!r}")
# <<< set-frozen


# >>> oom-kill-count
def oom_kill_count(directory: Path) -> int:
    """How many processes the kernel's OOM killer ended in this cgroup."""
    events = dict(line.split() for line in (directory / "memory.events").read_text().splitlines())
    return int(events.get("oom_kill", 0))
# <<< oom-kill-count


# >>> why-errnos
def predicted_errnos() -> dict[str, int]:
    """The chapter's "why?" questions answered as data (exercise 04 checks them against the
    kernel): which errno a v2 cgroup write or rmdir fails with, and why."""
    return {"hand_down_with_process": errno.EBUSY,  # no internal processes: leaves hold them
            "hand_down_not_offered": errno.ENOENT,  # the parent's subtree_control lacks it
            "rmdir_with_process": errno.EBUSY}      # a cgroup goes only once it is empty
# <<< why-errnos


# --- exercise 04's extension: the reference has the flags, the learner writes these ----------

def cpu_quota_files(*, cpu_period: int | None = None, cpu_quota: int | None = None,
                    cpus: float | None = None) -> dict[str, str]:
    """docker's --cpu-period and --cpu-quota as v2 files (cpu.max), docker's errors for the
    values it refuses ({} when neither is given)."""
    if cpu_period is None and cpu_quota is None:
        return {}
    raise Exercise("--cpu-period and --cpu-quota", "04_cgroups")


def reservation_files(*, memory_reservation: int | None = None, memory: int | None = None) -> dict[str, str]:
    """docker's --memory-reservation as a v2 file (memory.low), docker's errors for the values
    it refuses ({} when it is not given)."""
    if memory_reservation is None:
        return {}
    raise Exercise("--memory-reservation", "04_cgroups")


# --- one container's cgroup, on either interface ------------------------------------------

class Cgroup:
    """A container's cgroup in every hierarchy it uses (one on v2, several on v1)."""

    def __init__(self, name: str) -> None:
        self.mode = mode()
        self.name = name
        if self.mode == "v2":
            self.dirs = {"unified": ROOT / PARENT / name}
        else:
            self.dirs = {c: ROOT / c / PARENT / name for c in V1_CONTROLLERS if (ROOT / c).is_dir()}
        self._hierarchies: list[tuple[str, Path]] | None = None

    @property
    def unified(self) -> Path:
        return self.dirs["unified"]

    def hierarchies(self) -> list[tuple[str, Path]]:
        """One entry per hierarchy: some hosts mount cpu and cpuacct together (cpu ->
        cpu,cpuacct), one directory for both names. (Worked out once: a few syscalls each.)"""
        if self._hierarchies is None:
            seen: dict[Path, tuple[str, Path]] = {}
            for controller, directory in self.dirs.items():
                seen.setdefault(directory.parent.parent.resolve(), (controller, directory))
            self._hierarchies = list(seen.values())
        return self._hierarchies

    def processes(self) -> set[int]:
        """The pids in this cgroup, in any hierarchy. While there is one, the container runs:
        unlike a recorded pid, which the kernel may give to another process, this cannot lie."""
        found: set[int] = set()
        for _, directory in self.hierarchies():
            try:
                found.update(int(pid) for pid in (directory / "cgroup.procs").read_text().split())
            except FileNotFoundError:
                pass
        return found

    # >>> cgroup-create
    def create(self, *, memory: int | None = None, memory_swap: int | None = None,
               cpus: float | None = None, cpu_shares: int | None = None, pids: int | None = None,
               cpu_period: int | None = None, cpu_quota: int | None = None,
               memory_reservation: int | None = None) -> None:
        """The container's cgroup with docker's limits in it: on v2 one directory, which
        create_limited() makes; on v1 a directory per tree, then the limits in v1's files."""
        files = limit_files(memory=memory, memory_swap=memory_swap, cpus=cpus,
                            cpu_shares=cpu_shares, pids=pids)
        files.update(cpu_quota_files(cpu_period=cpu_period, cpu_quota=cpu_quota, cpus=cpus))  # exercise 04
        files.update(reservation_files(memory_reservation=memory_reservation, memory=memory))
        if self.mode == "v2":
            for attempt in range(3):  # another run may remove an empty `mini` parent meanwhile
                try:
                    return create_limited(ROOT, ROOT / PARENT, self.unified, files)
                except FileNotFoundError:
                    if attempt == 2:
                        raise
        for controller, directory in self.hierarchies():  # v1: a directory in every tree
            for attempt in range(3):  # (the same race)
                directory.parent.mkdir(exist_ok=True)
                if controller == "cpuset":
                    _inherit_cpuset(directory.parent)
                try:
                    directory.mkdir()
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
            if controller == "cpuset":
                _inherit_cpuset(directory)
        self._limit_v1(files, cpu_shares)
    # <<< cgroup-create

    def _file(self, controller: str, name: str) -> Path:
        return self.dirs["unified" if self.mode == "v2" else controller] / name

    def _write(self, controller: str, name: str, value: str) -> None:
        self._file(controller, name).write_text(value)

    def _read(self, controller: str, name: str) -> str:
        return self._file(controller, name).read_text()

    def add(self, pid: int) -> None:
        """Move a process into this cgroup in every hierarchy."""
        for _, directory in self.hierarchies():
            join(directory, pid)

    # >>> cgroup-limits
    def _limit_v1(self, files: dict[str, str], cpu_shares: int | None) -> None:
        """v1: other names and units for the same limits."""
        if "memory.max" in files:
            self._write("memory", "memory.limit_in_bytes", files["memory.max"])
            if self._file("memory", "memory.memsw.limit_in_bytes").exists():
                swap = files["memory.swap.max"]  # v1 counts memory + swap, like docker's flag
                total = -1 if swap == "max" else int(files["memory.max"]) + int(swap)
                self._write("memory", "memory.memsw.limit_in_bytes", str(total))
        if "cpu.max" in files:  # "QUOTA PERIOD", "max PERIOD" or "QUOTA"
            quota, _, period = files["cpu.max"].partition(" ")
            if period:
                self._write("cpu", "cpu.cfs_period_us", period)
            self._write("cpu", "cpu.cfs_quota_us", "-1" if quota == "max" else quota)
        if "memory.low" in files:
            self._write("memory", "memory.soft_limit_in_bytes", files["memory.low"])
        if cpu_shares is not None:
            self._write("cpu", "cpu.shares", str(cpu_shares))
        if "pids.max" in files:
            self._write("pids", "pids.max", files["pids.max"])
    # <<< cgroup-limits

    def set_cpuset(self, cpus: str) -> None:
        """docker's --cpuset-cpus: which CPUs the container may run on ("0", "0-1", "0,2")."""
        path = self._file("cpuset", "cpuset.cpus")
        if not path.exists():
            raise Unavailable("--cpuset-cpus: the cpuset controller is not available on this machine")
        try:
            path.write_text(cpus)
        except OSError as e:
            raise UsageError(f"--cpuset-cpus {cpus!r}: {e.strerror} (this machine has CPUs "
                             f"{(path.parent.parent / 'cpuset.cpus').read_text().strip()})") from None

    # >>> cgroup-v1
    def usage(self) -> dict[str, int]:
        """See read_usage(); v1 keeps the same numbers in other files."""
        if self.mode == "v2":
            return read_usage(self.unified)
        return {"memory": int(self._read("memory", "memory.usage_in_bytes")),
                "memory_peak": int(self._read("memory", "memory.max_usage_in_bytes")),
                "cpu_ns": int(self._read("cpuacct", "cpuacct.usage")),
                "pids": int(self._read("pids", "pids.current"))}

    def memory_stats(self) -> dict[str, int]:
        """For `stats`: the limit (0 when there is none) and memory.stat's counters (v1 calls
        the hierarchy's totals total_inactive_file ..., v2 inactive_file ...)."""
        limit = self._read("memory", "memory.max" if self.mode == "v2" else "memory.limit_in_bytes").strip()
        counters = dict(line.split() for line in self._read("memory", "memory.stat").splitlines())
        unlimited = limit == "max" or int(limit) >= 2**62      # v1 writes "no limit" as ~2^63
        return {"limit": 0 if unlimited else int(limit), **{k: int(v) for k, v in counters.items()}}

    def io_bytes(self) -> tuple[int, int]:
        """Bytes read from and written to block devices, when the io (v2) or blkio (v1) controller
        counts for this cgroup; (0, 0) when it does not (mini does not enable it)."""
        read = written = 0
        if self.mode == "v2" and (self.unified / "io.stat").exists():
            for line in (self.unified / "io.stat").read_text().splitlines():
                fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
                read, written = read + int(fields.get("rbytes", 0)), written + int(fields.get("wbytes", 0))
        return read, written

    def freeze(self, frozen: bool = True) -> None:
        """`pause` and `unpause`: v1 has a freezer controller of its own."""
        if self.mode == "v2":
            return set_frozen(self.unified, frozen)
        state = self._file("freezer", "freezer.state")
        want = "FROZEN" if frozen else "THAWED"
        state.write_text(want)
        wait_until(lambda: state.read_text().strip() == want, f"cgroup {self.name} to reach {want!r}")

    def oom_kills(self) -> int:
        """See oom_kill_count(); v1 keeps the counter in memory.oom_control."""
        if self.mode == "v2":
            return oom_kill_count(self.unified)
        fields = dict(line.split() for line in self._read("memory", "memory.oom_control").splitlines())
        return int(fields.get("oom_kill", 0))
    # <<< cgroup-v1

    # >>> cgroup-remove
    def remove(self, timeout: float = 2.0) -> None:
        """rmdir in every hierarchy (a cgroup can go once its last process is gone), and the
        `mini` parent too when no other container uses it: nothing is left behind. A cgroup
        still busy after `timeout` seconds is not forgotten: CgroupBusy names it."""
        deadline, busy = time.monotonic() + timeout, []
        for _, directory in self.hierarchies():
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    if time.monotonic() > deadline:
                        busy.append(directory)
                        break
                    time.sleep(0.01)  # the last process is still exiting
            try:
                directory.parent.rmdir()
            except OSError:
                pass  # another container's cgroup is still in there
        if busy:
            raise CgroupBusy(busy, timeout)
    # <<< cgroup-remove
