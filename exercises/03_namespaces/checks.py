"""The graded checks of chapter 03. Each plugs some of your functions into the real runtime."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from exercises.grading import Chapter, CheckFailed, Context

CHAPTER = Chapter(number="03", slug="namespaces", module="mini_runtime.namespaces",
                  learner_file="namespaces.py",
                  given=("IFF_UP", "IFREQ", "SIOCGIFFLAGS", "SIOCSIFFLAGS", "INIT_SIGNALS"))
check = CHAPTER.check


@check("3.1", "new_pid_namespace: the command is PID 1 and sees only its own processes", points=1,
       section="§ The PID namespace", plug=("new_pid_namespace",))
def pid_namespace(ctx: Context) -> None:
    n = ctx.rng.randrange(1, 4)
    result = ctx.mini("run", "busybox", "sh", "-c",
                      "echo $$; " + "sleep 2 & " * n + "ps -o pid; kill $(jobs -p)")
    pids = [word for word in result.stdout.split() if word != "PID"]
    ctx.expect(pids[:1] == ["1"], "`echo $$` to print 1", repr(pids[:1]) + " " + result.stderr.strip()[:120])
    ctx.expect(sorted(int(p) for p in pids[1:]) == list(range(1, n + 3)),
               f"ps to list exactly the shell, {n} sleep(s) and ps: pids 1..{n + 2}", repr(pids[1:]))


@check("3.2", "enter_namespaces: UTS, IPC and network differ from the outside", points=1,
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


@check("3.3", "set_hostname: the container's name, and the host keeps its own", points=1,
       section="§ UTS, IPC and network namespaces", plug=("set_hostname",))
def hostname(ctx: Context) -> None:
    before = socket.gethostname()
    name = f"box-{ctx.rng.randrange(10**6)}"
    result = ctx.mini("run", "--hostname", name, "busybox", "hostname")
    ctx.expect(result.stdout.strip() == name, f"`hostname` to print {name!r}",
               repr(result.stdout.strip()) + " " + result.stderr.strip()[:120])
    ctx.expect(socket.gethostname() == before, f"the outside hostname to stay {before!r}",
               repr(socket.gethostname()))


@check("3.4", "bring_up_loopback: lo is up and 127.0.0.1 answers", points=2,
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
            got = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"{signal.Signals(sig).name} to mini to end the command (PID 2): "
                              "it was still running 10 s later") from None
    finally:
        ctx.stop(proc, pid)
    ctx.expect(got == 128 + sig, f"exit {128 + sig} after {signal.Signals(sig).name}", str(got))


@check("3.6", "all together: your five functions isolate a container", points=2,
       section="§ The whole pipeline",
       plug=("new_pid_namespace", "enter_namespaces", "set_hostname", "bring_up_loopback", "init_loop"))
def everything(ctx: Context) -> None:
    name, code = f"all-{ctx.rng.randrange(10**6)}", ctx.rng.randrange(1, 120)
    result = ctx.mini("run", "--init", "-h", name, "busybox", "sh", "-c",
                      f"echo $$ $(hostname) $(ip -o link | wc -l); ping -c1 -W2 127.0.0.1 >/dev/null; exit {code}")
    ctx.expect((result.stdout.split(), result.returncode) == (["2", name, "1"], code),
               f"'2 {name} 1' (PID, hostname, one link) and exit {code}",
               f"{result.stdout.strip()!r}, exit {result.returncode}, {result.stderr.strip()[:100]!r}")
