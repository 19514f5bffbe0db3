"""The graded checks of chapter 04. Rebuild (4.1-4.11, 10 points): they plug your functions into
the real runtime, or call them on the cgroup of a real, running container. Extend (4.12-4.15,
15 points, in checks_extend.py beside this file): black-box, docker's --cpu-period, --cpu-quota and
--memory-reservation on real containers. cgroup v2 only: what the course VM has."""

from __future__ import annotations

import os
import time
from pathlib import Path

import errno
import subprocess

from exercises.grading import Chapter, CheckFailed, Context
from exercises.why import expect_predictions
from mini_runtime import cgroups


def _needs_v2() -> str | None:
    if cgroups.mode() == "v2":
        return None
    return (f"chapter 04's exercise targets cgroup v2 (the course VM's), and this machine has the "
            f"{cgroups.mode()} interface. Grade in the course VM, or inside a v2 guest kernel: "
            "python scripts/v2_guest.py --run python -m exercises grade 04 [options]")


CHAPTER = Chapter(number="04", slug="cgroups", module="mini_runtime.cgroups",
                  learner_file="cgroups.py", given=("CPU_PERIOD", "V2_CONTROLLERS"), requires=_needs_v2)
check = CHAPTER.check
# dd reads this much from /dev/zero into one buffer, touching every page: past the limit.
ALLOCATE = ("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")


def _cgroup(pid: int) -> Path:
    """The v2 cgroup directory of a process, from /proc/PID/cgroup ("0::/mini/<id>")."""
    line = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[0]
    return cgroups.ROOT / line.split("::", 1)[1].lstrip("/")


def _read(directory: Path, name: str) -> str:
    try:
        return (directory / name).read_text().strip()
    except FileNotFoundError:
        return f"(no {name})"


def _compare(ctx: Context, name: str, **kwargs: object) -> None:
    """Call your function and the reference one with the same random arguments."""
    got = getattr(ctx.learner, name)(**kwargs)
    want = getattr(cgroups, name)(**kwargs)
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    ctx.expect(got == want, f"{name}({args}) == {want!r}", repr(got))


@check("4.1", "shares_to_weight: docker's --cpu-shares as a v2 cpu.weight", points=0.5,
       section="§ Limits", plug=("shares_to_weight",))
def weight(ctx: Context) -> None:
    for shares in (2, 1024, 262144, 1, 300000, *ctx.rng.sample(range(3, 262144), 5)):
        got, want = ctx.learner.shares_to_weight(shares), cgroups.shares_to_weight(shares)
        ctx.expect(got == want, f"shares_to_weight({shares}) == {want}", repr(got))
    shares = ctx.rng.randrange(2, 4096)
    proc, pid = ctx.start("run", "--cpu-shares", str(shares), "busybox", "sh", "-c", "echo ready; sleep 20")
    try:
        got_file = _read(_cgroup(pid), "cpu.weight")
    finally:
        ctx.stop(proc, pid)
    want = str(cgroups.shares_to_weight(shares))
    ctx.expect(got_file == want, f"`mini run --cpu-shares {shares}`: cpu.weight {want}", got_file)


@check("4.2", "enable_controllers: memory, cpu and pids handed down to the container", points=1,
       section="§ Delegation and subtree_control", plug=("enable_controllers",))
def delegation(ctx: Context) -> None:
    megabytes = ctx.rng.randrange(20, 90)
    proc, pid = ctx.start("run", "--memory", f"{megabytes}m", "--pids-limit", "50", "busybox",
                          "sh", "-c", "echo ready; sleep 20")
    try:
        directory = _cgroup(pid)
        handed = _read(directory.parent, "cgroup.subtree_control").split()
        memory = _read(directory, "memory.max")
    finally:
        ctx.stop(proc, pid)
    offered = (cgroups.ROOT / "cgroup.controllers").read_text().split()
    want = [c for c in cgroups.V2_CONTROLLERS if c in offered]
    ctx.expect(directory.parent.name == cgroups.PARENT and set(want) <= set(handed),
               f"{cgroups.PARENT}/cgroup.subtree_control to list {' '.join(want)}",
               f"{directory.parent}: {' '.join(handed) or '(empty)'}")
    ctx.expect(memory == str(megabytes << 20), f"the container's memory.max to be {megabytes << 20}", memory)


@check("4.3", "join: the container's command runs inside its cgroup", points=0.5,
       section="§ Joining a cgroup", plug=("join",))
def joining(ctx: Context) -> None:
    n = ctx.rng.randrange(1, 4)
    result = ctx.mini("run", "--cgroupns", "host", "busybox", "sh", "-c",  # the host's view of paths
                      "hostname; cat /proc/self/cgroup; " + "sleep 1 & " * n + "cat /proc/$!/cgroup; wait")
    lines = result.stdout.split()
    ctx.expect(result.returncode == 0 and len(lines) >= 2,
               "the container to print its hostname and /proc/self/cgroup",
               f"exit {result.returncode}, {result.stdout.strip()!r} {result.stderr.strip()[:150]!r}")
    short = lines[0]
    ctx.expect(lines[1].startswith(f"0::/{cgroups.PARENT}/{short}") and lines[2:] == lines[1:2],
               f"/proc/self/cgroup inside, and a child's, to be 0::/{cgroups.PARENT}/{short}...",
               repr(lines[1:]))


@check("4.4", "limit_files: --memory and --memory-swap, and the OOM kill at the limit", points=1,
       section="§ Why memory kills and CPU throttles", plug=("limit_files",))
def memory(ctx: Context) -> None:
    megabytes = ctx.rng.randrange(16, 48)
    size = megabytes << 20
    _compare(ctx, "limit_files", memory=size)
    _compare(ctx, "limit_files", memory=size, memory_swap=size + ctx.rng.randrange(1, 1 << 30))
    _compare(ctx, "limit_files", memory=size, memory_swap=-1)
    _compare(ctx, "limit_files", memory=size, memory_swap=size)
    _compare(ctx, "limit_files", memory_swap=size)
    result = ctx.mini("run", "--memory", f"{megabytes}m", "--memory-swap", f"{megabytes}m",
                      "busybox", *ALLOCATE, timeout=60)
    ctx.expect(result.returncode == 137,
               f"dd of 64 MiB under --memory {megabytes}m to be OOM-killed: exit 137",
               f"exit {result.returncode} {result.stderr.strip()[-150:]!r}")


@check("4.5", "limit_files: --cpus, --cpu-shares and --pids-limit", points=1,
       section="§ Limits", plug=("limit_files", "shares_to_weight"))
def cpu_and_pids(ctx: Context) -> None:
    cpus = ctx.rng.choice([c for c in (0.1, 0.25, 0.5, 0.75, 1.5, 2.0) if c <= (os.cpu_count() or 1)])
    shares = ctx.rng.randrange(2, 10000)
    limit = ctx.rng.randrange(6, 20)
    _compare(ctx, "limit_files", cpus=cpus)
    _compare(ctx, "limit_files", cpus=ctx.rng.randrange(1, 800) / 100)
    _compare(ctx, "limit_files", cpu_shares=shares)
    _compare(ctx, "limit_files", pids=limit)
    _compare(ctx, "limit_files", pids=0)
    _compare(ctx, "limit_files", pids=-1)
    _compare(ctx, "limit_files")
    # A subshell forks sleeps until fork fails (ash then gives up: the subshell exits).
    proc, pid = ctx.start("run", "--cpus", str(cpus), "--pids-limit", str(limit), "busybox", "sh", "-c",
                          f"(for i in $(seq {2 * limit}); do sleep 20 & done) 2>/dev/null; "
                          "echo ready; exec sleep 20")
    try:
        directory = _cgroup(pid)
        quota, running = _read(directory, "cpu.max"), _read(directory, "pids.current")
        refused = dict(line.split() for line in _read(directory, "pids.events").splitlines()).get("max", "0")
    finally:
        ctx.stop(proc, pid)
    want = f"{int(cpus * cgroups.CPU_PERIOD)} {cgroups.CPU_PERIOD}"
    ctx.expect(quota == want, f"`--cpus {cpus}`: cpu.max {want!r}", repr(quota))
    ctx.expect(running.isdigit() and int(running) < limit and int(refused) > 0,
               f"a shell that starts {2 * limit} sleeps under --pids-limit {limit} to be refused forks "
               f"and stay under {limit} processes", f"pids.current {running}, forks refused {refused}")


@check("4.6", "oom_kill_count: mini says when the OOM killer ended the container", points=0.5,
       section="§ Why memory kills and CPU throttles", plug=("oom_kill_count",))
def oom(ctx: Context) -> None:
    megabytes = ctx.rng.randrange(16, 48)
    flags = ("--memory", f"{megabytes}m", "--memory-swap", f"{megabytes}m")
    result = ctx.mini("run", *flags, "busybox", *ALLOCATE, timeout=60)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    ctx.expect(result.returncode == 137 and "out of memory" in last,
               "exit 137 and mini's line: killed: out of memory",
               f"exit {result.returncode}, {last[:150]!r}")
    proc, pid = ctx.start("run", *flags, "busybox", "sh", "-c", "echo ready; sleep 20")
    ctx.stop(proc, pid)  # SIGKILL, as the OOM killer would send
    stderr = proc.stderr.read()  # type: ignore[union-attr]
    ctx.expect(proc.returncode == 137 and "out of memory" not in stderr,
               "exit 137 and no OOM line for a container ended by kill -9",
               f"exit {proc.returncode}, {stderr.strip()[:150]!r}")


@check("4.7", "read_usage: memory, peak, CPU time and process count of a container", points=1,
       section="§ Accounting", plug=("read_usage",), retry=True)
def usage(ctx: Context) -> None:
    n = ctx.rng.randrange(1, 5)
    megabytes = ctx.rng.randrange(4, 16)
    proc, pid = ctx.start("run", "busybox", "sh", "-c",
                          f"dd if=/dev/zero of=/dev/shm/fill bs=1M count={megabytes} 2>/dev/null; "
                          + "sleep 20 & " * n + "echo ready; while :; do :; done")
    try:
        directory = _cgroup(pid)
        time.sleep(0.3)
        cgroups.set_frozen(directory, True)  # (the reference's) so that nothing moves while we compare
        got = ctx.learner.read_usage(directory)
        cpu = dict(line.split() for line in (directory / "cpu.stat").read_text().splitlines())
        want = {"memory": int(_read(directory, "memory.current")),
                "memory_peak": int(_read(directory, "memory.peak")) if (directory / "memory.peak").exists() else 0,
                "cpu_ns": int(cpu["usage_usec"]) * 1000, "pids": int(_read(directory, "pids.current"))}
    finally:
        ctx.stop(proc, pid)
    ctx.expect(isinstance(got, dict) and set(got) == set(want), f"a dict with the keys {sorted(want)}",
               repr(got))
    ctx.expect(isinstance(got, dict) and {k: v for k, v in got.items() if not k.startswith("memory")} ==
               {k: v for k, v in want.items() if not k.startswith("memory")},
               f"{want} (from the cgroup's files)", repr(got))
    close = all(abs(got[k] - want[k]) <= 1 << 18 for k in ("memory", "memory_peak"))  # a frozen cgroup's
    ctx.expect(close, f"{want} (from the cgroup's files)", repr(got))               # memory barely moves
    ctx.expect(want["pids"] == n + 1 and want["memory"] >= megabytes << 20,
               f"{n + 1} processes and at least {megabytes} MiB (the check's own sanity test)", repr(want))


def _counter(pid: int) -> int:
    """The number the container's loop writes to /tmp/n, seen through its root."""
    for _ in range(50):
        try:
            return int(Path(f"/proc/{pid}/root/tmp/n").read_text())
        except (ValueError, FileNotFoundError):
            time.sleep(0.01)  # caught between the truncate and the write
    raise CheckFailed("the container's counter /tmp/n could not be read")


def _advances(pid: int, seconds: float) -> bool:
    before = _counter(pid)
    time.sleep(seconds)
    return _counter(pid) > before


@check("4.8", "set_frozen: a counter stops while frozen and goes on after the thaw", points=1,
       section="§ Freezing", plug=("set_frozen",), retry=True)
def freeze(ctx: Context) -> None:
    proc, pid = ctx.start("run", "busybox", "sh", "-c",
                          "i=0; echo ready; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.02; done")
    directory = _cgroup(pid)
    try:
        ctx.expect(_advances(pid, 0.3), "the counter to advance before the freeze", "it did not")
        for _ in range(ctx.rng.randrange(1, 3)):
            ctx.learner.set_frozen(directory, True)
            events = _read(directory, "cgroup.events").splitlines()
            ctx.expect("frozen 1" in events, "cgroup.events to say 'frozen 1' when set_frozen(True) returns",
                       repr(events))
            ctx.expect(not _advances(pid, 0.5), "the counter to stand still while frozen", "it advanced")
            ctx.learner.set_frozen(directory, False)
            events = _read(directory, "cgroup.events").splitlines()
            ctx.expect("frozen 0" in events, "cgroup.events to say 'frozen 0' when set_frozen(False) returns",
                       repr(events))
            ctx.expect(_advances(pid, 0.5), "the counter to advance again after the thaw", "it did not")
    finally:
        if (directory / "cgroup.freeze").exists() and _read(directory, "cgroup.freeze") == "1":
            (directory / "cgroup.freeze").write_text("0")
        ctx.stop(proc, pid)


# Values only the kernel refuses, with EINVAL: pids.max past PID_MAX_LIMIT (4194304: docker and
# mini pass --pids-limit on as it is), a cpu.max quota under 1 ms (mini's --cpus stops at 0.01).
def _refused_value(ctx: Context) -> tuple[str, str]:
    if ctx.rng.random() < 0.5:
        return "pids.max", str(ctx.rng.randrange(5_000_000, 1 << 31))
    return "cpu.max", f"{ctx.rng.randrange(1, 1000)} {cgroups.CPU_PERIOD}"


@check("4.9", "create_limited: the controllers, the cgroup, its limits; nothing left after a bad value",
       points=1.5, section="§ Delegation and subtree_control", plug=("enable_controllers", "create_limited"))
def orchestration(ctx: Context) -> None:
    megabytes, limit = ctx.rng.randrange(16, 90), ctx.rng.randrange(8, 60)
    cpus = ctx.rng.choice([c for c in (0.1, 0.25, 0.5, 1.0) if c <= (os.cpu_count() or 1)])
    proc, pid = ctx.start("run", "--memory", f"{megabytes}m", "--cpus", str(cpus), "--pids-limit", str(limit),
                          "busybox", "sh", "-c", "echo ready; sleep 20")
    try:
        directory = _cgroup(pid)
        files = {name: _read(directory, name) for name in ("memory.max", "cpu.max", "pids.max")}
    finally:
        ctx.stop(proc, pid)
    want = {"memory.max": str(megabytes << 20), "pids.max": str(limit),
            "cpu.max": f"{int(cpus * cgroups.CPU_PERIOD)} {cgroups.CPU_PERIOD}"}
    ctx.expect(files == want, f"`mini run --memory {megabytes}m --cpus {cpus} --pids-limit {limit}`: "
               f"the container's {want}", repr(files))
    # Direct: a limit the kernel refuses, after one it takes, in a parent made for the call.
    parent = cgroups.ROOT / cgroups.PARENT
    ctx.expect(not parent.exists(), f"{parent} removed with the container (the check's own sanity test)",
               "it is still there")
    directory = parent / f"direct-{ctx.rng.randrange(1 << 30):x}"
    name, value = _refused_value(ctx)
    files = {"memory.max": str(megabytes << 20), name: value}
    try:
        ctx.learner.create_limited(cgroups.ROOT, parent, directory, files)
        raised = "nothing"
    except OSError as e:
        raised = f"{type(e).__name__} {errno.errorcode.get(e.errno or 0, e.errno)}"
    ctx.expect(raised.endswith("EINVAL"), f"create_limited(..., {files}) to raise the kernel's "
               f"OSError (EINVAL: {name} {value} is refused), so that the caller hears it", raised)
    left = [str(d) for d in (directory, parent) if d.exists()]
    ctx.expect(not left, f"nothing left after the refused {name}: no {directory.name}, no "
               f"{parent.name} (create_limited made both)", f"{', '.join(left)} still there")


@check("4.10", "all together: a container under every limit, and no cgroup left after it", points=1,
       section="§ Cleaning up",
       plug=("enable_controllers", "create_limited", "join", "shares_to_weight", "limit_files",
             "oom_kill_count"))
def everything(ctx: Context) -> None:
    megabytes, limit = ctx.rng.randrange(16, 40), ctx.rng.randrange(8, 30)
    proc, pid = ctx.start("run", "--memory", f"{megabytes}m", "--memory-swap", f"{megabytes}m",
                          "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", str(limit),
                          "busybox", "sh", "-c", "echo ready; sleep 20")
    try:
        directory = _cgroup(pid)
        files = {name: _read(directory, name) for name in ("memory.max", "cpu.max", "cpu.weight", "pids.max")}
    finally:
        ctx.stop(proc, pid)
    want = {"memory.max": str(megabytes << 20), "cpu.max": f"50000 {cgroups.CPU_PERIOD}",
            "cpu.weight": str(cgroups.shares_to_weight(512)), "pids.max": str(limit)}
    ctx.expect(files == want, f"the container's limits {want}", repr(files))
    ctx.expect(not directory.exists(), f"{directory} removed when the container ended", "it is still there")
    result = ctx.mini("run", "--memory", f"{megabytes}m", "--memory-swap", f"{megabytes}m",
                      "busybox", *ALLOCATE, timeout=60)
    last = (result.stderr.strip().splitlines() or [""])[-1]
    ctx.expect(result.returncode == 137 and "out of memory" in last,
               "exit 137 and mini's OOM line from a dd past the limit", f"exit {result.returncode}, {last[:150]!r}")


def _errno_of(action) -> int:  # noqa: ANN001 - a callable that should fail
    try:
        action()
    except OSError as e:
        return e.errno or 0
    return 0


@check("4.11", "why? predict the kernel's errno for three cgroup mistakes", points=1,
       section="§ Delegation and subtree_control", plug=("predicted_errnos",))
def why(ctx: Context) -> None:
    """Your predictions against what the kernel answers here and now, on cgroups of the check's own."""
    predicted = ctx.learner.predicted_errnos()
    base = cgroups.ROOT / cgroups.PARENT
    base.mkdir(exist_ok=True)
    cgroups.enable_controllers(cgroups.ROOT, base)
    busy, bare = base / f"why-{ctx.rng.randrange(1 << 30):x}", base / f"bare-{ctx.rng.randrange(1 << 30):x}"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        busy.mkdir()
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        (bare / "leaf").mkdir(parents=True)  # bare hands nothing down to leaf
        kernel = {"hand_down_with_process": _errno_of(lambda: (busy / "cgroup.subtree_control").write_text("+memory")),
                  "hand_down_not_offered": _errno_of(
                      lambda: (bare / "leaf" / "cgroup.subtree_control").write_text("+memory")),
                  "rmdir_with_process": _errno_of(busy.rmdir)}
    finally:
        sleeper.kill()
        sleeper.wait()
        for directory in (bare / "leaf", bare, busy):
            for _ in range(200):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
    expect_predictions(ctx, predicted, kernel)

