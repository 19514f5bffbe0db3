"""The graded checks of chapter 06: the rebuild part (10 of 25 points). Each plugs some of your
functions into the reference runtime: into a foreground `mini run`, which is its container's
monitor itself, and into every monitor of a detached container (`mini run -d`), whose three
phases run with your functions too. The extend part is in checks_extend.py."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time

from exercises.feedback import clip
from exercises.grading import REPO, Chapter, Context
from mini_runtime import container as records
from mini_runtime import monitor

CHAPTER = Chapter(number="06", slug="lifecycle", module="mini_runtime.monitor", learner_file="monitor.py",
                  given=("SOCKET", "send", "receive", "socket_path", "request", "relay_all"))
check = CHAPTER.check


def last_line(result) -> str:  # noqa: ANN001 - a CompletedProcess
    return clip((result.stderr.strip().splitlines() or [""])[-1], 200)


def detached(ctx: Context, *args: str) -> str:
    """`mini run -d ARGS`: the container's id (or a failed check that says why not)."""
    result = ctx.mini("run", "-d", *args)
    ctx.expect(result.returncode == 0 and len(result.stdout.strip()) == 64,
               f"`mini run -d {' '.join(args)[:60]}` to print the container's id",
               f"exit {result.returncode}, {last_line(result)!r}")
    return result.stdout.strip()


def logged(ctx: Context, container: str, line: str, within: float = 10.0) -> bool:
    """Whether `line` shows in the container's log within `within` seconds. Once the container
    has exited (its monitor drained its output and ended, or died: nobody writes its log any
    more), the log as it is then is the answer: a `serve` that raises is seen in a second or
    two, not after `within` (the state is asked only after the first second, the usual wait)."""
    started = time.monotonic()
    while time.monotonic() < started + within:
        if line in ctx.mini("logs", container, plug=()).stdout.splitlines():
            return True
        if time.monotonic() > started + 1 and ctx.mini("inspect", "-f", "{{.State.Status}}", container,
                                                       plug=()).stdout.strip() == "exited":
            return line in ctx.mini("logs", container, plug=()).stdout.splitlines()
        time.sleep(0.1)
    return False


@check("6.1", "serve: relays stdout and stderr apart, logs both, returns the wait status", points=3,
       section="§ Three phases, and why the middle one is lean", plug=("serve",))
def relay_and_log(ctx: Context) -> None:
    out, err, code = f"out-{ctx.rng.randrange(10**6)}", f"err-{ctx.rng.randrange(10**6)}", ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "--name", "relay", "busybox", "sh", "-c", f"echo {out}; echo {err} >&2; exit {code}")
    ctx.expect(result.returncode == code, f"`mini run ... exit {code}` to exit {code}",
               f"exit {result.returncode}, {last_line(result)!r}")
    ctx.expect(result.stdout.split() == [out] and err in result.stderr.split(),
               f"{out!r} on mini's stdout only and {err!r} on its stderr",
               f"stdout {result.stdout.strip()[:80]!r}, stderr {result.stderr.strip()[:80]!r}")
    logs = ctx.mini("logs", "relay", plug=())
    ctx.expect(logs.stdout.split() == [out] and logs.stderr.split() == [err],
               f"`mini logs` to give {out!r} as stdout and {err!r} as stderr (the json-file log)",
               f"stdout {logs.stdout.strip()[:80]!r}, stderr {logs.stderr.strip()[:80]!r}")


def burst(lines: int, code: int) -> str:
    """A container command that ends with its pipe full: the lines are made first, then `cat`
    writes them as fast as the pipe takes them (a monitor that logs them cannot keep up), and the
    shell exits right after. Whatever `serve` had not read when it saw the exit is still there."""
    return f"seq 1 {lines} > /tmp/lines; cat /tmp/lines; exit {code}"


@check("6.2", "serve: nothing lost at the end, in the foreground and in a detached monitor", points=3,
       section="§ Three phases, and why the middle one is lean", plug=("serve",), retry=True, timeout=60)
def drain(ctx: Context) -> None:
    lines, code = ctx.rng.randrange(40000, 70000), ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "--name", "burst", "busybox", "sh", "-c", burst(lines, code))
    got = result.stdout.split()
    ctx.expect(result.returncode == code and len(got) == lines and got[-1:] == [str(lines)],
               f"all {lines} lines of `seq 1 {lines}` (its last output, still in the pipe when it exited), "
               f"then exit {code}", f"{len(got)} lines ending {got[-1:]}, exit {result.returncode}, "
               f"{last_line(result)!r}")
    logs = ctx.mini("logs", "--tail", "1", "burst", plug=()).stdout.split()
    ctx.expect(logs == [str(lines)], f"the log to end with {lines} too", repr(logs))
    lines, code = ctx.rng.randrange(40000, 70000), ctx.rng.randrange(1, 120)
    container = detached(ctx, "busybox", "sh", "-c", burst(lines, code))
    waited = ctx.mini("wait", container)
    ctx.expect(waited.stdout.strip() == str(code), f"`mini wait` of a detached `... exit {code}` to print {code}",
               f"{waited.stdout.strip()!r}, {last_line(waited)!r}")
    logs = ctx.mini("logs", container, plug=()).stdout.split()
    ctx.expect(len(logs) == lines and logs[-1:] == [str(lines)],
               f"its monitor to log all {lines} lines", f"{len(logs)} lines ending {logs[-1:]}")


SIGNALS = [signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGTERM, signal.SIGINT]


class early_waiter:  # noqa: N801 - a context manager, named for what it holds
    """A `wait` request of our own on the container's monitor socket, as `mini wait` makes it:
    fails the check if the monitor answers (or hangs up) while the container still runs."""

    def __init__(self, ctx: Context, container: str) -> None:
        self.ctx, self.container, self.sock = ctx, container, socket.socket(socket.AF_UNIX)

    def __enter__(self) -> socket.socket:
        fd, path = monitor.socket_path(str(records.run_dir(self.container)))
        try:
            self.sock.connect(path)
        except OSError as e:
            self.ctx.expect(False, "the container's monitor to take a `wait` request on its socket", str(e))
        finally:
            os.close(fd)
        monitor.send(self.sock, {"op": "wait"})
        early = select.select([self.sock], [], [], 1.0)[0]
        if early:
            self.sock.settimeout(1)
            try:
                reply = monitor.receive(self.sock)
            except ValueError:                          # not one JSON line
                reply = {"not JSON": True}
            self.sock.close()
            self.ctx.expect(False, "no answer to `wait` while the container runs: a waiter must get its answer "
                            "only when the container has ended: the finish phase sends it the exit code (keep "
                            "the connection in `waiters`; do not answer it, do not close it)",
                            f"{clip(repr(reply), 80) if reply else 'the connection closed'} within 1 s, while "
                            "it still ran (a `docker wait` answered so prints an exit code there is not yet)")
        return self.sock

    def __exit__(self, *_: object) -> None:
        self.sock.close()


@check("6.3", "answer: kill delivers the signal asked for, wait answers when it has ended", points=2,
       section="§ The state machine", plug=("answer",), retry=True)
def kill_and_wait(ctx: Context) -> None:
    sig, code = ctx.rng.choice(SIGNALS), ctx.rng.randrange(1, 120)
    name = signal.Signals(sig).name
    container = detached(ctx, "busybox", "sh", "-c",
                         f'trap "exit {code}" {name[3:]}; echo ready; while :; do sleep 0.1; done')
    ctx.expect(logged(ctx, container, "ready"), "the container to start and log 'ready'", "no 'ready'")
    with early_waiter(ctx, container) as waiter:
        killed = ctx.mini("kill", "-s", name, container)
        ctx.expect(killed.returncode == 0, f"`mini kill -s {name}` to exit 0", f"exit {killed.returncode}, "
                   f"{last_line(killed)!r}")
        waiter.settimeout(15)
        reply = monitor.receive(waiter) or {}
        ctx.expect(reply.get("StatusCode") == code, f"the monitor's answer to `wait`, once the {name} trap "
                   f"ran, to be {{'StatusCode': {code}, ...}} (the finish phase sends it)", clip(repr(reply), 120))
    waited = ctx.mini("wait", container, timeout=15)
    ctx.expect(waited.stdout.strip() == str(code),
               f"`mini wait` to print {code}: the shell's trap for {name} ran", f"{waited.stdout.strip()!r}")


#: Run in the jail (the monitor's pid is the jail's): signal the monitor, then is it still alive?
PROBE = ("import os, sys, time\nfrom mini_runtime.container import start_time\n"
         "pid, started = open(sys.argv[1]).read().split()\n"
         "for sig in sys.argv[2:]:\n    os.kill(int(pid), int(sig))\n"
         "time.sleep(0.5)\nprint(start_time(int(pid)) == started)\n")
FATAL = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def monitor_survives(ctx: Context, container: str) -> bool:
    """SIGTERM, SIGINT and SIGHUP to the container's monitor: alive 0.5 s later?"""
    argv = [sys.executable, "-c", PROBE, str(records.run_dir(container) / "owner"), *(str(int(s)) for s in FATAL)]
    jail = ctx.jail()
    proc = (jail.popen if jail else subprocess.Popen)(argv, stdout=subprocess.PIPE, text=True,
                                                       env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.communicate(timeout=10)[0].strip() == "True"


@check("6.4", "why? stop, and a PID 1 without handlers: predict the exit code, then see it", points=2,
       section="§ The state machine", plug=("serve", "answer"), retry=True, timeout=45)
def stop_pid1(ctx: Context) -> None:
    bare = detached(ctx, "busybox", "sh", "-c", "echo ready; while :; do sleep 0.1; done")
    code = ctx.rng.randrange(1, 120)
    trapped = detached(ctx, "busybox", "sh", "-c", f'trap "exit {code}" TERM; echo ready; while :; do sleep 0.1; done')
    for container in (bare, trapped):
        ctx.expect(logged(ctx, container, "ready"), "the containers to start and log 'ready'", "no 'ready'")
    ctx.expect(monitor_survives(ctx, trapped),
               "a detached container's monitor to live through SIGTERM, SIGINT and SIGHUP (serve ignores them "
               "when monitor=True: only SIGKILL may end a monitor, for once it is gone nobody records the "
               "container's exit code, keeps its log or answers `stop`)",
               "the monitor gone 0.5 s after them")
    started = time.monotonic()
    ctx.mini("stop", "-t", "2", bare, timeout=30)
    took = time.monotonic() - started
    state = ctx.mini("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", bare, plug=()).stdout.split()
    ctx.expect(state == ["exited", "137"] and took >= 1.8,
               "a PID-1 shell without handlers to ignore SIGTERM and end by the SIGKILL 2 s later: exited 137",
               f"{' '.join(state)} after {took:.1f} s")
    ctx.mini("stop", "-t", "10", trapped, timeout=30)
    state = ctx.mini("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", trapped, plug=()).stdout.split()
    ctx.expect(state == ["exited", str(code)], f"the shell with a TERM trap to exit with its own {code}",
               " ".join(state))


