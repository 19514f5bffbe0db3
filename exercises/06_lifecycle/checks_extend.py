"""The extend part of exercise 06 (15 of 25 points): docker's restart policies, `--restart
no|on-failure[:N]|always|unless-stopped`, which the reference runtime leaves to your hooks
(`parse_restart`, `restart_after`). Graded black-box: real detached containers exit, and their
records (`inspect`, `ps`) and logs say whether, how often and when the monitor ran them again."""

from __future__ import annotations

import time

from exercises.feedback import clip
from exercises.grading import Chapter, Context
from mini_runtime.units import parse_rfc3339

SECTION = "§ The state machine"
HOOKS = ("parse_restart", "restart_after")
NOT_AN_INTEGER = "invalid restart policy format: maximum retry count must be an integer"
#: Counts Python's int() reads (or would read) that Go's strconv.Atoi refuses: graded on every seed.
ATOI_REFUSES = (" 3", "3 ", "1_0", "\uff13", "3.0")


def _last(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return clip((result.stderr.strip().splitlines() or [""])[-1], 200)


def _run_d(ctx: Context, *args: str) -> str:
    result = ctx.mini("run", "-d", *args)
    ctx.expect(result.returncode == 0 and len(result.stdout.strip()) == 64,
               f"`mini run -d {' '.join(args)[:70]}` to print the container's id",
               f"exit {result.returncode}, {_last(result)!r}")
    return result.stdout.strip()


def _state(ctx: Context, container: str) -> list[str]:
    """Status, RestartCount, ExitCode, Restarting."""
    return ctx.mini("inspect", "-f", "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} "
                    "{{.State.Restarting}}", container, plug=()).stdout.split()


def _settled(ctx: Context, container: str, within: float, most: int) -> list[str]:
    """Its state once it has stayed exited for half a second (restarts come within 0.1 s), or
    as soon as it has restarted more than `most` times: docker's RestartCount only grows, so
    that container can no longer settle as the check wants (a restart loop is seen at once,
    not after `within` seconds)."""
    deadline, seen = time.monotonic() + within, []
    while time.monotonic() < deadline:
        now = _state(ctx, container)
        if now[:1] == ["exited"] and now == seen or now[1:2] and now[1].isdigit() and int(now[1]) > most:
            return now
        seen = now if now[:1] == ["exited"] else []
        time.sleep(0.5 if seen else 0.1)
    return _state(ctx, container)


def register(chapter: Chapter) -> None:
    check = chapter.check

    @check("6.5", "--restart: docker's policies recorded, docker's errors with exit 125, nothing left",
           points=3, section=SECTION, plug=HOOKS, part="extend", timeout=60)
    def policies(ctx: Context) -> None:
        n = ctx.rng.randrange(1, 10)
        for value, want in [(f"on-failure:{n}", f"on-failure {n}"), ("always", "always 0"),
                            (f"on-failure:+{n}", f"on-failure {n}"),  # Go's Atoi takes a sign
                            (ctx.rng.choice(["unless-stopped", "on-failure"]), None)]:
            made = ctx.mini("create", "--restart", value, "busybox", "true")
            sign = " (Go's strconv.Atoi takes a sign: '+3' is 3)" if "+" in value else ""
            ctx.expect(made.returncode == 0, f"`mini create --restart {value}` to exit 0{sign}",
                       f"exit {made.returncode}, {_last(made)!r}")
            got = ctx.mini("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} "
                           "{{.HostConfig.RestartPolicy.MaximumRetryCount}}", made.stdout.strip(), plug=())
            want = want or f"{value} 0"
            ctx.expect(got.stdout.strip() == want, f"HostConfig.RestartPolicy {want!r} in inspect",
                       repr(got.stdout.strip()))
            ctx.mini("rm", made.stdout.strip(), plug=())
        word = ctx.rng.choice(["sometimes", "never", "on-fail", "Always"])
        cases = [(f"on-failure:{word}", NOT_AN_INTEGER),
                 (f":{n}", "invalid restart policy format: no policy provided before colon"),
                 (word, f"invalid restart policy: unknown policy '{word}'; use one of 'no', 'always', "
                        "'on-failure', or 'unless-stopped'"),
                 (f"always:{n}", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
                 (f"unless-stopped:-{n}", "invalid restart policy: maximum retry count can only be used with "
                                          "'on-failure' and cannot be negative"),
                 (f"on-failure:-{n}", "invalid restart policy: maximum retry count cannot be negative")]
        for value, why in ctx.rng.sample(cases, 4):
            result = ctx.mini("run", "-d", "--restart", value, "busybox", "true")
            ctx.expect(result.returncode == 125 and _last(result) == f"mini: {why}",
                       f"`--restart {value}`: exit 125 and 'mini: {why}'",
                       f"exit {result.returncode}, {_last(result)!r}")
        for count in ATOI_REFUSES:
            result = ctx.mini("run", "-d", "--restart", f"on-failure:{count}", "busybox", "true")
            ctx.expect(result.returncode == 125 and _last(result) == f"mini: {NOT_AN_INTEGER}",
                       f"`--restart 'on-failure:{count}'`: exit 125 and 'mini: {NOT_AN_INTEGER}' (hint: docker "
                       "reads the count with Go's strconv.Atoi: an optional sign and ASCII digits only, where "
                       "Python's int() also takes spaces, '_' and other scripts' digits)",
                       f"exit {result.returncode}, {_last(result)!r}")
        value = ctx.rng.choice(["always", "unless-stopped", f"on-failure:{n}"])
        result = ctx.mini("run", "--rm", "--restart", value, "busybox", "true")
        why = "mini: conflicting options: cannot specify both --restart and --rm"
        ctx.expect(result.returncode == 125 and _last(result) == why, f"`--rm --restart {value}`: exit 125, {why!r}",
                   f"exit {result.returncode}, {_last(result)!r}")
        result = ctx.mini("run", "--rm", "--restart", "no", "busybox", "true")
        ctx.expect(result.returncode == 0, "`--rm --restart no` to run", f"exit {result.returncode}")
        left = ctx.mini("ps", "-a", "-q", plug=()).stdout.split()
        ctx.expect(not left, "no container left by the refused runs", f"containers {left}")

    @check("6.6", "on-failure[:N]: a failing command runs N more times, a succeeding one once", points=4,
           section=SECTION, plug=HOOKS, part="extend", timeout=60, retry=True)
    def on_failure(ctx: Context) -> None:
        n, code = ctx.rng.randrange(1, 4), ctx.rng.randrange(1, 120)
        failing = _run_d(ctx, "--restart", f"on-failure:{n}", "busybox", "sh", "-c", f"echo run; exit {code}")
        fine = _run_d(ctx, "--restart", "on-failure", "busybox", "sh", "-c", "echo run; exit 0")
        state = _settled(ctx, failing, 20, most=n)
        ctx.expect(state == ["exited", str(n), str(code), "false"],
                   f"`--restart on-failure:{n}` and `exit {code}`: exited, RestartCount {n}, ExitCode {code}, "
                   "not Restarting", " ".join(state))
        runs = ctx.mini("logs", failing, plug=()).stdout.split()
        ctx.expect(runs == ["run"] * (n + 1), f"{n + 1} runs in its log (the first, then {n} restarts)",
                   f"{len(runs)}")
        state = _settled(ctx, fine, 10, most=0)
        ctx.expect(state == ["exited", "0", "0", "false"],
                   "`--restart on-failure` and `exit 0`: exited, never restarted (RestartCount 0)", " ".join(state))

    @check("6.7", "always: Restarting in ps between runs; stop and rm -f end it for good", points=4,
           section=SECTION, plug=HOOKS, part="extend", timeout=60, retry=True)
    def always(ctx: Context) -> None:
        code = ctx.rng.randrange(0, 120)
        looping = _run_d(ctx, "--restart", ctx.rng.choice(["always", "unless-stopped"]), "busybox", "sh", "-c",
                         f"sleep 0.2; exit {code}")
        want, seen, deadline = f"Restarting ({code}) ", set(), time.monotonic() + 20
        while time.monotonic() < deadline and not any(s.startswith(want) for s in seen):
            seen.add(ctx.mini("ps", "--format", "{{.Status}}", "--filter", f"id={looping}", plug=()).stdout.strip())
            time.sleep(0.05)
        ctx.expect(any(s.startswith(want) for s in seen),
                   f"`mini ps` (running containers) to show 'Restarting ({code}) ... ago' between two runs",
                   f"only {sorted(seen)[:4]}")
        ctx.mini("stop", "-t", "1", looping, timeout=30)
        before = _state(ctx, looping)
        time.sleep(1.5)
        after = _state(ctx, looping)
        ctx.expect(before[:1] == ["exited"] and after == before and int(after[1]) >= 1,
                   "after `mini stop`: exited, and no more restarts (RestartCount the same 1.5 s later)",
                   f"{' '.join(before)}, then {' '.join(after)}")
        steady = _run_d(ctx, "--restart", "always", "busybox", "sh", "-c", "echo ready; sleep 30")
        time.sleep(1)
        ctx.mini("stop", "-t", "1", steady, timeout=30)
        state = _settled(ctx, steady, 10, most=0)
        ctx.expect(state == ["exited", "0", "137", "false"],
                   "a running container stopped by hand (SIGKILL after 1 s) not restarted: exited, "
                   "RestartCount 0, ExitCode 137", " ".join(state))
        removed = _run_d(ctx, "--restart", "always", "busybox", "sh", "-c", "sleep 0.3; exit 1")
        time.sleep(ctx.rng.uniform(1.0, 2.5))
        ctx.mini("rm", "-f", removed, plug=(), timeout=30)
        time.sleep(1.5)
        left = ctx.mini("ps", "-a", "-q", "--no-trunc", plug=()).stdout.split()
        ctx.expect(removed not in left, "`mini rm -f` to end the restarts: the container gone, and still gone "
                   "1.5 s later", f"{removed[:12]} listed by ps -a")

    @check("6.8", "docker's backoff: 100 ms, doubled at each restart, back to 100 ms after 10 s up",
           points=4, section=SECTION, plug=HOOKS, part="extend", timeout=90, retry=True)
    def backoff(ctx: Context) -> None:
        script = ("n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; echo start $n; "
                  "if [ $n -eq 5 ]; then sleep 10.5; echo end $n; fi; [ $n -ge 6 ] && exit 0; exit 1")
        container = _run_d(ctx, "--restart", "on-failure", "busybox", "sh", "-c", script)
        state = _settled(ctx, container, 60, most=5)
        ctx.expect(state == ["exited", "5", "0", "false"],
                   "six runs (five failures, then success): exited, RestartCount 5, ExitCode 0", " ".join(state))
        times = {}
        for line in ctx.mini("logs", "-t", container, plug=()).stdout.splitlines():
            stamp, _, text = line.partition(" ")
            times[text] = parse_rfc3339(stamp) or 0.0
        starts = [times.get(f"start {i}", 0.0) for i in range(1, 7)]
        gaps = [b - a for a, b in zip(starts, starts[1:5])]
        ctx.expect(all(starts) and gaps[3] >= 0.8 and gaps[3] - gaps[0] >= 0.45 and gaps[2] - gaps[0] >= 0.15,
                   "growing waits between runs 1 to 5 (0.1, 0.2, 0.4, 0.8 s, plus the time a start takes)",
                   "gaps " + ", ".join(f"{g:.2f}" for g in gaps) + " s")
        after_long = starts[5] - times.get("end 5", 0.0)
        ctx.expect(after_long < gaps[0] + 0.7,
                   f"after run 5's 10.5 s up, the wait back to 0.1 s: run 6 about as soon as run 2 was "
                   f"({gaps[0]:.2f} s)", f"{after_long:.2f} s after run 5 ended")
