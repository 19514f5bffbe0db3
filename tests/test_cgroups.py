"""Chapter 04 acceptance: limits, priority, accounting and control, on the real kernel.

These run on the host (cgroup v1 hybrid here) and again inside the cgroup-v2-only guest kernel
(`make test-v2`), so both interfaces are tested for real.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MINI, container_pid, mini
from mini_runtime import cgroups, units
from mini_runtime.errors import UsageError

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.cgroup]
V2 = cgroups.mode() == "v2"


def _start(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(MINI + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert select.select([proc.stdout], [], [], 15)[0], "the container did not start"
    assert proc.stdout.readline() == "ready\n"
    return proc, container_pid()


def _stop(proc: subprocess.Popen[str], pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _cgroup_of(pid: int, controller: str) -> Path:
    """The cgroup directory of `pid` for a controller, from /proc/PID/cgroup."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if (V2 and names == "") or controller in names.split(","):
            return cgroups.ROOT / ("" if V2 else controller) / path.lstrip("/")
    raise LookupError(controller)


@pytest.mark.parametrize("text, value", [("64m", 67108864), ("64MB", 67108864), ("1g", 1 << 30),
                                         ("512k", 524288), ("4096", 4096), ("10b", 10),
                                         ("64MiB", 67108864), ("64 m", 67108864), ("1p", 1 << 50),
                                         ("1.5g", 3 << 29)])
def test_docker_size_units(text, value):
    assert units.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["9" * 400, "8192p", str(1 << 63), "99999999999999999999g"])
def test_a_size_beyond_64_bits_is_refused_not_a_traceback(text):
    """Once `float("9" * 400)` was infinity and int() of it an OverflowError."""
    with pytest.raises(UsageError, match="more than 8 EiB"):
        units.parse_bytes(text)
    assert units.parse_bytes(str((1 << 63) - 1)) == (1 << 63) - 1


@pytest.mark.parametrize("shares, weight", [(2, 1), (1024, 100), (262144, 10000), (512, 59)])
def test_shares_to_weight_runc_formula(shares, weight):
    assert cgroups.shares_to_weight(shares) == weight


def test_memory_limit_file_holds_the_bytes():
    proc, pid = _start("run", "--memory", "64m", "busybox", "sh", "-c", "echo ready; sleep 30")
    try:
        name = "memory.max" if V2 else "memory.limit_in_bytes"
        assert (_cgroup_of(pid, "memory") / name).read_text().strip() == "67108864"
        assert _cgroup_of(pid, "memory").parent.name == cgroups.PARENT
    finally:
        _stop(proc, pid)


@pytest.mark.parametrize("flags, swap", [([], 0), (["--memory", "64m"], 2 * 64 << 20),
                                         (["--memory", "64m", "--memory-swap", "-1"], -1),
                                         (["--memory", "64m", "--memory-swap", "96m"], 96 << 20)])
def test_inspect_records_docker_s_memory_swap(flags, swap):
    """docker records (and sets) memory + swap as twice --memory when --memory-swap is not given."""
    cid = mini("create", *flags, "busybox", "true").stdout.strip()
    try:
        assert mini("inspect", "-f", "{{.HostConfig.MemorySwap}}", cid).stdout == f"{swap}\n"
    finally:
        assert mini("rm", cid).returncode == 0


def test_allocating_past_the_limit_is_oom_killed_137():
    # dd reads 128 MiB from /dev/zero into one buffer: every page of it gets touched. As PID 1
    # it is the container, so the OOM killer's SIGKILL ends the container: 137.
    result = mini("run", "--memory", "64m", "--memory-swap", "64m", "busybox",
                  "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1", timeout=120)
    assert result.returncode == 137
    assert result.stderr.splitlines()[-1] == \
        "mini: the container was killed: out of memory (its --memory limit is 64 MiB)"


def test_an_oom_killed_child_is_reported_but_the_container_lives_on():
    result = mini("run", "--memory", "64m", "--memory-swap", "64m", "busybox", "sh", "-c",
                  "dd if=/dev/zero of=/dev/null bs=128M count=1; echo survived", timeout=120)
    assert result.returncode == 0 and result.stdout == "survived\n"
    assert result.stderr.splitlines()[-1].startswith("mini: a process in the container was killed: out of memory")


def test_cpus_quota_files():
    proc, pid = _start("run", "--cpus", "0.5", "busybox", "sh", "-c", "echo ready; sleep 30")
    try:
        cpu = _cgroup_of(pid, "cpu")
        if V2:
            assert (cpu / "cpu.max").read_text().split() == ["50000", "100000"]
        else:
            assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    finally:
        _stop(proc, pid)


def _cpu_ns(pid: int) -> int:
    directory = _cgroup_of(pid, "cpu" if V2 else "cpuacct")
    if V2:
        stat = dict(line.split() for line in (directory / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) * 1000
    return int((directory / "cpuacct.usage").read_text())


@pytest.mark.slow
def test_a_busy_loop_under_half_a_cpu_gets_about_half():
    proc, pid = _start("run", "--cpus", "0.5", "busybox", "sh", "-c", "echo ready; while :; do :; done")
    try:
        start_cpu, start = _cpu_ns(pid), time.monotonic()
        time.sleep(3)
        share = (_cpu_ns(pid) - start_cpu) / 1e9 / (time.monotonic() - start)
    finally:
        _stop(proc, pid)
    assert 0.3 < share < 0.65, f"got {share:.2f} of a CPU"


@pytest.mark.slow
def test_cpu_shares_divide_one_cpu_in_proportion():
    # Both on one CPU, so that they compete: pinned with --cpuset-cpus, or a one-CPU machine.
    pin: list[str] = []
    if not V2 or "cpuset" in (cgroups.ROOT / "cgroup.controllers").read_text().split():
        pin = ["--cpuset-cpus", str(min(os.sched_getaffinity(0)))]
    elif len(os.sched_getaffinity(0)) > 1:
        pytest.skip("no cpuset controller to pin the two containers to one CPU")
    loop = "echo ready; while :; do :; done"
    big = _start("run", "--cpu-shares", "1024", *pin, "busybox", "sh", "-c", loop)
    small = _start("run", "--cpu-shares", "512", *pin, "busybox", "sh", "-c", loop)
    try:
        before = _cpu_ns(big[1]), _cpu_ns(small[1])
        time.sleep(3)
        ratio = (_cpu_ns(big[1]) - before[0]) / max(_cpu_ns(small[1]) - before[1], 1)
    finally:
        _stop(*big)
        _stop(*small)
    assert 1.4 < ratio < 2.8, f"1024 vs 512 shares got a CPU-time ratio of {ratio:.2f}"


def test_pids_limit_stops_a_fork_loop():
    result = mini("run", "--pids-limit", "64", "busybox", "sh", "-c",
                  "for i in $(seq 100); do sleep 5 & done 2>&1 | grep -m1 -o 'Resource temporarily unavailable'; "
                  "echo done", timeout=60)
    assert "Resource temporarily unavailable" in result.stdout + result.stderr
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


def test_freeze_stops_a_counter_and_thaw_resumes_it():
    from mini_runtime.cgroups import Cgroup

    proc, pid = _start("run", "busybox", "sh", "-c",
                       "echo ready; i=0; while :; do i=$((i+1)); echo $i >> /tmp/n; done")
    try:
        name = _cgroup_of(pid, "freezer" if not V2 else "cpu").name
        group = Cgroup(name)
        counter = Path(f"/proc/{pid}/root/tmp/n")
        time.sleep(0.3)
        group.freeze(True)
        try:
            frozen = counter.stat().st_size
            time.sleep(0.5)
            assert counter.stat().st_size == frozen
        finally:
            group.freeze(False)  # a frozen process cannot even die of SIGKILL
        time.sleep(0.5)
        assert counter.stat().st_size > frozen
    finally:
        _stop(proc, pid)


def test_the_cgroup_is_gone_after_exit_on_every_hierarchy():
    proc, pid = _start("run", "--memory", "32m", "busybox", "sh", "-c", "echo ready; sleep 30")
    directories = [_cgroup_of(pid, c) for c in (("cpu", "memory", "pids") if V2 else
                                                  ("cpu", "memory", "pids", "freezer", "cpuset"))]
    assert all(d.is_dir() for d in directories)
    _stop(proc, pid)
    assert not any(d.exists() for d in directories)


def test_bad_sizes_are_125_with_one_line():
    result = mini("run", "--memory", "lots", "busybox", "true")
    assert result.returncode == 125 and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("flags", [["--cpus", "nan"], ["--cpus", "inf"], ["--cpus", "0.001"],
                                   ["--cpus", "9999"], ["--memory", "1k"], ["--pids-limit", "x"],
                                   ["--cpuset-cpus", "1,"], ["--cpuset-cpus", "0,,1"], ["--cpuset-cpus", "1-0"],
                                   ["--cpuset-cpus", "²"]])
def test_bad_limits_are_125_with_one_line(flags):
    result = mini("run", *flags, "busybox", "true")
    assert result.returncode == 125 and len(result.stderr.splitlines()) == 1, result.stderr
    if flags[0] == "--cpuset-cpus":     # (the kernel takes `1,` and `0,,1`: docker's daemon does not)
        assert result.stderr == f"mini: Invalid value {flags[1]} for cpuset cpus\n"


def test_zero_memory_and_cpus_are_no_limit_as_in_docker():
    """docker's daemon reads -m 0 and --cpus 0 as not given (its checks start with `!= 0`): no
    limit, where mini said "Minimum memory limit allowed is 6MB" and "Range of CPUs"."""
    result = mini("run", "--rm", "-m", "0", "--cpus", "0", "busybox", "true")
    assert (result.returncode, result.stderr) == (0, "")
    for flags, words in ((["--cpus", "9999"], f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there "
                                              f"are only {os.cpu_count()} CPUs available"),
                         (["-m", "64m", "--memory-swap", "32m"], "Minimum memoryswap limit should be larger "
                                                                 "than memory limit, see usage"),
                         (["-m", "0", "--memory-swap", "32m"], "You should always set the Memory limit when "
                                                               "using Memoryswap limit, see usage")):
        result = mini("run", "--rm", *flags, "busybox", "true")
        assert (result.returncode, result.stderr) == (125, f"mini: {words}\n"), flags


@pytest.mark.parametrize("flags, code", [(["-m", "1m"], 1), (["--cpus", "9999"], 1), (["-m", "x"], 125),
                                         (["--pids-limit", "0x"], 125)])
def test_create_refused_by_the_engine_is_1_and_by_the_flags_parser_125(flags, code):
    """docker's `create` exits 1 when its daemon refuses (a memory limit under 6MB, more CPUs than
    there are) and 125 when its client cannot parse a flag; `run` is 125 for both (docker 20.10
    on a daemon that refuses: `create` 1, `run` 125)."""
    created = mini("create", *flags, "busybox", "true")
    assert created.returncode == code and len(created.stderr.splitlines()) == 1, created.stderr
    assert mini("run", "--rm", *flags, "busybox", "true").returncode == 125


def test_cgroups_a_killed_mini_left_are_swept(state_root):
    group = cgroups.Cgroup("0" * 64)
    group.create()
    stale = time.time() - 3600
    for _, directory in group.hierarchies():
        os.utime(directory, (stale, stale))
    assert mini("run", "busybox", "true").returncode == 0
    assert not any(d.exists() for d in group.dirs.values())


def test_cgroup_namespace_E8():
    """Docker's default: a private cgroup namespace on v2 (the container's cgroup is its `/`,
    mounted read-only at /sys/fs/cgroup), the host's on v1; --cgroupns picks either."""
    private = mini("run", "--rm", "--memory", "32m", "busybox", "sh", "-c",
                   "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; touch /sys/fs/cgroup/x")
    host = mini("run", "--rm", "--cgroupns", "host", "busybox", "cat", "/proc/self/cgroup")
    assert f"/{cgroups.PARENT}/" in host.stdout and host.returncode == 0
    if V2:
        assert private.stdout.splitlines()[:2] == ["0::/", "33554432"]
        assert "Read-only file system" in private.stderr
    else:
        assert f"/{cgroups.PARENT}/" in private.stdout  # v1: the host's namespace by default
        forced = mini("run", "--rm", "--cgroupns", "private", "busybox", "cat", "/proc/self/cgroup")
        assert forced.returncode == 0 and f"/{cgroups.PARENT}/" not in forced.stdout
    bad = mini("run", "--rm", "--cgroupns", "shared", "busybox", "true")
    assert bad.returncode == 125 and len(bad.stderr.splitlines()) == 1


def test_a_cgroup_that_cannot_be_removed_is_reported_not_forgotten():
    """Issue 10: after its EBUSY retries, remove() used to return as if the cgroup were gone."""
    group = cgroups.Cgroup("f" * 64)
    group.create()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        group.add(sleeper.pid)
        with pytest.raises(cgroups.CgroupBusy) as caught:
            group.remove(timeout=0.2)
        assert len(str(caught.value).splitlines()) == 1
        assert str(group.hierarchies()[0][1]) in str(caught.value)
        assert all(directory.is_dir() for _, directory in group.hierarchies())
    finally:
        sleeper.kill()
        sleeper.wait()
        group.remove()
    assert not any(d.exists() for d in group.dirs.values())


def test_a_leaked_cgroup_is_one_warning_line_and_the_container_is_still_recorded(state_root):
    """The container exits with its own code and is recorded as exited; one line names the
    cgroup that stays behind (a process from outside is kept in it)."""
    from mini_runtime import container

    proc = subprocess.Popen(MINI + ["run", "-i", "--name", "leaky", "busybox", "sh", "-c", "echo ready; read x; exit 3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sleeper = subprocess.Popen(["sleep", "30"])
    group = None
    try:
        assert select.select([proc.stdout], [], [], 15)[0] and proc.stdout.readline() == "ready\n"
        pid = container_pid()
        group = cgroups.Cgroup(_cgroup_of(pid, "pids").name)
        group.add(sleeper.pid)
        _, err = proc.communicate("go\n", timeout=30)
        assert proc.returncode == 3
        assert len(err.splitlines()) == 1 and "warning" in err, err
        assert str(group.hierarchies()[0][1]) in err
        directory = container.find("leaky")
        assert container.load(directory)["State"]["Status"] == "exited"
        assert container.load(directory)["State"]["ExitCode"] == 3
        assert not (container.run_dir(directory.name) / "owner").exists()
    finally:
        proc.kill()
        proc.wait()
        sleeper.kill()
        sleeper.wait()
        if group is not None:
            group.remove()
        mini("rm", "leaky")


def test_the_sweep_leaves_a_container_whose_processes_still_run(state_root):
    """A container whose mini is gone is marked "exited 137" only once its processes are gone:
    the cgroup tells (pids get reused, cgroup membership does not)."""
    from mini_runtime import container

    cid = container.new_id()
    directory = container.create(cid, {"State": {"Status": "running", "Running": True}, "HostConfig": {}})
    (container.run_dir(cid) / "owner").write_text("999999999 1\n")   # a mini that was killed
    group = cgroups.Cgroup(cid)
    group.create()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        group.add(sleeper.pid)
        container.sweep_stale()
        assert container.load(directory)["State"]["Running"] is True
        assert (container.run_dir(cid) / "owner").exists()
        assert all(d.is_dir() for _, d in group.hierarchies())
    finally:
        sleeper.kill()
        sleeper.wait()
    container.sweep_stale()                                 # now it has really ended
    state = container.load(directory)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    assert not (container.run_dir(cid) / "owner").exists()
    assert not any(d.exists() for d in group.dirs.values())
    container.remove(directory)


def test_sweep_empty_removes_old_empty_cgroups_and_stats_none_of_the_parents_files(monkeypatch):
    """What a killed mini left goes: an empty cgroup older than `min_age`. A young one, one
    with a process and a live container's stay. It runs at every create, exec, ps and inspect,
    so it costs one listing per hierarchy: the parent's own files (memory.stat and the rest,
    most of a v1 listing) are never statted one by one (that was ~2 ms of every exec)."""
    from mini_runtime import cgroup_upkeep

    empty, busy, live = (cgroups.Cgroup(f"mini-sweep-{kind}-{os.getpid()}") for kind in ("empty", "busy", "live"))
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for group in (empty, busy, live):
            group.create()
        busy.add(sleeper.pid)
        parents = {directory.parent for _, directory in empty.hierarchies()}
        statted: list[str] = []
        real_stat = os.stat

        def sweep(**kwargs) -> None:
            with monkeypatch.context() as patch:
                patch.setattr(os, "stat", lambda path, *a, **kw: statted.append(str(path)) or real_stat(path, *a, **kw))
                cgroup_upkeep.sweep_empty(live=frozenset({live.name}), **kwargs)

        sweep()                                                     # (all three are young)
        assert all(d.is_dir() for g in (empty, busy, live) for _, d in g.hierarchies())
        sweep(min_age=0)
        assert not any(d.exists() for _, d in empty.hierarchies())
        assert all(d.is_dir() for g in (busy, live) for _, d in g.hierarchies())
        assert [path for path in statted if Path(path).parent in parents] == []
    finally:
        sleeper.kill()
        sleeper.wait()
        for group in (empty, busy, live):
            group.remove()


def test_a_limit_the_kernel_refuses_is_one_line_and_leaves_no_cgroup():
    """pids.max takes at most the kernel's PID_MAX_LIMIT (4194304): EINVAL, said as the flags
    asked, with docker's 125; the leak check sees that no cgroup (nor its parent) stays."""
    result = mini("run", "--rm", "--pids-limit", "5000000", "busybox", "true")
    assert result.returncode == 125 and result.stdout == "", result
    assert result.stderr == "mini: the kernel refused a cgroup limit (pids=5000000): Invalid argument\n"
