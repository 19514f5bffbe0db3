"""Chapter 06: `docker stats`' numbers, from chapter 04's accounting.

The kernel counts what every cgroup uses whether it has limits or not: CPU time, memory, pids
(cgroups.Cgroup.usage) and, when the io controller counts for it, block I/O. A network namespace
counts its interfaces' bytes (/proc/PID/net/dev of a process inside). The Engine API hands these
out as a StatsResponse a second; the client computes the percentages. CPU % needs two samples:
the container's CPU time over the machine's in the same interval, times the number of CPUs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from mini_runtime import cgroups, container
from mini_runtime.units import ZERO_TIME, now_rfc3339

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see tuples.py)
if TYPE_CHECKING:
    from typing import Any

#: How often a stream of stats gives a sample, in seconds (docker's).
INTERVAL = 1.0


def system_cpu_ns() -> int:
    """All the CPU time the machine has had since boot (its CPUs together), in ns: the first
    line of /proc/stat, in clock ticks."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]          # user nice system idle iowait irq softirq steal
    return sum(int(v) for v in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def networks(directory: Path, pid: int) -> dict[str, dict[str, int]]:
    """Bytes and packets per interface of the container's network namespace, loopback aside, as
    the init sees them; none if the pid is not that init any more."""
    try:
        started = json.loads((container.run_dir(directory.name) / "state.json").read_text())["started"]
        if container.start_time(pid) != started:
            return {}
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except (OSError, ValueError, KeyError):
        return {}
    found = {}
    for line in lines:
        name, _, numbers = line.partition(":")
        values = [int(v) for v in numbers.split()]
        if name.strip() != "lo" and len(values) >= 12:
            found[name.strip()] = {"rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                                   "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                                   "tx_errors": values[10], "tx_dropped": values[11]}
    return found


def sample(directory: Path) -> dict[str, Any]:
    """One StatsResponse, without its precpu_stats: zeros for a container that does not run."""
    record = container.load(directory)
    base: dict[str, Any] = {"read": now_rfc3339(), "preread": ZERO_TIME, "name": record["Name"],
                            "id": record["Id"], "pids_stats": {}, "blkio_stats": {},
                            "cpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0,
                                          "online_cpus": 0},
                            "memory_stats": {}}
    if not container.status(record).has_process:
        return base
    group = cgroups.Cgroup(directory.name)
    try:
        usage, memory = group.usage(), group.memory_stats()
        read, written = group.io_bytes()
    except (OSError, ValueError, KeyError):
        return base                                  # it has ended meanwhile
    limit = memory.pop("limit") or host_memory()
    return dict(base, pids_stats={"current": usage["pids"]},
                blkio_stats={"io_service_bytes_recursive": [
                    {"major": 0, "minor": 0, "op": "read", "value": read},
                    {"major": 0, "minor": 0, "op": "write", "value": written}]},
                cpu_stats={"cpu_usage": {"total_usage": usage["cpu_ns"]},
                           "system_cpu_usage": system_cpu_ns(), "online_cpus": os.cpu_count() or 1},
                memory_stats={"usage": usage["memory"], "max_usage": usage["memory_peak"],
                              "stats": memory, "limit": limit},
                networks=networks(directory, record["State"].get("Pid", 0)))


def stream(directory: Path) -> Iterator[dict[str, Any]]:
    """ContainerStats: the first sample now; then, a second after each, the next one with the
    one before as its precpu_stats (what CPU % is computed from)."""
    first = sample(directory), time.monotonic()

    def follow(previous: dict[str, Any], taken: float) -> Iterator[dict[str, Any]]:
        while True:
            time.sleep(max(0.0, taken + INTERVAL - time.monotonic()))
            current, taken = sample(directory), time.monotonic()
            yield dict(current, preread=previous["read"], precpu_stats=previous["cpu_stats"])
            previous = current
    return follow(*first)
