"""The graded checks of chapter 01. Each plugs some of your functions into the real runtime."""

from __future__ import annotations

import errno
import functools
import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from exercises.grading import Chapter, CheckFailed, Context
from exercises.remote import wait_gone
from exercises.why import expect_predictions

CHAPTER = Chapter(number="01", slug="processes", module="mini_runtime.process",
                  learner_file="process.py",
                  given=("FORWARDED_SIGNALS", "GO", "READY", "Child", "stay_tied_to_parent"))
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


@check("1.2", "exec_error_code: 127 for a missing command, 126 for one that cannot run", points=0.5,
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


@check("1.3", "find_executable: search $PATH inside the image, like execvp", points=1,
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
       points=1, section="§ fork, then execve", plug=("exec_command",))
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


@check("1.5", "wait_for: wait for that one child, reap it, return its status", points=0.5,
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


@check("1.6", "forward_signals: a signal sent to mini reaches the container", points=1,
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


def _server_child(ctx: Context, inner: int) -> int:
    """The learner server's child `inner` (its pid as the server sees it), in our numbering."""
    for task in Path(f"/proc/{ctx.server.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            status = Path(f"/proc/{pid}/status").read_text()
            nspid = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
            if int(nspid[-1]) == inner:
                return int(pid)
    raise CheckFailed(f"expected spawn() to return the pid of a child of the process that called it, "
                      f"got {inner}")


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]; field 52 of
    proc(5), the exit status, is at index 49."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _pipes(pid: int) -> dict[int, str]:
    """fd -> 'pipe:[inode]' for the process's pipe fds."""
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith("pipe:"):
            found[int(name)] = link
    return found


def _zombie_status(pid: int, seconds: float) -> int | None:
    """The wait status of the process once it has ended (a zombie nobody reaped yet)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fields = _stat(pid)
        if fields[0] == "Z":
            return int(fields[49])
        time.sleep(0.01)
    return None


@check("1.7", "spawn and release: ready, then go, then execve; the error pipe's EOF says it worked",
       points=2, section="§ fork, then execve", plug=("spawn", "release"))
def spawn_and_release(ctx: Context) -> None:
    """Called in the learner server, whose child the check then reads from the kernel. `setup`
    is execve itself (of a shell that exits with a random code), so what ran when is visible:
    the child's program (/proc/PID/exe), and its wait status once it has ended."""
    from mini_runtime.config import ProcessSpec
    from mini_runtime.errors import ExecError
    from mini_runtime.process import Child

    spec = ProcessSpec(["true"], {"PATH": "/usr/bin:/bin"}, "/")
    code = ctx.rng.randrange(1, 120)
    answer = ctx.learner.spawn(spec, "/", functools.partial(os.execv, "/bin/sh", ["sh", "-c", f"exit {code}"]))
    if not (isinstance(answer, tuple) and len(answer) == 3 and all(isinstance(x, int) for x in answer)):
        raise CheckFailed(f"expected spawn() to return Child(pid, go, errors), got {answer!r}")
    child = Child(*answer)
    pid = _server_child(ctx, child.pid)
    fields = _stat(pid)
    ctx.expect(int(fields[3]) == pid, "the child in a session of its own (setsid) once spawn() returns",
               f"session {fields[3]}, the child is {pid}")
    mine = _pipes(pid)
    ctx.expect(sorted(set(os.listdir(f"/proc/{pid}/fd")) - {"0", "1", "2"}, key=int) == sorted(map(str, mine))
               and len(mine) == 2 and len(set(mine.values())) == 2,
               "the child to hold fds 0, 1, 2 and its two pipe ends, nothing else",
               f"fds {sorted(os.listdir(f'/proc/{pid}/fd'), key=int)}")
    held = {fd: link for fd, link in _pipes(ctx.server.pid).items() if link in mine.values()}
    ctx.expect(sorted(held) == sorted((child.go, child.errors)) and len(set(held.values())) == 2,
               f"the parent to keep one end of each pipe, Child.go={child.go} and Child.errors="
               f"{child.errors}, and to close its copies of the child's ends",
               f"the parent holds fds {sorted(held)} on them")
    time.sleep(0.3)
    fields = _stat(pid)
    ran = os.readlink(f"/proc/{pid}/exe") != os.readlink(f"/proc/{ctx.server.pid}/exe") or fields[0] == "Z"
    ctx.expect(not ran, "nothing of the container's (its setup) to run before release() says GO",
               "setup had already run 0.3 s after spawn() returned")
    try:
        answer = ctx.learner.release(child)
    except Exception as e:  # noqa: BLE001 - the learner's exception, as data
        raise CheckFailed(f"expected release() to return after a successful execve, got "
                          f"{type(e).__name__}: {e}") from None
    status = _zombie_status(pid, 5)
    ctx.expect(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == code,
               f"after release(), setup to run: the shell it executes exits {code}",
               f"status {status!r}")
    # A setup that fails: its report comes back through the error pipe, as ExecError.
    missing = f"/nonexistent-{ctx.rng.randrange(10**6)}"
    child = Child(*ctx.learner.spawn(spec, "/", functools.partial(os.chdir, missing)))
    pid = _server_child(ctx, child.pid)
    try:
        answer = ctx.learner.release(child)
    except ExecError as e:
        ctx.expect(missing in str(e), f"ExecError's message to carry the child's report (naming {missing})",
                   repr(str(e)[:150]))
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"expected ExecError when setup fails in the child, got {type(e).__name__}: {e}") from None
    else:
        raise CheckFailed(f"expected ExecError when setup fails in the child (chdir to {missing}), "
                          f"release() returned {answer!r}")
    status = _zombie_status(pid, 5)
    ctx.expect(status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 125,
               "the child whose setup failed to exit 125", f"status {status!r}")


@check("1.8", "spawn and release in mini: exec errors, default signals, and the container dies with mini",
       points=1, section="§ When execve fails", plug=("spawn", "release"))
def spawn_in_mini(ctx: Context) -> None:
    ctx.private_state_root()
    code = ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "busybox", "sh", "-c", f"grep SigIgn /proc/self/status; exit {code}")
    ctx.expect(result.returncode == code, f"`mini run busybox sh -c 'exit {code}'` to exit {code}",
               f"exit {result.returncode}, {result.stderr.strip()[:150]!r}")
    # Only the two Python ignores count: a parent may pass others on (make ignores glibc's 32, 33).
    fields = result.stdout.split()
    mask = int(fields[1], 16) if fields[:1] == ["SigIgn:"] and len(fields) == 2 else -1
    pythons = 1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)
    ctx.expect(mask >= 0 and not mask & pythons,
               "SIGPIPE and SIGXFSZ not ignored in the container (Python ignores them: put back to "
               "their defaults before exec)", repr(result.stdout.strip()))
    for command, want in ((f"nosuch{ctx.rng.randrange(10**6)}", 127), ("/etc", 126)):
        result = ctx.mini("run", "busybox", command)
        ctx.expect(result.returncode == want and f'exec: "{command}"' in result.stderr,
                   f"`mini run busybox {command}` to exit {want} with the child's report `exec: \"{command}\": ...`",
                   f"exit {result.returncode}, {result.stderr.strip()[:150]!r}")
    proc, pid = ctx.start("run", "busybox", "sh", "-c", "echo ready; sleep 30")
    proc.kill()  # SIGKILL: mini has no chance to clean up or to pass anything on
    proc.wait()
    ctx.expect(wait_gone(pid, 5), "the container to die when mini is killed (PR_SET_PDEATHSIG)",
               "it was still running 5 s later")


@check("1.9", "why? predict the kernel's errno for three process mistakes", points=1,
       section="§ When execve fails", plug=("predicted_errnos",))
def why(ctx: Context) -> None:
    """Your predictions against what the kernel answers here and now."""
    predicted = ctx.learner.predicted_errnos()

    def exec_errno(path: str) -> int:  # in a child, so that a surprise success replaces nothing here
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(path, [path])
            except OSError as e:
                os._exit(e.errno or 0)
            os._exit(0)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    with tempfile.TemporaryDirectory(prefix="mini-grade-why-") as scratch:
        directory = os.path.join(scratch, f"d{ctx.rng.randrange(10**6)}")
        os.mkdir(directory, 0o755)
        script = os.path.join(scratch, f"s{ctx.rng.randrange(10**6)}")
        Path(script).write_text("echo hello\n")
        os.chmod(script, 0o755)
        kernel = {"exec_a_directory": exec_errno(directory), "exec_without_shebang": exec_errno(script)}
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    try:
        os.waitpid(pid, 0)
        kernel["wait_twice"] = 0
    except OSError as e:
        kernel["wait_twice"] = e.errno or 0
    expect_predictions(ctx, predicted, kernel)


@check("1.10", "all together: your functions run a container", points=1,
       section="§ The whole pipeline",
       plug=("exit_code", "exec_error_code", "find_executable", "exec_command", "wait_for",
             "forward_signals", "spawn", "release"))
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
