"""The graded checks of chapter 03. Each plugs some of your functions into the real runtime."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from exercises.grading import Chapter, CheckFailed, Context
from exercises.why import expect_predictions

CHAPTER = Chapter(number="03", slug="namespaces", module="mini_runtime.namespaces",
                  learner_file="namespaces.py",
                  given=("IFF_UP", "IFREQ", "SIOCGIFFLAGS", "SIOCSIFFLAGS", "INIT_SIGNALS"))
check = CHAPTER.check


@check("3.1", "new_pid_namespace: the command is PID 1 and sees only its own processes", points=0.5,
       section="§ The PID namespace", plug=("new_pid_namespace",))
def pid_namespace(ctx: Context) -> None:
    n = ctx.rng.randrange(1, 4)
    result = ctx.mini("run", "busybox", "sh", "-c",
                      "echo $$; " + "sleep 2 & " * n + "ps -o pid; kill $(jobs -p)")
    pids = [word for word in result.stdout.split() if word != "PID"]
    ctx.expect(pids[:1] == ["1"], "`echo $$` to print 1", repr(pids[:1]) + " " + result.stderr.strip()[:120])
    ctx.expect(sorted(int(p) for p in pids[1:]) == list(range(1, n + 3)),
               f"ps to list exactly the shell, {n} sleep(s) and ps: pids 1..{n + 2}", repr(pids[1:]))


@check("3.2", "enter_namespaces: UTS, IPC and network differ from the outside", points=0.5,
       section="§ UTS, IPC and network namespaces", plug=("enter_namespaces",))
def other_namespaces(ctx: Context) -> None:
    proc, pid = ctx.start("run", "busybox", "sh", "-c", "echo ready; ip -o link | cut -d: -f2; sleep 5")
    try:
        links = proc.stdout.readline().split()  # type: ignore[union-attr]
        for kind in ctx.rng.sample(["uts", "ipc", "net"], 3):
            inside, outside = os.readlink(f"/proc/{pid}/ns/{kind}"), os.readlink(f"/proc/self/ns/{kind}")
            ctx.expect(inside != outside, f"the container's {kind} namespace to differ from the outside",
                       f"both {inside}")
    finally:
        ctx.stop(proc, pid)
    ctx.expect(links == ["lo"], "only `lo` in the container's network namespace", repr(links))


@check("3.3", "set_hostname: the container's name, and the host keeps its own", points=0.5,
       section="§ UTS, IPC and network namespaces", plug=("set_hostname",))
def hostname(ctx: Context) -> None:
    before = socket.gethostname()
    name = f"box-{ctx.rng.randrange(10**6)}"
    result = ctx.mini("run", "--hostname", name, "busybox", "hostname")
    ctx.expect(result.stdout.strip() == name, f"`hostname` to print {name!r}",
               repr(result.stdout.strip()) + " " + result.stderr.strip()[:120])
    ctx.expect(socket.gethostname() == before, f"the outside hostname to stay {before!r}",
               repr(socket.gethostname()))


@check("3.4", "bring_up_loopback: lo is up and 127.0.0.1 answers", points=1.5,
       section="§ UTS, IPC and network namespaces", plug=("bring_up_loopback",))
def loopback(ctx: Context) -> None:
    result = ctx.mini("run", "busybox", "sh", "-c",
                      "ip -o link show lo; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok")
    ctx.expect("UP" in result.stdout.split(">")[0] and "ping-ok" in result.stdout,
               "lo flagged UP and `ping 127.0.0.1` answered",
               repr(result.stdout.strip()[:120]) + " " + result.stderr.strip()[:120])


@check("3.5", "init_loop: --init passes signals on, reaps orphans, returns the command's code",
       points=3, section="§ PID 1 and --init", plug=("init_loop",), retry=True)
def init(ctx: Context) -> None:
    code = ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "--init", "busybox", "sh", "-c", f"echo $$; exit {code}")
    ctx.expect(result.returncode == code and result.stdout.strip() == "2",
               f"the command as PID 2 and its exit code {code}",
               f"pid {result.stdout.strip()!r}, exit {result.returncode}, {result.stderr.strip()[:120]!r}")
    result = ctx.mini("run", "--init", "busybox", "sh", "-c",
                      'sh -c "sleep 0.1 &"; sleep 0.8; ps -o stat | grep -c Z')
    ctx.expect(result.stdout.strip() == "0", "no zombie left: the orphaned sleep reaped by PID 1",
               f"{result.stdout.strip()!r} zombie(s) {result.stderr.strip()[:100]!r}")
    sig = ctx.rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
    proc, pid = ctx.start("run", "--init", "busybox", "sh", "-c", "echo ready; exec sleep 30")
    try:
        proc.send_signal(sig)  # mini forwards it to PID 1, which must pass it on to the command
        try:
            got = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"{signal.Signals(sig).name} to mini to end the command (PID 2): "
                              "it was still running 5 s later") from None
    finally:
        ctx.stop(proc, pid)
    ctx.expect(got == 128 + sig, f"exit {128 + sig} after {signal.Signals(sig).name}", str(got))


def _nspid(pid: int) -> list[int]:
    """The process's pid in each PID namespace it is in, outermost first (/proc/PID/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return [int(x) for x in next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))]


def _fork_in_server(ctx: Context, code: int) -> list[int]:
    """A child of the learner server (it sleeps a moment, then exits `code`): its NSpid."""
    try:
        [inner] = ctx.server.request("the server forked", op="fork", children=[[0.2, code]])
    except OSError as e:
        raise CheckFailed(f"expected the process that ran your `with` block to fork again afterwards, got "
                          f"{errno.errorcode.get(e.errno or 0, e.errno)} ({e.strerror}): its children still go to "
                          "a namespace whose PID 1 has ended") from None
    level = len(_nspid(ctx.server.pid)) - 1
    for task in Path(f"/proc/{ctx.server.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            nspid = _nspid(int(pid))
            if len(nspid) > level and nspid[level] == inner:
                return nspid
    raise CheckFailed(f"expected to find the server's child {inner}")


def _pid_for_children(pid: int) -> str:
    """The PID namespace the process's next child will be in ('new, no PID 1 yet' while the
    kernel has no process in it: the link is missing until then)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid_for_children")
    except FileNotFoundError:
        return "a new one, no PID 1 yet"


def _gone_or_zombie(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.01)


@check("3.6", "children_in_new_pid_namespace: the next child is PID 1 of a new namespace, then back home",
       points=2, section="§ The PID namespace", plug=("children_in_new_pid_namespace", "new_pid_namespace"))
def children_in_new_pid_namespace(ctx: Context) -> None:
    """Called in the learner server twice, the first namespace's PID 1 dead before the second;
    the server's namespaces are read from the kernel (/proc/PID/ns, NSpid)."""
    server = ctx.server.pid
    home, depth = ctx.server.namespace("pid"), len(_nspid(server))
    for round in (1, 2):
        block = ctx.learner.children_in_new_pid_namespace()
        try:
            block.__enter__()
        except OSError as e:
            raise CheckFailed(f"expected `with children_in_new_pid_namespace()` to work again (time {round}), "
                              f"got {errno.errorcode.get(e.errno or 0, e.errno)} ({e.strerror})") from None
        future = _pid_for_children(server)
        ctx.expect(future != home and ctx.server.namespace("pid") == home,
                   f"inside the `with` (time {round}): the caller's own PID namespace unchanged and its "
                   "children's a new one (/proc/PID/ns/pid_for_children)",
                   f"pid {ctx.server.namespace('pid')} (was {home}), pid_for_children {future}")
        nspid = _fork_in_server(ctx, 0)
        ctx.expect(len(nspid) == depth + 1 and nspid[-1] == 1,
                   f"the child forked inside the `with` (time {round}) to be PID 1 of a new namespace",
                   f"its pids {nspid} (outermost first)")
        block.__exit__(None, None, None)
        _gone_or_zombie(nspid[0], 5)  # its PID 1 has ended: that namespace takes no one any more
        after = _pid_for_children(server)
        ctx.expect(after == home, f"after the `with` (time {round}), children born in the caller's own "
                   "namespace again", f"pid_for_children {after}, the caller's {home}")
    nspid = _fork_in_server(ctx, 0)
    ctx.expect(len(nspid) == depth, "a child forked after the `with` in the caller's own namespace",
               f"its pids {nspid}")


def _errno_in_child(action) -> int:  # noqa: ANN001 - a callable that should fail
    """Run `action` in a child of ours (its namespaces die with it): the errno it failed with."""
    pid = os.fork()
    if pid == 0:
        try:
            action()
        except OSError as e:
            os._exit(e.errno or 0)
        except BaseException:  # noqa: BLE001
            os._exit(255)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _fork_after_pid1_died() -> None:
    from mini_runtime import syscalls

    syscalls.unshare(syscalls.CLONE_NEWPID)
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def _unshare_pid_twice() -> None:
    from mini_runtime import syscalls

    syscalls.unshare(syscalls.CLONE_NEWPID)
    syscalls.unshare(syscalls.CLONE_NEWPID)


def _hostname_too_long() -> None:
    from mini_runtime import syscalls

    syscalls.unshare(syscalls.CLONE_NEWUTS)  # (the sandbox's hostname, in a namespace of its own)
    syscalls.sethostname("h" * 65)


@check("3.7", "why? predict the kernel's errno for three namespace mistakes", points=1,
       section="§ The PID namespace", plug=("predicted_errnos",))
def why(ctx: Context) -> None:
    predicted = ctx.learner.predicted_errnos()
    kernel = {"fork_after_pid1_died": _errno_in_child(_fork_after_pid1_died),
              "unshare_pid_twice": _errno_in_child(_unshare_pid_twice),
              "hostname_too_long": _errno_in_child(_hostname_too_long)}
    expect_predictions(ctx, predicted, kernel)


@check("3.8", "all together: your functions isolate a container", points=1,
       section="§ The whole pipeline",
       plug=("new_pid_namespace", "children_in_new_pid_namespace", "enter_namespaces", "set_hostname",
             "bring_up_loopback", "init_loop"))
def everything(ctx: Context) -> None:
    name, code = f"all-{ctx.rng.randrange(10**6)}", ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "--init", "-h", name, "busybox", "sh", "-c",
                      f"echo $$ $(hostname) $(ip -o link | wc -l); ping -c1 -W2 127.0.0.1 >/dev/null; exit {code}")
    ctx.expect((result.stdout.split(), result.returncode) == (["2", name, "1"], code),
               f"'2 {name} 1' (PID, hostname, one link) and exit {code}",
               f"{result.stdout.strip()!r}, exit {result.returncode}, {result.stderr.strip()[:100]!r}")
