"""The extend part of exercise 03 (15 of 25 points): `--uptime-offset SECONDS`, a time namespace,
which the reference runtime leaves to your hook (`enter_time_namespace`). Graded black-box:
real `mini run` containers read /proc/uptime and their namespace links, against the host's."""

from __future__ import annotations

import os
import time

from exercises.grading import Chapter, Context

SECTION = "§ UTS, IPC and network namespaces"
HOOKS = ("enter_time_namespace",)


def _last(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return (result.stderr.strip().splitlines() or [""])[-1]


def _uptime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _shifted(ctx: Context, offset: int, *flags: str) -> list[str]:
    """Run a container with --uptime-offset OFFSET: its uptime must be the host's + OFFSET."""
    before = _uptime()
    result = ctx.mini("run", "--rm", *flags, "--uptime-offset", str(offset), "busybox", "sh", "-c",
                      "cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time")
    after = _uptime()
    lines = result.stdout.split()
    ctx.expect(result.returncode == 0 and len(lines) == 2,
               f"`mini run {' '.join(flags)} --uptime-offset {offset} ...` to run (exit 0)",
               f"exit {result.returncode}, {_last(result)[:200]!r}")
    inside = float(lines[0])
    ctx.expect(before + offset - 1 <= inside <= after + offset + 1,
               f"an uptime of {before:.0f} + {offset} = {before + offset:.0f} s inside "
               f"(`{' '.join(flags)} --uptime-offset {offset}`)", f"{inside:.0f} s")
    return lines


def register(chapter: Chapter) -> None:
    check = chapter.check

    @check("3.9", "--uptime-offset: the container's uptime is shifted, in a time namespace of its own",
           points=8, section=SECTION, plug=HOOKS, part="extend", timeout=60)
    def shifted(ctx: Context) -> None:
        offset = ctx.rng.randrange(1000, 10**7)
        lines = _shifted(ctx, offset)
        host = os.readlink("/proc/self/ns/time")
        ctx.expect(lines[1] != host, f"the command in a time namespace of its own (not the host's {host})",
                   lines[1])
        back = -ctx.rng.randrange(10, max(11, int(_uptime() / 2)))
        _shifted(ctx, back)
        result = ctx.mini("run", "--rm", "busybox", "readlink", "/proc/self/ns/time")
        ctx.expect(result.stdout.strip() == host, "a container without --uptime-offset in the host's time "
                   "namespace", repr(result.stdout.strip()))

    @check("3.10", "--uptime-offset with --init: the command, PID 2, is shifted too", points=4,
           section="§ PID 1 and --init", plug=HOOKS, part="extend", timeout=60)
    def with_init(ctx: Context) -> None:
        _shifted(ctx, ctx.rng.randrange(1000, 10**6), "--init")

    @check("3.11", "--uptime-offset below zero uptime: the kernel's ERANGE, exit 125, nothing left",
           points=3, section=SECTION, plug=HOOKS, part="extend", timeout=60)
    def out_of_range(ctx: Context) -> None:
        ctx.private_state_root()
        offset = -int(_uptime()) - ctx.rng.randrange(1000, 10**6)
        result = ctx.mini("run", "--uptime-offset", str(offset), "busybox", "true")
        ctx.expect(result.returncode == 125 and "numerical result out of range" in _last(result).lower(),
                   f"`--uptime-offset {offset}` (uptime below zero): exit 125 and the kernel's reason, "
                   "ERANGE's 'Numerical result out of range'",
                   f"exit {result.returncode}, {_last(result)[:200]!r}")
        left = ctx.mini("ps", "-a", "-q").stdout.split()
        ctx.expect(len(left) <= 1, "at most the created container left (as docker keeps one whose start failed)",
                   f"containers {left}")
