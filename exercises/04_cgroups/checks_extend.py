"""The extend part of exercise 04 (15 of 25 points): docker's --cpu-period, --cpu-quota and
--memory-reservation, which the reference runtime parses but leaves to your hooks
(`cpu_quota_files`, `reservation_files`). Graded black-box: real `mini run` containers read
their own cgroup's files (/sys/fs/cgroup inside, their private cgroup namespace), a busy loop
is throttled, and refused values end with docker's message, exit 125 and nothing left."""

from __future__ import annotations

from exercises.grading import Chapter, Context
from mini_runtime import cgroups

SECTION = "§ Limits"
FILES = "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.low /sys/fs/cgroup/memory.max"


def _last(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return (result.stderr.strip().splitlines() or [""])[-1]


def _files(ctx: Context, *flags: str, script: str = FILES) -> list[str]:
    """Run a container with FLAGS that prints its own cgroup files; their lines."""
    result = ctx.mini("run", "--rm", *flags, "busybox", "sh", "-c", script, timeout=60)
    ctx.expect(result.returncode == 0, f"`mini run {' '.join(flags)} ...` to run (exit 0)",
               f"exit {result.returncode}, {_last(result)[:200]!r}")
    return result.stdout.splitlines()


def _refused(ctx: Context, flags: list[str], message: str) -> None:
    """docker's one line, its exit code 125, and no container or cgroup left behind."""
    result = ctx.mini("run", *flags, "busybox", "true", timeout=60)
    ctx.expect(result.returncode == 125 and _last(result) == f"mini: {message}",
               f"`mini run {' '.join(flags)}` to fail with exit 125 and docker's line 'mini: {message}'",
               f"exit {result.returncode}, {_last(result)[:200]!r}")
    left = ctx.mini("ps", "-a", "-q").stdout.split()
    parent = cgroups.ROOT / cgroups.PARENT
    groups = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
    ctx.expect(not left and not groups, f"nothing left after `mini run {' '.join(flags)}` failed",
               f"containers {left}, cgroups {groups}")


def register(chapter: Chapter) -> None:
    check = chapter.check

    @check("4.12", "--cpu-period and --cpu-quota: cpu.max, and a busy loop is throttled", points=5,
           section=SECTION, plug=("cpu_quota_files",), part="extend", timeout=90)
    def cpu_quota(ctx: Context) -> None:
        ctx.private_state_root()
        period = ctx.rng.randrange(20, 200) * 1000
        quota = period * ctx.rng.randrange(10, 40) // 100
        script = (f"{FILES}; (while :; do :; done) & sleep 1; kill $!; "
                  "grep -E '^(nr_throttled|usage_usec) ' /sys/fs/cgroup/cpu.stat")
        lines = _files(ctx, "--cpu-period", str(period), "--cpu-quota", str(quota), script=script)
        ctx.expect(lines[:1] == [f"{quota} {period}"],
                   f"`--cpu-period {period} --cpu-quota {quota}`: cpu.max {quota} {period}", repr(lines[:1]))
        stat = dict(line.split() for line in lines[3:] if len(line.split()) == 2)
        ctx.expect(int(stat.get("nr_throttled", "0")) > 0,
                   f"a busy loop under {quota} µs per {period} µs to be throttled (cpu.stat nr_throttled > 0)",
                   repr(stat))
        alone = ctx.rng.randrange(2, 90) * 1000
        lines = _files(ctx, "--cpu-quota", str(alone))
        ctx.expect(lines[:1] == [f"{alone} {cgroups.CPU_PERIOD}"],
                   f"`--cpu-quota {alone}` alone: cpu.max {alone} {cgroups.CPU_PERIOD} (the kernel's period stays)",
                   repr(lines[:1]))
        other = ctx.rng.randrange(2, 1000) * 1000
        lines = _files(ctx, "--cpu-period", str(other), "--cpu-quota", "-1")
        ctx.expect(lines[:1] == [f"max {other}"],
                   f"`--cpu-period {other} --cpu-quota -1` (no quota): cpu.max max {other}", repr(lines[:1]))

    @check("4.13", "--cpu-period and --cpu-quota: docker's errors, exit 125, nothing left", points=3,
           section=SECTION, plug=("cpu_quota_files",), part="extend", timeout=90)
    def cpu_quota_errors(ctx: Context) -> None:
        ctx.private_state_root()
        period_words = "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        bad_period = ctx.rng.choice([ctx.rng.randrange(1, 1000), ctx.rng.randrange(1_000_001, 5_000_000)])
        _refused(ctx, ["--cpu-period", str(bad_period)], period_words)
        _refused(ctx, ["--cpu-quota", str(ctx.rng.randrange(1, 1000))],
                 "CPU cfs quota can not be less than 1ms (i.e. 1000)")
        _refused(ctx, ["--cpus", "0.5", "--cpu-period", str(ctx.rng.randrange(2, 100) * 1000)],
                 "Conflicting options: Nano CPUs and CPU Period cannot both be set")
        _refused(ctx, ["--cpus", "0.5", "--cpu-quota", str(ctx.rng.randrange(2, 100) * 1000)],
                 "Conflicting options: Nano CPUs and CPU Quota cannot both be set")

    @check("4.14", "--memory-reservation: memory.low, beside --memory", points=4,
           section=SECTION, plug=("reservation_files",), part="extend", timeout=90)
    def reservation(ctx: Context) -> None:
        ctx.private_state_root()
        megabytes = ctx.rng.randrange(6, 200)
        lines = _files(ctx, "--memory-reservation", f"{megabytes}m")
        ctx.expect(lines[1:3] == [str(megabytes << 20), "max"],
                   f"`--memory-reservation {megabytes}m`: memory.low {megabytes << 20}, memory.max max",
                   repr(lines[1:3]))
        limit = megabytes + ctx.rng.randrange(0, 100)
        lines = _files(ctx, "--memory", f"{limit}m", "--memory-reservation", f"{megabytes}m")
        ctx.expect(lines[1:3] == [str(megabytes << 20), str(limit << 20)],
                   f"`--memory {limit}m --memory-reservation {megabytes}m`: memory.low {megabytes << 20}, "
                   f"memory.max {limit << 20}", repr(lines[1:3]))
        lines = _files(ctx, "--memory", f"{limit}m")
        ctx.expect(lines[1:2] == ["0"], "no --memory-reservation: memory.low 0", repr(lines[1:2]))

    @check("4.15", "--memory-reservation: docker's errors, exit 125, nothing left", points=3,
           section=SECTION, plug=("reservation_files",), part="extend", timeout=90)
    def reservation_errors(ctx: Context) -> None:
        ctx.private_state_root()
        _refused(ctx, ["--memory-reservation", f"{ctx.rng.randrange(1, 6 * 1024)}k"],
                 "Minimum memory reservation allowed is 6MB")
        limit = ctx.rng.randrange(6, 100)
        _refused(ctx, ["--memory", f"{limit}m", "--memory-reservation", f"{limit + ctx.rng.randrange(1, 50)}m"],
                 "Minimum memory limit can not be less than memory reservation limit, see usage")
