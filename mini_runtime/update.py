"""`mini update` (docker update): a container's limits and restart policy, changed after it was
created (chapter 04's control of a cgroup, chapter 06's records).

Why a running container's limits can change at all: a cgroup's limits are files, and the kernel
reads them at every charge (a page faulted in, a fork, the end of a CFS period), not once when a
process joins. Write a new number into `memory.max` (v2) or `memory.limit_in_bytes` (v1) and the
next page the container asks for is judged by it; nothing in the container is told, restarted or
paused. What can say no is the kernel: v1 answers EBUSY to a memory limit below what the cgroup
uses and cannot reclaim (v2 takes it, reclaims, and OOM-kills if it cannot), EINVAL to a value
out of range.

docker's daemon (moby's daemon/update.go) does it in steps, and so does update():
1. the new values alone, checked as `run` checks them (before the container is even looked up);
2. merged into the record's HostConfig: a value not given keeps the recorded one, and a mix with
   what is recorded that cannot work is refused (container.UpdateContainer);
3. if the container has a cgroup (running, paused, or created and waiting), the new values are
   written into it; if the kernel refuses one, those already written are put back;
4. the record (inspect's HostConfig) and the settings beside it (runtime.CONFIG) are saved: the
   next `start` of a stopped container makes its cgroup from them.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

from mini_runtime import cgroups, container, monitor_setup, paths
from mini_runtime.config import ContainerConfig, check_limits
from mini_runtime.errors import InvalidParameter, MiniError, System, reworded
from mini_runtime.runtime import CONFIG

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: HostConfig's fields (what inspect shows), each with the ContainerConfig field that keeps it
#: for the next start (runtime.CONFIG).
FIELDS = {"Memory": "memory", "MemorySwap": "memory_swap", "MemoryReservation": "memory_reservation",
          "NanoCpus": "cpus", "CpuShares": "cpu_shares", "CpuPeriod": "cpu_period",
          "CpuQuota": "cpu_quota", "CpusetCpus": "cpuset_cpus", "PidsLimit": "pids_limit"}


# >>> update
def update(text: str, changes: dict[str, Any]) -> dict[str, Any]:
    """docker update of one container: `changes` are ContainerConfig's limit fields and `restart`,
    None where not given. Nothing is half-changed: not the cgroup, not the record."""
    files, policy = checked(changes)                # 1. the values alone (docker: before lookup)
    directory = container.find(text)
    with container.record_lock():                   # (one change of a record at a time)
        record = container.load(directory)
        try:
            host = merged(record["HostConfig"], changes, policy)    # 2. with the record's
        except MiniError as e:
            raise reworded(e, f"Cannot update container {directory.name}: {e}") from None
        if changes.get("memory") or changes.get("memory_swap"):  # (swap is counted with memory)
            files.update(cgroups.limit_files(memory=host["Memory"], memory_swap=host["MemorySwap"] or None))
        live = Live(directory.name)
        if live.exists():                           # 3. its cgroup, at once
            live.apply(files, changes.get("cpu_shares"), changes.get("cpuset_cpus"))
        try:
            keep(directory, dict(record, HostConfig=host), changes.get("restart"))  # 4.
        except BaseException:
            put_back(live.written)
            raise
    return {"Warnings": []}
# <<< update


def checked(changes: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The new values alone, in docker's words (`run`'s checks, exercise 04's hooks, exercise
    06's --restart): the cgroup v2 files they become (memory's come once merged), and the
    restart policy as the record keeps it (None: not given)."""
    given = changes.get
    check_limits(memory=given("memory"), memory_swap=given("memory_swap"), cpus=given("cpus"),
                 cpuset_cpus=given("cpuset_cpus"), update=True)
    files = cgroups.limit_files(cpus=given("cpus"), cpu_shares=given("cpu_shares"), pids=given("pids_limit"))
    files.update(cgroups.cpu_quota_files(cpu_period=given("cpu_period"), cpu_quota=given("cpu_quota"),
                                         cpus=given("cpus")))               # exercise 04's hooks
    files.update(cgroups.reservation_files(memory_reservation=given("memory_reservation"),
                                           memory=given("memory")))
    if given("restart") is None:
        return files, None
    found = monitor_setup.restart_policy(ContainerConfig(image="", restart=given("restart")))  # exercise 06's
    name, count = found or ("no", 0)
    return files, {"Name": name, "MaximumRetryCount": count}


# >>> merged
def merged(host: dict[str, Any], changes: dict[str, Any], policy: dict[str, Any] | None) -> dict[str, Any]:
    """docker's container.UpdateContainer: each value given replaces the recorded one (0, like
    none, keeps it; but --pids-limit), after docker's refusals of a mix with the record."""
    cpus, period, quota = (changes.get(name) or 0 for name in ("cpus", "cpu_period", "cpu_quota"))
    for new, old, words in ((cpus, "CpuPeriod", "Nano CPUs cannot be updated as CPU Period has already been set"),
                            (cpus, "CpuQuota", "Nano CPUs cannot be updated as CPU Quota has already been set"),
                            (period, "NanoCpus", "CPU Period cannot be updated as NanoCPUs has already been set"),
                            (quota, "NanoCpus", "CPU Quota cannot be updated as NanoCPUs has already been set")):
        if new > 0 and (host.get(old) or 0) > 0:    # (--cpus is cpu.max too: one or the other)
            raise InvalidParameter(f"Conflicting options: {words}")
    memory = changes.get("memory") or 0
    if memory > (host.get("MemorySwap") or 0) and not changes.get("memory_swap"):
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap limit, "
                               "update the memoryswap at the same time")
    if policy is not None and host.get("AutoRemove") and policy["Name"] != "no":
        raise InvalidParameter("Restart policy cannot be updated because AutoRemove is enabled for the container")
    result = dict(host, **({"RestartPolicy": policy} if policy else {}))
    for key, field in FIELDS.items():
        value = changes.get(field)
        if value is not None and (value or key == "PidsLimit"):
            result[key] = int(value * 1e9) if key == "NanoCpus" else value
    check_limits(memory=result.get("Memory") or None, memory_swap=result.get("MemorySwap") or None,
                 cpus=None, cpuset_cpus=None)       # (mini's: what the next start runs, as `run`)
    return result
# <<< merged


# >>> live
class Live(cgroups.Cgroup):
    """A container's cgroup, changed while it may run: each write remembers the value it
    replaced, so that when the kernel refuses one, every file can be put back as it was."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.written: list[tuple[Path, str]] = []

    def exists(self) -> bool:
        return any(directory.is_dir() for _, directory in self.hierarchies())

    def _write(self, controller: str, name: str, value: str) -> None:
        path = self._file(controller, name)
        before = path.read_text().strip()
        try:
            path.write_text(value)
        except OSError as e:                        # (raised at close: without the file's name)
            raise OSError(e.errno, e.strerror, str(path)) from None
        self.written.append((path, before))

    def apply(self, files: dict[str, str], cpu_shares: int | None, cpuset: str | None) -> None:
        """limit_files's {file: value} (and --cpuset-cpus) into the live cgroup, all or none."""
        try:
            if self.mode == "v2":                   # one directory: any controller's name finds it
                for name, value in files.items():
                    if name != "memory.swap.max" or self._file("memory", name).exists():
                        self._write("memory", name, value)
            else:
                if "memory.max" in files and self._file("memory", "memory.memsw.limit_in_bytes").exists():
                    # v1 wants memory <= memory + swap after every write: lift the total first,
                    # then write memory, then the total (_limit_v1's order)
                    self._write("memory", "memory.memsw.limit_in_bytes", "-1")
                self._limit_v1(files, cpu_shares)
            if cpuset is not None:                  # (set_cpuset says it if there is no cpuset)
                path = self._file("cpuset", "cpuset.cpus")
                before = path.read_text().strip() if path.exists() else ""
                self.set_cpuset(cpuset)
                self.written.append((path, before))
        except OSError as e:
            put_back(self.written)
            self.written = []
            if not self.exists():
                return                              # it ended meanwhile: the record is what counts
            raise System(refusal(self.name, e)) from None
        except MiniError as e:                      # (--cpuset-cpus: a CPU this machine lacks)
            put_back(self.written)
            raise reworded(e, f"Cannot update container {self.name}: {e}") from None
        except BaseException:
            put_back(self.written)
            raise
# <<< live


def refusal(container_id: str, error: OSError) -> str:
    """The kernel's no, said as docker's daemon says it, with the why for EBUSY."""
    name = Path(error.filename or "").name
    why = " (cgroup v1 does not lower a memory limit below what the container uses and cannot " \
          "reclaim; the limits are as they were)" if name.startswith("memory.") and error.errno == errno.EBUSY else ""
    return f"Cannot update container {container_id}: {name}: {error.strerror}{why}"


def put_back(written: list[tuple[Path, str]]) -> None:
    """Each file as it was, the last written first (so v1's memory <= memory + swap holds at
    every step back too). A file that is gone went with the container's end."""
    for path, before in reversed(written):
        try:
            path.write_text(before)
        except OSError:
            pass


def keep(directory: Path, record: dict[str, Any], restart: str | None) -> None:
    """The record (inspect's HostConfig), and the settings the next start runs (runtime.CONFIG,
    which `network connect` writes to as well: read, changed, written)."""
    host, settings_path = record["HostConfig"], directory / CONFIG
    before = settings_path.read_bytes() if settings_path.exists() else None
    if before is not None:
        settings = json.loads(before)
        settings.update({field: host.get(key) or None for key, field in FIELDS.items()})
        settings.update(cpus=(host.get("NanoCpus") or 0) / 1e9 or None, pids_limit=host.get("PidsLimit"))
        if restart is not None:
            settings["restart"] = restart
        paths.atomic_write(settings_path, json.dumps(settings).encode(), durable=not host.get("AutoRemove"))
    try:
        container.save(directory, record)
    except BaseException:
        if before is not None:
            paths.atomic_write(settings_path, before)
        raise
