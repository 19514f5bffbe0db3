"""The extend part of exercise 01 (15 of 25 points): docker's `--ulimit`, which the reference
runtime parses through your hooks (`parse_ulimit`, `set_ulimits`). Graded black-box: real
`mini run` containers read their own limits in /proc/self/limits, a limit is enforced by the
kernel, and refused values end with docker's message, exit 125 and nothing left."""

from __future__ import annotations

import resource

from exercises.grading import Chapter, Context

SECTION = "§ fork, then execve"
HOOKS = ("parse_ulimit", "set_ulimits")
#: docker's names and the row /proc/PID/limits shows for each (a few of them).
ROWS = {"nofile": "Max open files", "nproc": "Max processes", "core": "Max core file size",
        "stack": "Max stack size", "memlock": "Max locked memory", "sigpending": "Max pending signals",
        "msgqueue": "Max msgqueue size"}
RESOURCES = {"nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE, "stack": resource.RLIMIT_STACK,
             "memlock": resource.RLIMIT_MEMLOCK, "sigpending": resource.RLIMIT_SIGPENDING,
             "msgqueue": resource.RLIMIT_MSGQUEUE}


def _last(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return (result.stderr.strip().splitlines() or [""])[-1]


def _limits(ctx: Context, *flags: str) -> dict[str, tuple[str, str]]:
    """/proc/self/limits of a container run with FLAGS: {row: (soft, hard)}."""
    result = ctx.mini("run", "--rm", *flags, "busybox", "cat", "/proc/self/limits")
    ctx.expect(result.returncode == 0, f"`mini run {' '.join(flags)} busybox cat /proc/self/limits` to exit 0",
               f"exit {result.returncode}, {_last(result)[:200]!r}")
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        row, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        rows[row] = (soft, hard)
    return rows


def _shown(n: int) -> str:
    return "unlimited" if n < 0 else str(n)


def register(chapter: Chapter) -> None:
    check = chapter.check

    @check("1.11", "--ulimit NAME=SOFT:HARD: the container's own limits", points=6, section=SECTION,
           plug=HOOKS, part="extend", timeout=60)
    def limits(ctx: Context) -> None:
        soft = ctx.rng.randrange(64, 1024)
        hard = soft + ctx.rng.randrange(0, 2048)
        other = ctx.rng.choice(sorted(set(ROWS) - {"nofile"}))
        ceiling = resource.getrlimit(RESOURCES[other])[1]  # (raising a hard limit is another matter)
        ceiling = 1 << 16 if ceiling == resource.RLIM_INFINITY else min(ceiling, 1 << 16)
        alone = ctx.rng.randrange(1, ceiling + 1)
        flags = ["--ulimit", f"nofile={soft}:{hard}", "--ulimit", f"{other}={alone}"]
        rows = _limits(ctx, *flags)
        ctx.expect(rows.get(ROWS["nofile"]) == (str(soft), str(hard)),
                   f"`--ulimit nofile={soft}:{hard}`: Max open files {soft} {hard} in /proc/self/limits",
                   repr(rows.get(ROWS["nofile"])))
        ctx.expect(rows.get(ROWS[other]) == (str(alone), str(alone)),
                   f"`--ulimit {other}={alone}` (no hard limit: the soft one is both): {ROWS[other]} "
                   f"{alone} {alone}", repr(rows.get(ROWS[other])))
        rows = _limits(ctx, "--ulimit", f"core={soft}:-1")
        ctx.expect(rows.get(ROWS["core"]) == (str(soft), "unlimited"),
                   f"`--ulimit core={soft}:-1` (-1: unlimited): Max core file size {soft} unlimited",
                   repr(rows.get(ROWS["core"])))

    @check("1.12", "--ulimit is enforced: fsize ends a writer with SIGXFSZ (exit 153)", points=4,
           section="§ Exit codes and signals", plug=HOOKS, part="extend", timeout=60)
    def enforced(ctx: Context) -> None:
        blocks = ctx.rng.randrange(2, 20)
        limit = blocks * 1024
        result = ctx.mini("run", "--rm", "--ulimit", f"fsize={limit}", "busybox", "sh", "-c",
                          f"dd if=/dev/zero of=/tmp/f bs=1024 count={blocks} 2>/dev/null && echo fits; "
                          f"dd if=/dev/zero of=/tmp/f bs=1024 count={blocks + 4}; echo dd=$?")
        # (not `exec dd`: as PID 1 of its namespace, dd would not die of a signal it has no handler for)
        ctx.expect(result.stdout.split() == ["fits", "dd=153"],
                   f"`--ulimit fsize={limit}`: {limit} bytes fit, and a longer write is killed by SIGXFSZ "
                   "(exit 128 + 25 = 153)",
                   f"stdout {result.stdout.strip()!r}, exit {result.returncode}, {_last(result)[:150]!r}")
        result = ctx.mini("run", "--rm", "busybox", "sh", "-c", "cat /proc/self/limits")
        unlimited = [line for line in result.stdout.splitlines() if line.startswith("Max file size")]
        ctx.expect(unlimited and "unlimited" in unlimited[0],
                   "a container without --ulimit to keep mini's own limits (Max file size unlimited)",
                   repr(unlimited))

    @check("1.13", "--ulimit: docker's errors, exit 125, nothing created", points=5, section=SECTION,
           plug=HOOKS, part="extend", timeout=60)
    def refused(ctx: Context) -> None:
        n = ctx.rng.randrange(100, 5000)
        word = ctx.rng.choice(["abc", "10k", "1.5", "lots"])
        cases = [(f"nofile{n}", f"invalid ulimit argument: nofile{n}"),
                 (f"nofiles={n}", "invalid ulimit type: nofiles"),
                 (f"nofile={word}", f'strconv.ParseInt: parsing "{word}": invalid syntax'),
                 (f"nproc={n}:{word}", f'strconv.ParseInt: parsing "{word}": invalid syntax'),
                 (f"nofile=1:2:{n}", f"too many limit value arguments - 1:2:{n}, can only have up to two, "
                                     "`soft[:hard]`"),
                 (f"nofile={n + 1}:{n}", f"ulimit soft limit must be less than or equal to hard limit: "
                                         f"{n + 1} > {n}")]
        ctx.private_state_root()
        for value, why in ctx.rng.sample(cases, 4):
            message = f'mini: invalid argument "{value}" for "--ulimit" flag: {why}'
            result = ctx.mini("run", "--ulimit", value, "busybox", "true")
            ctx.expect(result.returncode == 125 and _last(result) == message,
                       f"`--ulimit {value}`: exit 125 and {message!r}",
                       f"exit {result.returncode}, {_last(result)[:200]!r}")
        left = ctx.mini("ps", "-a", "-q").stdout.split()
        ctx.expect(not left, "no container left after the refused runs", f"containers {left}")
