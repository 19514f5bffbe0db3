"""The graded checks of chapter 01. Each plugs some of your functions into the real runtime."""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from exercises.grading import Chapter, CheckFailed, Context
from exercises.remote import wait_gone

CHAPTER = Chapter(number="01", slug="processes", module="mini_runtime.process",
                  learner_file="process.py", given=("FORWARDED_SIGNALS",))
check = CHAPTER.check

_SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
            signal.SIGUSR2, signal.SIGALRM, signal.SIGQUIT]


def _status_of_child(action: str, value: int) -> int:
    """A real wait status: a child that exits with `value` or dies of signal `value`."""
    pid = os.fork()
    if pid == 0:
        try:
            if action == "kill":
                if value != signal.SIGKILL:
                    signal.signal(value, signal.SIG_DFL)
                os.kill(os.getpid(), value)
                time.sleep(5)
        finally:
            os._exit(value)
    return os.waitpid(pid, 0)[1]


@check("1.1", "exit_code: exits and deaths by signal become docker's numbers", points=1,
       section="§ Exit codes and signals", plug=("exit_code",))
def exit_codes(ctx: Context) -> None:
    for code in ctx.rng.sample(range(0, 256), 3):
        got = ctx.learner.exit_code(_status_of_child("exit", code))
        ctx.expect(got == code, f"{code} for a child that called exit({code})", repr(got))
    for sig in ctx.rng.sample(_SIGNALS, 2):
        got = ctx.learner.exit_code(_status_of_child("kill", sig))
        ctx.expect(got == 128 + sig, f"{128 + sig} for a child killed by {signal.Signals(sig).name} ({sig})",
                   repr(got))
    code = ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "busybox", "sh", "-c", f"exit {code}")
    ctx.expect(result.returncode == code, f"`mini run busybox sh -c 'exit {code}'` to exit {code}",
               f"{result.returncode} {result.stderr.strip()[:120]}")


@check("1.2", "exec_error_code: 127 for a missing command, 126 for one that cannot run", points=1,
       section="§ When execve fails", plug=("exec_error_code",))
def exec_error_codes(ctx: Context) -> None:
    cases = [(errno.ENOENT, 127), (errno.ENOTDIR, 127), (errno.EACCES, 126), (errno.ENOEXEC, 126),
             (errno.EISDIR, 126)]
    ctx.rng.shuffle(cases)
    for err, code in cases:
        got = ctx.learner.exec_error_code(err)
        ctx.expect(got == code, f"{code} for {errno.errorcode[err]}", repr(got))
    name = f"nosuch{ctx.rng.randrange(10**6)}"
    result = ctx.mini("run", "busybox", name)
    ctx.expect(result.returncode == 127 and name in result.stderr,
               f"`mini run busybox {name}` to exit 127 and name the command",
               f"exit {result.returncode}, stderr {result.stderr.strip()[:120]!r}")


@check("1.3", "find_executable: search $PATH inside the image, like execvp", points=2,
       section="§ Finding the command", plug=("find_executable",))
def find_executable(ctx: Context) -> None:
    with tempfile.TemporaryDirectory(prefix="mini-grade-root-") as root:
        first, second = (f"d{ctx.rng.randrange(10**6)}", f"e{ctx.rng.randrange(10**6)}")
        name = f"tool{ctx.rng.randrange(10**6)}"
        for d in (first, second):
            os.makedirs(os.path.join(root, d))
        Path(root, first, name).write_text("not executable")           # must be skipped
        Path(root, second, name).write_text("#!/bin/sh\n")
        os.chmod(os.path.join(root, second, name), 0o755)
        path = f"/nowhere:/{first}:/{second}"
        want = os.path.join(root, second, name)
        got = ctx.learner.find_executable(name, path, root)
        ctx.expect(os.path.normpath(str(got)) == want,
                   f"{want} (the first *executable* {name} on PATH={path})", repr(got))
        got = ctx.learner.find_executable(f"/{second}/{name}", path, root)
        ctx.expect(os.path.normpath(str(got)) == want,
                   f"an absolute name /{second}/{name} to be taken inside the root: {want}", repr(got))
        missing = f"missing{ctx.rng.randrange(10**6)}"
        try:
            got = ctx.learner.find_executable(missing, path, root)
        except FileNotFoundError:
            pass
        else:
            raise CheckFailed(f"FileNotFoundError for a name on no PATH entry, got {got!r}")


@check("1.4", "exec_command: working directory, environment and arguments reach the command",
       points=2, section="§ fork, then execve", plug=("exec_command",))
def exec_command(ctx: Context) -> None:
    word = f"hello-{ctx.rng.randrange(10**9)}"
    value = f"v{ctx.rng.randrange(10**9)}"
    workdir = ctx.rng.choice(["/tmp", "/etc", "/home", "/usr/bin", "/var"])
    result = ctx.mini("run", "-w", workdir, "-e", f"MINI_CHECK={value}", "busybox",
                      "sh", "-c", f'echo {word}; echo "$MINI_CHECK"; pwd')
    lines = result.stdout.splitlines()
    ctx.expect(result.returncode == 0 and lines[:2] == [word, value],
               f"the lines {word!r} and {value!r} (echo and $MINI_CHECK)",
               f"exit {result.returncode}, stdout {lines[:2]}, stderr {result.stderr.strip()[:120]!r}")
    ctx.expect(len(lines) > 2 and lines[2].endswith(workdir),
               f"pwd to end with {workdir} (-w {workdir}, inside the image's files)", repr(lines[2:3]))


@check("1.5", "wait_for: wait for that one child, reap it, return its status", points=1,
       section="§ Waiting and zombies", plug=("wait_for",))
def wait_for(ctx: Context) -> None:
    slow_code, fast_code = ctx.rng.sample(range(1, 120), 2)
    # Children of the process that runs your functions: the fast one is already dead when
    # wait_for(slow) runs, so a wait for "any child" would return it instead.
    (fast, _), (slow, slow_outside) = ctx.server.fork_children([(0, fast_code), (0.3, slow_code)])
    time.sleep(0.05)
    status = ctx.learner.wait_for(slow)
    ctx.expect(isinstance(status, int) and os.WIFEXITED(status) and os.WEXITSTATUS(status) == slow_code,
               f"the raw status of pid {slow} (exit {slow_code}), not of another child",
               repr(status) + (f" (exit {os.WEXITSTATUS(status)})" if isinstance(status, int) else ""))
    # The kernel's word: a reaped child has no /proc entry left; a zombie still has one.
    ctx.expect(wait_gone(slow_outside, 0.5), f"pid {slow} reaped by wait_for",
               "it was still there (a zombie: waited for, but not reaped)")


@check("1.6", "forward_signals: a signal sent to mini reaches the container", points=2,
       section="§ Passing signals on", plug=("forward_signals",), retry=True)
def forward_signals(ctx: Context) -> None:
    sig = ctx.rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
    name = signal.Signals(sig).name.removeprefix("SIG")
    code = ctx.rng.randrange(3, 100)
    script = f'trap "echo got-{name}; kill \\$!; exit {code}" {name}; echo ready; sleep 30 & wait'
    proc = ctx.popen("run", "busybox", "sh", "-c", script, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""  # type: ignore[union-attr]
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate()
            raise CheckFailed(f"expected the container to print 'ready', got {line!r} "
                              f"(stderr {err.strip()[:120]!r})")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"mini got {name} but the container did not: it was still running 10s later")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ctx.expect(proc.returncode == code and f"got-{name}" in out,
               f"the container's trap to run (exit {code}) after `kill -{name}` to mini",
               f"exit {proc.returncode}, stdout {out.strip()!r}, stderr {err.strip()[:100]!r}")
    # The handlers of the process that runs forward_signals: restored after the with block.
    [(target, _)] = ctx.server.fork_children([(30, 0)])
    before = ctx.server.getsignal(sig)
    with ctx.learner.forward_signals(target):
        inside = ctx.server.getsignal(sig)
    after = ctx.server.getsignal(sig)
    ctx.expect(inside != before, f"a handler for {name} installed inside the with block", f"still {before}")
    ctx.expect(after == before, f"the {name} handler restored after the with block ({before})", after)


@check("1.7", "all together: your six functions run a container", points=1,
       section="§ The whole pipeline",
       plug=("exit_code", "exec_error_code", "find_executable", "exec_command", "wait_for",
             "forward_signals"))
def everything(ctx: Context) -> None:
    word, code = f"w{ctx.rng.randrange(10**9)}", ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "-e", f"X={word}", "busybox", "sh", "-c", f'echo "$X"; exit {code}')
    ctx.expect((result.returncode, result.stdout.strip()) == (code, word),
               f"output {word!r} and exit {code}",
               f"output {result.stdout.strip()!r} and exit {result.returncode} {result.stderr.strip()[:100]!r}")
    # --init (chapter 03) keeps the shell from being PID 1, which could not kill itself.
    result = ctx.mini("run", "--init", "busybox", "sh", "-c", "kill -9 $$")
    ctx.expect(result.returncode == 137, "137 for a command killed by SIGKILL", str(result.returncode))
    result = ctx.mini("run", "busybox", "nosuchcmd")
    ctx.expect(result.returncode == 127, "127 for a missing command", str(result.returncode))
