"""Chapter 04 exercise: control groups limit, weigh, count and stop a container's processes.
Your copy of the cgroup v2 half of `mini_runtime/cgroups.py`.

Fill in the eight functions below. The grader plugs them into the reference runtime, whose
`Cgroup` class calls them for a container's cgroup, /sys/fs/cgroup/mini/<container id>:

    create:  limit_files(memory=..., cpus=..., ...)  (uses shares_to_weight), then
             create_limited(/sys/fs/cgroup, /sys/fs/cgroup/mini, the cgroup, those files),
             whose steps are yours to order (enable_controllers is one of them)
    start:   join(cgroup, pid) before the container's command runs
    exit:    oom_kill_count(cgroup): was it the OOM killer? → rmdir
    (and for chapter 06's stats, pause and unpause: read_usage(cgroup), set_frozen(cgroup, ...))

    python -m exercises grade 04          (one check: --only 4.3)

It targets cgroup v2, what the course VM has. Every TODO names the documentation to read and
the pitfall to avoid (never the line to write), and asks a "why?". Chapter text:
chapters/04-cgroups.md. Kernel documentation for every file named here:
https://docs.kernel.org/admin-guide/cgroup-v2.html
"""

from __future__ import annotations

import errno  # noqa: F401 - for predicted_errnos
import math
import time
from pathlib import Path

from mini_runtime.errors import UsageError  # noqa: F401 - for the extension's errors

# Given (the same values as the reference): the controllers a container gets, and docker's
# CFS period in microseconds.
from mini_runtime.cgroups import CPU_PERIOD, V2_CONTROLLERS  # noqa: F401


def enable_controllers(root: Path, parent: Path) -> None:
    """v2 delegation: a controller works in a cgroup only if its parent lists it in
    `cgroup.subtree_control`, and so on up to the root. Hand memory, cpu, pids (and cpuset)
    down from the root to `parent`; `parent` never holds a process, so it may."""
    # TODO: doc: "Enabling and Disabling" and "Top-down Constraint" in cgroup-v2.html: which
    #   file says what a cgroup is offered, which one what it hands down, and in what syntax?
    #   pitfall: V2_CONTROLLERS is what a container wants, not what this machine has; and a
    #   cgroup gets a controller only if every ancestor down from the root hands it on.
    #   why? Writing "+cpuset" on a machine without that controller fails with ENOENT: what
    #   does that tell you to do first? And why may `parent` not hold a process of its own when
    #   it hands controllers down? (Read "No Internal Process Constraint".)
    raise NotImplementedError("enable_controllers")


def join(directory: Path, pid: int) -> None:
    """Move a process (and so all its future children) into the cgroup at `directory`."""
    # TODO: doc: "Processes" in cgroup-v2.html: which file of a cgroup moves a process into it
    #   when written, and what does it take?
    #   why? The runtime calls this after the fork but before the command's execve. What could
    #   the command do in between if it joined after it had started?
    raise NotImplementedError("join")


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as runc >= 1.4 does:
    a curve through 2 -> 1, 1024 -> 100 (both defaults) and 262144 -> 10000."""
    # TODO: the chapter's § Limits gives runc's curve, where it comes from and a table to test
    #   against; the docstring's three points are where the minimums, defaults and maximums meet.
    #   doc: https://github.com/opencontainers/runc/blob/main/docs/cgroup-v2.md (cpu.weight)
    #   pitfall: docker passes on whatever the user typed: what happens below 2 and above
    #   262144? And does the curve round up or down?
    #   why? The older, linear conversion 1 + (shares - 2) * 9999 / 262142 maps docker's
    #   default 1024 to 39, not 100. What would that do to a container with default shares
    #   that competes with a process outside docker (weight 100)?
    raise NotImplementedError("shares_to_weight")


def limit_files(*, memory: int | None = None, memory_swap: int | None = None,
                cpus: float | None = None, cpu_shares: int | None = None,
                pids: int | None = None) -> dict[str, str]:
    """docker's --memory, --memory-swap, --cpus, --cpu-shares and --pids-limit as v2 files:
    {file name: what to write}. A limit that is None is left out."""
    # TODO: {file name: the text to write} for each limit given. Which v2 file holds each one,
    #   and in which unit and format?
    #   doc: "Memory Interface Files", "CPU Interface Files", "PID Interface Files" in
    #   cgroup-v2.html; docker's side: https://docs.docker.com/engine/containers/resource_constraints/
    #   ("--memory-swap details"). cpu_shares goes through your shares_to_weight.
    #   pitfall: docker's --memory-swap counts memory *and* swap; what does v2's swap file
    #   count? What does docker mean by -1, and by no --memory-swap at all? (Without --memory,
    #   --memory-swap limits nothing.)
    #   pitfall: cpu.max is a quota per period, both in microseconds; CPU_PERIOD is docker's.
    #   pitfall: how does docker say "no limit" with --pids-limit, and how does pids.max?
    #   why? --memory stops a container at a size; --cpus only slows it down. Why can the
    #   kernel throttle CPU time but not memory, so that memory's only answer is a kill?
    raise NotImplementedError("limit_files")


def create_limited(root: Path, parent: Path, directory: Path, files: dict[str, str]) -> None:
    """Make `directory`, a cgroup in `parent`, with `files` (limit_files's) in it. A limit file
    appears only once `parent` hands its controller down; a value the kernel refuses leaves
    nothing behind (the cgroup goes, and `parent` too if nothing else is in it)."""
    # TODO: the orchestration: the order of the steps is yours to find. The chapter's
    #   § Delegation and subtree_control; doc: "Processes" (mkdir and rmdir of a cgroup) and
    #   "Enabling and Disabling" in cgroup-v2.html. Your enable_controllers is one of the steps.
    #   pitfall: what files does a new cgroup have before its parent hands memory down, and
    #   what does the kernel answer to a write of one that is not there yet? Try it in a
    #   cgroup of your own.
    #   pitfall: memory.swap.max exists only where the kernel accounts swap (not everywhere):
    #   that one file may be missing; any other missing file is a bug to hear about.
    #   pitfall: a value the kernel refuses (pids.max past its maximum, a cpu.max quota under
    #   1 ms) raises OSError halfway. What have you made by then? The caller must still hear
    #   the kernel's error; and `parent` may hold other containers' cgroups.
    #   man: https://man7.org/linux/man-pages/man2/rmdir.2.html
    #   why? The container's first process joins only later (join). Why is a cgroup without a
    #   process the one moment when undoing is sure to work?
    raise NotImplementedError("create_limited")


def read_usage(directory: Path) -> dict[str, int]:
    """Accounting: memory now and at its peak (bytes), CPU time (ns), process count."""
    # TODO: return {"memory": ..., "memory_peak": ..., "cpu_ns": ..., "pids": ...}: bytes, bytes,
    #   nanoseconds, a count. Which interface file holds each, in which unit and format?
    #   doc: "memory.current", "memory.peak", "cpu.stat", "pids.current" in cgroup-v2.html
    #   pitfall: cpu.stat is not one number, and its unit is not the one asked for; memory.peak
    #   came in Linux 5.19 (before: no such file, and 0 here).
    #   why? `docker stats` shows these numbers. Why are they more accurate for a container
    #   than adding up what `ps` shows for each of its processes?
    raise NotImplementedError("read_usage")


def set_frozen(directory: Path, frozen: bool) -> None:
    """Stop (or restart) every process in the cgroup at once, and wait until it has."""
    # TODO: doc: "cgroup.freeze" and "cgroup.events" in cgroup-v2.html: what does a write to
    #   the first start, and where does the kernel say that it is done?
    #   pitfall: a task in the middle of a system call stops later than the others; and a wait
    #   must end some time (a TimeoutError after 5 seconds).
    #   why? Why is the write not enough, and why must `docker pause` wait for cgroup.events
    #   before it reports that the container is paused?
    raise NotImplementedError("set_frozen")


def oom_kill_count(directory: Path) -> int:
    """How many processes the kernel's OOM killer ended in this cgroup."""
    # TODO: doc: "memory.events" in cgroup-v2.html: which of its counters counts the processes
    #   the OOM killer ended, and what is the file's format?
    #   pitfall: two counters there have "oom" in their names; and a counter may be missing (0).
    #   why? An OOM-killed process dies of SIGKILL, exit 137, like one killed by `kill -9`.
    #   How else could mini tell the two apart?
    raise NotImplementedError("oom_kill_count")


def predicted_errnos() -> dict[str, int]:
    """Why? Three mistakes the kernel refuses. Predict its errno for each (errno.E...), then
    check 4.11 makes each mistake on a real cgroup and compares."""
    # TODO: return {"hand_down_with_process": ..., "hand_down_not_offered": ..., "rmdir_with_process": ...}
    #   hand_down_with_process: "+memory" written to cgroup.subtree_control of a cgroup that
    #       holds a process. doc: "No Internal Process Constraint" in cgroup-v2.html
    #   hand_down_not_offered: "+memory" written to cgroup.subtree_control of a cgroup whose
    #       parent does not hand memory down. doc: "Top-down Constraint"
    #   rmdir_with_process: rmdir(2) of a cgroup with a live process in it. doc: "Processes";
    #       man: https://man7.org/linux/man-pages/man2/rmdir.2.html (which errno is "in use"?)
    #   Try them in a cgroup of your own (mkdir /sys/fs/cgroup/demo ...) and read the errors.
    raise NotImplementedError("predicted_errnos")


# --- the extension (15 of the 25 points): features the reference runtime does not have ---------
# `mini run` parses --cpu-period, --cpu-quota and --memory-reservation and calls these two
# hooks when it writes a container's limits (after limit_files); the reference's say "exercise
# 04's extension" and exit 125. Yours return more {file: text} for the container's cgroup, or
# raise UsageError (from mini_runtime.errors) with docker's exact message: mini prints it as
# `mini: MESSAGE`, exits 125 and removes what it had made. Read the README's "Extend" section.

def cpu_quota_files(*, cpu_period: int | None = None, cpu_quota: int | None = None,
                    cpus: float | None = None) -> dict[str, str]:
    """docker's --cpu-period and --cpu-quota as v2 files (cpu.max), docker's errors for the
    values it refuses ({} when neither is given)."""
    # TODO: what docker accepts and refuses (and with which words): `docker run --help`,
    #   https://docs.docker.com/engine/containers/resource_constraints/#configure-the-default-cfs-scheduler
    #   and moby's daemon/daemon_unix.go, verifyPlatformContainerResources.
    #   What runc writes to cpu.max for a quota alone, a period alone, a quota of -1:
    #   "cpu.max" in cgroup-v2.html (what does the kernel keep when you write one number?).
    #   why? --cpus 0.5 is a quota and a period too: why does docker refuse both at once?
    raise NotImplementedError("cpu_quota_files")


def reservation_files(*, memory_reservation: int | None = None, memory: int | None = None) -> dict[str, str]:
    """docker's --memory-reservation as a v2 file (memory.low), docker's errors for the values
    it refuses ({} when it is not given)."""
    # TODO: docker's rules for a soft limit: the resource_constraints page above, and the same
    #   function of moby. The v2 file: "memory.low" in cgroup-v2.html (and how it differs from
    #   memory.min and memory.high).
    #   why? A reservation larger than --memory: why is it an error and not simply useless?
    raise NotImplementedError("reservation_files")
