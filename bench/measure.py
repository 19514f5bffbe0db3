"""Timing one command from outside, and pairs of commands interleaved.

Each run goes through `spawn` (spawn.c, compiled once per run of the harness): a small C
launcher that joins namespaces if asked (a private mount namespace, a private network
namespace), forks, execs the command, waits for it with `wait4` and reports the wall time
around fork and wait, the user and system CPU time of the command's whole process tree (rusage
includes whatever it waited for) and the peak RSS of its largest process. Why not fork from
Python: the child would carry the harness's memory until exec, and the kernel counts that into
its peak RSS. A daemon does work that no child of ours waits for; a side says where to read
that (`extra_cpu`, a cgroup's cpuacct).

Why interleave: this machine is shared and noisy. Running A B A B ... exposes both sides of a
pair to the same moment's load, and the ratio taken pair by pair, then its median, is what
stays stable from one run to the next; absolute times are reported, but only ratios count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


SPAWN_SOURCE = Path(__file__).with_name("spawn.c")


class Failed(Exception):
    """A measured command did not exit 0: the row stops, its reason is one line."""


@dataclass
class Side:
    """One side of a row: what is timed (one command, or several in a row, like runc's
    run then delete), and what is done untimed around each run."""

    label: str
    steps: list[list[str]]
    env: dict[str, str] | None = None
    before: Callable[[], None] | None = None   # untimed, before each run (e.g. make a container)
    after: Callable[[], None] | None = None    # untimed, after each run (e.g. remove the image)
    extra_cpu: Callable[[], float] | None = None  # a daemon's CPU seconds so far (a counter)
    mount_ns: str | None = None                # /proc/PID/ns/mnt to run in (crun, podman)
    net_ns: str | None = None                  # /proc/PID/ns/net to run in (the bridge rows)
    note: str = ""

    @property
    def namespaces(self) -> list[str]:
        """What the launcher joins before its clock starts."""
        return [ns for ns in (self.mount_ns, self.net_ns) if ns]


@dataclass
class Sample:
    wall: float    # seconds
    cpu: float     # seconds: user + system of the process tree (+ a daemon's, if any)
    maxrss: int    # KiB: the largest process waited for


@dataclass
class Stats:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class Result:
    """What a row's measurement gives: every counted pair, kept for the report."""

    a: list[Sample] = field(default_factory=list)
    b: list[Sample] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [x.wall / y.wall for x, y in zip(self.a, self.b) if y.wall > 0]

    def wall(self, side: str) -> Stats:
        return Stats.of([s.wall for s in getattr(self, side)])

    def cpu(self, side: str) -> Stats:
        return Stats.of([s.cpu for s in getattr(self, side)])

    def maxrss(self, side: str) -> Stats:
        return Stats.of([s.maxrss for s in getattr(self, side)])

    def ratio(self) -> Stats:
        return Stats.of(self.ratios)


def build_launcher(directory: Path) -> Path:
    """Compile spawn.c into `directory` (static where the C library allows: smaller, and no
    dynamic loader to start). Raises Failed, in one line, without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise Failed("no C compiler for the launcher (scripts/provision.sh installs gcc)")
    target = directory / "spawn"
    for static in (["-static"], []):
        result = subprocess.run([cc, "-O2", *static, "-o", str(target), str(SPAWN_SOURCE)],
                                capture_output=True, text=True)
        if result.returncode == 0:
            return target
    raise Failed(f"spawn.c did not compile: {result.stderr.strip().splitlines()[-1:]}")


def parse_report(line: str) -> tuple[Sample, int]:
    """The launcher's line, "WALL_NS UTIME_US STIME_US MAXRSS_KIB EXIT_CODE"."""
    wall_ns, utime, stime, maxrss, code = (int(x) for x in line.split())
    return Sample(wall_ns / 1e9, (utime + stime) / 1e6, maxrss), code


def run_once(launcher: Path, argv: list[str], env: dict[str, str], stderr: str,
             namespaces: Sequence[str] = ()) -> tuple[Sample, int]:
    """Run `argv` through the launcher, in `namespaces` if any: (its sample, its exit status)."""
    read, write = os.pipe()
    if write == 3:  # dup2(3, 3) would keep close-on-exec set
        write, old = os.dup(write), write
        os.close(old)
    try:
        pid = os.posix_spawn(str(launcher), [str(launcher), ",".join(namespaces) or "-", stderr, *argv], env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, write, 3)])
    finally:
        os.close(write)
    with os.fdopen(read) as report:
        line = report.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not line.strip():
        raise Failed(f"the launcher could not run `{argv[0]}`: {last_line(stderr)}")
    return parse_report(line)


def run_side(launcher: Path, side: Side, stderr: str) -> Sample:
    """One timed run of a side: its steps one after the other, summed; the daemon's CPU
    counted too when the side names one. Raises Failed with the command's last stderr line."""
    if side.before:
        side.before()
    env = side.env if side.env is not None else dict(os.environ)
    cpu_before = side.extra_cpu() if side.extra_cpu else 0.0
    total = Sample(0.0, 0.0, 0)
    for argv in side.steps:
        sample, code = run_once(launcher, argv, env, stderr, side.namespaces)
        if code != 0:
            raise Failed(f"{' '.join(Path(argv[0]).name.split() + argv[1:2])} ... exited {code}: "
                         f"{last_line(stderr)}")
        total = Sample(total.wall + sample.wall, total.cpu + sample.cpu, max(total.maxrss, sample.maxrss))
    if side.extra_cpu:
        total.cpu += max(0.0, side.extra_cpu() - cpu_before)
    if side.after:
        side.after()
    return total


def uss_mib(pid: int) -> float:
    """Unique memory of a process: its private pages, clean and dirty (smaps_rollup), in MiB."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        kib = sum(int(line.split()[1]) for line in f if line.startswith("Private_"))
    return kib / 1024


def last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "(no stderr)"
    return lines[-1][:300] if lines else "(nothing on stderr)"


def interleave(run_a: Callable[[], Sample], run_b: Callable[[], Sample], pairs: int,
               warmup: int = 2) -> Result:
    """A B A B ...: `warmup` pairs not counted (caches, first-use work), then `pairs` counted."""
    if pairs < 1:
        raise ValueError("at least one counted pair")
    result = Result()
    for i in range(warmup + pairs):
        a, b = run_a(), run_b()
        if i >= warmup:
            result.a.append(a)
            result.b.append(b)
    return result
